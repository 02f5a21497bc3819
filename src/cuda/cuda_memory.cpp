#include "cuda/cuda_memory.h"

#include <cstring>

#include "convkit/memory.h"
#include "convkit/tensor.h"
#include "core/check.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "cuda/deferred_errors.h"
#include "cuda/graph_capture.h"
#include "memory/caching_allocator.h"

namespace convkit {
namespace detail {

namespace {
class CudaMemoryBackend final : public DeviceMemoryBackend {
public:
    void* malloc(std::size_t bytes, int device) override {
        CudaDeviceGuard guard(device);
        void* pointer = nullptr;
        // cudaMalloc is not recorded by a capture, which therefore forbids it (a replay would not
        // allocate again). Here that is safe: the block belongs to the graph's private pool and
        // stays allocated as long as the graph, so the capture is relaxed for this one call.
        cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
        CONVKIT_CHECK_CUDA(cudaThreadExchangeStreamCaptureMode(&mode));
        const cudaError_t status = cudaMalloc(&pointer, bytes);
        CONVKIT_CHECK_CUDA(cudaThreadExchangeStreamCaptureMode(&mode));
        if (status == cudaErrorMemoryAllocation) {
            cudaGetLastError();  // not sticky: clear it and let the cache release blocks and retry
            return nullptr;
        }
        CONVKIT_CHECK_CUDA(status);
        return pointer;
    }
    void free(void* pointer, int device) override {
        CudaDeviceGuard guard(device);
        CONVKIT_CHECK_CUDA(cudaFree(pointer));
    }
    void* record_event(void* stream, int device) override {
        CudaDeviceGuard guard(device);
        cudaEvent_t event = nullptr;
        CONVKIT_CHECK_CUDA(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
        CONVKIT_CHECK_CUDA(cudaEventRecord(event, static_cast<cudaStream_t>(stream)));
        return event;
    }
    bool event_done(void* event, int device) override {
        CudaDeviceGuard guard(device);
        return event_complete(static_cast<cudaEvent_t>(event));
    }
    void wait_event(void* event, int device) override {
        CudaDeviceGuard guard(device);
        wait_for_event(static_cast<cudaEvent_t>(event));
    }
    void destroy_event(void* event, int device) override {
        CudaDeviceGuard guard(device);
        CONVKIT_CHECK_CUDA(cudaEventDestroy(static_cast<cudaEvent_t>(event)));
    }
};

// Never destroyed: tensors may be released during static destruction, after the CUDA runtime
// has begun to shut down, and freeing through a dead context would fail.
CachingAllocator& cuda_allocator() {
    static auto* backend = new CudaMemoryBackend();
    static auto* allocator = new CachingAllocator(*backend);
    return *allocator;
}
}  // namespace

std::shared_ptr<void> allocate_cuda(std::size_t bytes, int device) { return allocate_cuda(bytes, current_stream(device)); }

namespace {
std::shared_ptr<void> allocate_block(std::size_t bytes, Stream stream, bool unshared) {
    require_cuda_device(stream.device, "allocate on " + Device::cuda(stream.device).to_string());
    void* pointer = cuda_allocator().allocate(bytes, stream.device, stream.handle, unshared);
    return std::shared_ptr<void>(pointer, [](void* p) noexcept {
        try {
            cuda_allocator().deallocate(p);
        } catch (...) {
            // A destructor must not throw, and a block whose release failed (the CUDA context is
            // broken, or shutting down) stays counted as in use: lost, but never reused unsafely.
        }
    });
}
}  // namespace

std::shared_ptr<void> allocate_cuda(std::size_t bytes, Stream stream) { return allocate_block(bytes, stream, false); }

std::shared_ptr<void> allocate_cuda_unshared(std::size_t bytes, Stream stream) {
    return allocate_block(bytes, stream, true);
}

void begin_graph_pool(Stream stream, void* pool) {
    cuda_allocator().begin_graph_pool(stream.device, stream.handle, pool);
}

void end_graph_capture(Stream stream) { cuda_allocator().end_graph_capture(stream.device, stream.handle); }

void release_graph_pool(int device, void* pool) { cuda_allocator().release_graph_pool(device, pool); }

std::vector<std::pair<void*, std::size_t>> graph_pool_blocks(int device, void* pool) {
    return cuda_allocator().graph_pool_blocks(device, pool);
}

void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                std::size_t bytes) {
    if (bytes == 0) return;
    if (destination_device.is_host() && source_device.is_host()) {
        std::memcpy(destination, source, bytes);
        return;
    }
    const int device = destination_device.is_cuda() ? destination_device.index : source_device.index;
    if (destination_device.is_host() || source_device.is_host()) {
        refuse_in_graph_capture(device, concat("a copy from ", source_device.to_string(), " to ",
                                               destination_device.to_string(), " (Tensor::to, item, to_vector, ...)"),
                                "the host side would be read or written when the graph replays, not now; copy "
                                "each batch into a static input tensor before replay() and read outputs after it");
    }
    if (destination_device.is_cuda() && source_device.is_cuda() && destination_device != source_device) {
        // The copy runs on the destination's stream, which knows nothing of pending writes to the
        // source on its own device: wait for them first.
        CudaDeviceGuard source_guard(source_device.index);
        wait_for_stream(to_cuda(current_stream(source_device.index)));
    }
    CudaDeviceGuard guard(device);
    const cudaStream_t stream = to_cuda(current_stream(device));
    CONVKIT_CHECK_CUDA(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDefault, stream));
    if (destination_device.is_host() || source_device.is_host()) wait_for_stream(stream, "a copy to or from the host");
    // A read of device memory by the host: errors the kernels found before it surface here.
    if (destination_device.is_host()) raise_deferred_errors(device);
}

void copy_from_pinned_async(void* destination, Device device, const void* pinned_source, std::size_t bytes) {
    if (bytes == 0) return;
    CudaDeviceGuard guard(device.index);
    CONVKIT_CHECK_CUDA(cudaMemcpyAsync(destination, pinned_source, bytes, cudaMemcpyHostToDevice,
                                       to_cuda(current_stream(device.index))));
}

void copy_from_host_async(void* destination, Device device, const void* source, std::size_t bytes) {
    if (bytes == 0) return;
    CudaDeviceGuard guard(device.index);
    CONVKIT_CHECK_CUDA(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyHostToDevice,
                                       to_cuda(current_stream(device.index))));
}

std::shared_ptr<void> record_event(int device) {
    CudaDeviceGuard guard(device);
    cudaEvent_t event = nullptr;
    CONVKIT_CHECK_CUDA(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    const cudaError_t status = cudaEventRecord(event, to_cuda(current_stream(device)));
    if (status != cudaSuccess) cudaEventDestroy(event);
    CONVKIT_CHECK_CUDA(status);
    return std::shared_ptr<void>(event, [device](void* e) noexcept {
        try {
            CudaDeviceGuard destroy_guard(device);
            cudaEventDestroy(static_cast<cudaEvent_t>(e));
        } catch (...) {
            // A destructor must not throw; a failure (the runtime shutting down) loses one event.
        }
    });
}

void wait_until_complete(int device, const std::shared_ptr<void>& event) {
    CudaDeviceGuard guard(device);
    const auto e = static_cast<cudaEvent_t>(event.get());
    if (!event_complete(e)) wait_for_event(e);
}

void stream_wait_event(int device, const std::shared_ptr<void>& event) {
    CudaDeviceGuard guard(device);
    CONVKIT_CHECK_CUDA(cudaStreamWaitEvent(to_cuda(current_stream(device)), static_cast<cudaEvent_t>(event.get()), 0));
}

}  // namespace detail

MemoryStats cuda_memory_stats(int device) { return detail::cuda_allocator().stats(device); }

Stream create_stream(int device) {
    detail::require_cuda_device(device, "create_stream");
    detail::CudaDeviceGuard guard(device);
    cudaStream_t stream = nullptr;
    CONVKIT_CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    return Stream{stream, device};
}

void destroy_stream(Stream stream) {
    if (stream.handle == nullptr) throw InvalidArgument("destroy_stream: the default stream cannot be destroyed");
    detail::require_cuda_device(stream.device, "destroy_stream");
    detail::CudaDeviceGuard guard(stream.device);
    detail::wait_for_stream(detail::to_cuda(stream), "destroy_stream");
    // Its cached blocks go back before the handle can be reused by a new stream.
    detail::cuda_allocator().release_stream(stream.device, stream.handle);
    CONVKIT_CHECK_CUDA(cudaStreamDestroy(detail::to_cuda(stream)));
}

void cuda_empty_cache() {
    if (cuda_device_count() > 0) detail::cuda_allocator().empty_cache();
}

void record_stream(const Tensor& tensor, Stream stream) {
    if (!tensor.defined() || !tensor.device().is_cuda()) {
        throw InvalidArgument("record_stream: the tensor is not on a CUDA device (it is on " +
                              (tensor.defined() ? tensor.device().to_string() : std::string("no device: undefined")) + ")");
    }
    if (stream.device != tensor.device().index) {
        throw InvalidArgument(detail::concat("record_stream: the stream belongs to cuda:", stream.device,
                                             " but the tensor is on ", tensor.device().to_string()));
    }
    detail::cuda_allocator().record_stream(tensor.raw_data(), stream.handle);
}

}  // namespace convkit
