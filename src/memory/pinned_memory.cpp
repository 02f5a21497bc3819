#include "memory/pinned_memory.h"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "convkit/device.h"
#include "convkit/memory.h"
#include "convkit/tensor.h"
#include "core/check.h"
#include "cuda/cuda_check.h"
#include "memory/host_allocator.h"

namespace convkit {
namespace detail {

std::shared_ptr<void> allocate_pinned_host(std::size_t bytes) {
    if (cuda_device_count() == 0) return allocate_host(bytes);
    void* pointer = nullptr;
    // Portable: pinned for every device, since a loader may feed any of them. A zero-byte request
    // still gets a block, as allocate_host gives one.
    const cudaError_t status = cudaHostAlloc(&pointer, std::max<std::size_t>(bytes, 1), cudaHostAllocPortable);
    if (status == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // not sticky: clear it, the caller may free memory and retry
        throw OutOfMemory(concat("pinned host allocation of ", bytes, " bytes failed"));
    }
    CONVKIT_CHECK_CUDA(status);
    return std::shared_ptr<void>(pointer, [](void* p) noexcept {
        try {
            CONVKIT_CHECK_CUDA(cudaFreeHost(p));
        } catch (...) {
            // A destructor must not throw; a failed release (the runtime shutting down at exit)
            // loses the block, which the process's end returns anyway.
        }
    });
}

bool is_pinned_host(const void* pointer) {
    if (pointer == nullptr || cuda_device_count() == 0) return false;
    cudaPointerAttributes attributes{};
    CONVKIT_CHECK_CUDA(cudaPointerGetAttributes(&attributes, pointer));
    return attributes.type == cudaMemoryTypeHost;
}

}  // namespace detail

bool is_pinned(const Tensor& tensor) {
    return tensor.defined() && tensor.device().is_host() && detail::is_pinned_host(tensor.raw_data());
}

}  // namespace convkit
