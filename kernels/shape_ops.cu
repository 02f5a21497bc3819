// Shape-op kernels: the block copy behind concat/slice/split, and nearest-neighbour upsampling.
// The index math is ops/shape_geometry.h, shared with the host backend.
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"
#include "kernels/shape_ops.h"

CONVKIT_KERNELS_BEGIN

namespace {

// Word is an unsigned integer of the element's size: the copy moves bits, whatever the dtype.
template <typename Word>
__global__ void block_copy_kernel(detail::BlockCopyGeometry g, const Word* source, Word* dest) {
    const std::int64_t total = g.count();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        const detail::CopyOffsets o = detail::block_copy_offsets(g, index);
        dest[o.dest] = source[o.source];
    }
}

template <typename Word>
__global__ void copy_channel_rows_kernel(detail::ChannelRowsGeometry g, const Word* source, Word* dest) {
    const std::int64_t total = g.count();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        const std::int64_t s = detail::channel_rows_source(g, index);
        dest[index] = s < 0 ? Word{0} : source[s];
    }
}

// Runs copy(Word{}) with Word the unsigned integer of `element_size` bytes: kernels that move
// elements as bits, whatever the dtype.
template <typename Copy>
void with_word_of(std::size_t element_size, const char* op, Copy&& copy) {
    switch (element_size) {
        case 2:
            return copy(std::uint16_t{});
        case 4:
            return copy(std::uint32_t{});
        case 8:
            return copy(std::uint64_t{});
        default:
            throw InvalidArgument(std::string(op) + ": element size must be 2, 4 or 8 bytes, got " +
                                  std::to_string(element_size));
    }
}

template <typename T>
__global__ void upsample_nearest_forward_kernel(detail::UpsampleGeometry g, const T* x, T* y) {
    const std::int64_t total = g.planes * g.output_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        y[index] = x[detail::upsample_source_offset(g, index)];
    }
}

template <typename T>
__global__ void upsample_nearest_backward_kernel(detail::UpsampleGeometry g, const T* dy, T* dx) {
    const std::int64_t total = g.planes * g.input_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        dx[index] = static_cast<T>(detail::upsample_gradient_sum<double>(g, dy, index));
    }
}

}  // namespace

void block_copy(const detail::BlockCopyGeometry& g, std::size_t element_size, const void* source, void* dest,
                Stream stream) {
    if (g.count() == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    // Elements are moved as unsigned words of their size: every dtype's bits, unchanged.
    with_word_of(element_size, "block_copy", [&](auto word) {
        using Word = decltype(word);
        launch<block_copy_kernel<Word>>({grid_for(g.count()), kThreadsPerBlock}, s, g,
                                        static_cast<const Word*>(source), static_cast<Word*>(dest));
    });
}

void copy_channel_rows(const detail::ChannelRowsGeometry& g, std::size_t element_size, const void* source, void* dest,
                       Stream stream) {
    if (g.count() == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    with_word_of(element_size, "copy_channel_rows", [&](auto word) {
        using Word = decltype(word);
        launch<copy_channel_rows_kernel<Word>>({grid_for(g.count()), kThreadsPerBlock}, detail::to_cuda(stream), g,
                                               static_cast<const Word*>(source), static_cast<Word*>(dest));
    });
}

void upsample_nearest_forward(const detail::UpsampleGeometry& g, DType dtype, const void* input, void* output,
                              Stream stream) {
    const std::int64_t total = g.planes * g.output_spatial();
    if (total == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<upsample_nearest_forward_kernel<T>>({grid_for(total), kThreadsPerBlock}, detail::to_cuda(stream), g,
                                                   static_cast<const T*>(input), static_cast<T*>(output));
    });
}

void upsample_nearest_backward(const detail::UpsampleGeometry& g, DType dtype, const void* grad_output,
                               void* grad_input, Stream stream) {
    const std::int64_t total = g.planes * g.input_spatial();
    if (total == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<upsample_nearest_backward_kernel<T>>({grid_for(total), kThreadsPerBlock}, detail::to_cuda(stream), g,
                                                    static_cast<const T*>(grad_output), static_cast<T*>(grad_input));
    });
}

CONVKIT_KERNELS_END
