#pragma once
// Private CUDA helpers shared by the tensor code, the allocator and the kernel launchers.
#if defined(CONVKIT_CPU_EMULATION) && !defined(CONVKIT_EMULATED_DEVICE)
#include "emu/host_runtime.h"  // the CPU build of kernels/: an emulated runtime on host memory
#else
#include <cuda_runtime_api.h>

#include <string>

#include "convkit/device.h"
#include "cuda/device_timer.h"
#include "cuda/host_waits.h"

namespace convkit::detail {

// Throws NotSupported naming `what` when device `index` does not exist (no GPU, no driver, or
// an index past the last device).
void require_cuda_device(int index, const std::string& what);

// Device `device`'s compute capability as major * 10 + minor (90 for an H100), asked once per
// process; 0 for a device that does not exist.
int cuda_compute_capability(int device);

// Makes `device` current for a scope, restoring the previous device afterwards.
class CudaDeviceGuard {
public:
    explicit CudaDeviceGuard(int device);
    ~CudaDeviceGuard();
    CudaDeviceGuard(const CudaDeviceGuard&) = delete;
    CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

private:
    int previous_ = -1;
};

inline cudaStream_t to_cuda(Stream stream) { return static_cast<cudaStream_t>(stream.handle); }

// Every wait of the host for the device goes through these two, so that waits are counted
// (host_waits(), cuda/host_waits.h) on any device. During a CUDA graph capture on this thread
// they throw NotSupported naming `what` (the caller's operation): the captured work has not run.
void wait_for_stream(cudaStream_t stream, const char* what = "a wait for the device");
void wait_for_event(cudaEvent_t event, const char* what = "a wait for the device");
// Whether the work before `event` is complete; never waits.
bool event_complete(cudaEvent_t event);

// A CUDA version number as cudaRuntimeGetVersion gives it (13000) as text ("13.0"); 0 is "none".
std::string cuda_version_text(int version);

}  // namespace convkit::detail
#endif  // CONVKIT_CPU_EMULATION
