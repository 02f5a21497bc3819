#include "cuda/cuda_runtime.h"

#include <atomic>
#include <mutex>
#include <vector>

#include "core/check.h"
#include "cuda/cuda_check.h"
#include "cuda/deferred_errors.h"
#include "cuda/graph_capture.h"

namespace convkit {

namespace {
struct DeviceProbe {
    int count = 0;
    std::string reason;
    std::vector<int> compute_capabilities;  // per device, major * 10 + minor
};

// Why cudaGetDeviceCount failed, in the user's terms. The runtime is linked statically and opens
// the driver (libcuda.so) itself: without one it answers "insufficient driver", and the driver
// version it reports is 0.
std::string no_device_reason(cudaError_t status) {
    int driver = 0;
    int runtime = 0;
    const bool asked = cudaDriverGetVersion(&driver) == cudaSuccess && cudaRuntimeGetVersion(&runtime) == cudaSuccess;
    cudaGetLastError();
    if (status == cudaErrorInsufficientDriver && asked && driver == 0) {
        return "no CUDA device is present: no NVIDIA driver was found (libcuda.so could not be loaded); "
               "install the NVIDIA driver to use a GPU, the host backends need none";
    }
    if (status == cudaErrorInsufficientDriver && asked) {
        return detail::concat("no CUDA device is present: the NVIDIA driver supports CUDA ", detail::cuda_version_text(driver),
                              ", older than convkit's CUDA runtime ", detail::cuda_version_text(runtime),
                              "; update the driver");
    }
    return detail::concat("no CUDA device is present (cudaGetDeviceCount: ", cudaGetErrorString(status), ")");
}

// Asked once: the answer cannot change while the process runs, and a failed probe is costly.
const DeviceProbe& probe() {
    static const DeviceProbe result = [] {
        DeviceProbe p;
        int count = 0;
        const cudaError_t status = cudaGetDeviceCount(&count);
        if (status != cudaSuccess) {
            cudaGetLastError();  // the probe's failure must not leak into later calls
            p.reason = no_device_reason(status);
        } else if (count == 0) {
            p.reason = "no CUDA device is present (cudaGetDeviceCount found 0 devices)";
        }
        p.count = status == cudaSuccess ? count : 0;
        for (int device = 0; device < p.count; ++device) {
            int major = 0, minor = 0;
            if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
                cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
                cudaGetLastError();
                major = minor = 0;
            }
            p.compute_capabilities.push_back(major * 10 + minor);
        }
        return p;
    }();
    return result;
}

// Current streams are per thread and per device; a fixed table keeps the lookup free of locks
// and allocation. Far more devices than one machine holds.
constexpr int kMaxDevices = 64;
thread_local Stream current_streams[kMaxDevices];
}  // namespace

int cuda_device_count() {
    return probe().count;
}

std::string cuda_unavailable_reason() {
    return probe().reason;
}

bool cuda_is_emulated() {
#ifdef CONVKIT_EMULATED_DEVICE
    return true;
#else
    return false;
#endif
}

Stream current_stream(int device) {
    CONVKIT_REQUIRE(device >= 0 && device < kMaxDevices, "current_stream", "device index ", device,
                    " is out of range [0, ", kMaxDevices, ")");
    Stream s = current_streams[device];
    s.device = device;
    return s;
}

void set_current_stream(Stream stream) {
    CONVKIT_REQUIRE(stream.device >= 0 && stream.device < kMaxDevices, "set_current_stream", "device index ",
                    stream.device, " is out of range [0, ", kMaxDevices, ")");
    current_streams[stream.device] = stream;
}

StreamGuard::StreamGuard(Stream stream) : previous_(current_stream(stream.device)) {
    set_current_stream(stream);
}
StreamGuard::~StreamGuard() {
    set_current_stream(previous_);
}

void synchronize(int device) {
    detail::require_cuda_device(device, "synchronize");
    detail::CudaDeviceGuard guard(device);
    detail::wait_for_stream(detail::to_cuda(current_stream(device)), "synchronize");
    detail::raise_deferred_errors(device);
}

namespace detail {

namespace {
std::atomic<std::uint64_t> waits{0};

// A host wait inside a captured step would read the device before the captured work ran.
void refuse_wait_in_capture(const char* what, const char* call) {
    if (!graph_capture_underway()) return;
    throw NotSupported(concat(what, " waits for the device (", call,
                              ") during a CUDA graph capture (CapturedStep): the captured work has not run, so the "
                              "host would see values of before the step, and every replay would skip the wait; a "
                              "captured step must not synchronise or read device values on the host (read them "
                              "after replay())"));
}
}  // namespace

void wait_for_stream(cudaStream_t stream, const char* what) {
    refuse_wait_in_capture(what, "cudaStreamSynchronize");
    waits.fetch_add(1, std::memory_order_relaxed);
    CONVKIT_CHECK_CUDA(cudaStreamSynchronize(stream));
}

void wait_for_event(cudaEvent_t event, const char* what) {
    refuse_wait_in_capture(what, "cudaEventSynchronize");
    waits.fetch_add(1, std::memory_order_relaxed);
    CONVKIT_CHECK_CUDA(cudaEventSynchronize(event));
}

bool event_complete(cudaEvent_t event) {
    const cudaError_t status = cudaEventQuery(event);
    if (status == cudaErrorNotReady) {
        cudaGetLastError();
        return false;
    }
    CONVKIT_CHECK_CUDA(status);
    return true;
}

namespace {
// Owns a CUDA event with timing enabled.
class TimingEvent {
public:
    TimingEvent() { CONVKIT_CHECK_CUDA(cudaEventCreate(&event_)); }
    // A destructor cannot throw, and a failed destroy leaves nothing to undo.
    ~TimingEvent() { cudaEventDestroy(event_); }
    TimingEvent(const TimingEvent&) = delete;
    TimingEvent& operator=(const TimingEvent&) = delete;
    cudaEvent_t get() const { return event_; }

private:
    cudaEvent_t event_ = nullptr;
};
}  // namespace

double device_time_ms(Stream stream, const std::function<void()>& enqueue) {
    CudaDeviceGuard guard(stream.device);
    const TimingEvent start, end;
    CONVKIT_CHECK_CUDA(cudaEventRecord(start.get(), to_cuda(stream)));
    enqueue();
    CONVKIT_CHECK_CUDA(cudaEventRecord(end.get(), to_cuda(stream)));
    wait_for_event(end.get(), "device_time_ms");
    float ms = 0;
    CONVKIT_CHECK_CUDA(cudaEventElapsedTime(&ms, start.get(), end.get()));
    return ms;
}

std::uint64_t host_waits() { return waits.load(std::memory_order_relaxed); }

std::string cuda_version_text(int version) {
    if (version == 0) return "none";
    return concat(version / 1000, ".", version % 1000 / 10);
}

void throw_cuda_error(cudaError_t error, const char* expression, const char* file, int line) {
    cudaGetLastError();  // clear a non-sticky error so the library stays usable
    const std::string message = concat(expression, " failed: ", cudaGetErrorName(error), " (",
                                       cudaGetErrorString(error), ") at ", file, ":", line);
    if (error == cudaErrorMemoryAllocation) throw OutOfMemory(message);
    throw CudaError(message);
}

int cuda_compute_capability(int device) {
    const DeviceProbe& p = probe();
    return device >= 0 && device < p.count ? p.compute_capabilities[static_cast<std::size_t>(device)] : 0;
}

void require_cuda_device(int index, const std::string& what) {
    CONVKIT_REQUIRE(index >= 0, what, "CUDA device index must not be negative, got ", index);
    const int count = cuda_device_count();
    if (count == 0) throw NotSupported(concat(what, ": ", cuda_unavailable_reason()));
    if (index < 0 || index >= count) {
        throw NotSupported(concat(what, ": CUDA device ", index, " does not exist (", count, " device(s) present)"));
    }
}

CudaDeviceGuard::CudaDeviceGuard(int device) {
    CONVKIT_CHECK_CUDA(cudaGetDevice(&previous_));
    if (previous_ != device) CONVKIT_CHECK_CUDA(cudaSetDevice(device));
}

CudaDeviceGuard::~CudaDeviceGuard() {
    // A destructor cannot throw; a failure to restore is cleared so that the next checked call
    // does not report it as its own.
    int now = -1;
    if (cudaGetDevice(&now) != cudaSuccess || (now != previous_ && cudaSetDevice(previous_) != cudaSuccess)) {
        cudaGetLastError();
    }
}

}  // namespace detail
}  // namespace convkit
