// Elementwise fill and dtype conversion: the kernels the tensor class itself needs (poisoning
// buffers with NaN before a test, zeroing gradients, between any two dtypes, bfloat16 and float16 included).
#include "kernels/tensor_fill.h"

#include "backend_api/layout_math.h"

#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
// Grid-stride loops with 64-bit indices: tensors may hold more than 2^31 elements.
template <typename T>
__global__ void fill_constant_kernel(T* data, std::int64_t count, T value) {
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) data[i] = value;
}

template <typename From, typename To>
__global__ void convert_kernel(const From* source, To* destination, std::int64_t count) {
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        destination[i] = element_cast<To>(source[i]);
    }
}

// One thread per element, indexed by its contiguous offset.
template <typename T>
__global__ void permute_channels_kernel(const T* source, T* destination, detail::ChannelsGeometry g,
                                        bool to_channels_last) {
    const std::int64_t count = g.batch * g.channels * g.spatial;
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        const std::int64_t j = g.channels_last_of_contiguous(i);
        if (to_channels_last) {
            destination[j] = source[i];
        } else {
            destination[i] = source[j];
        }
    }
}

// One thread per destination element: (channel c of its group's in_per_group, reversed tap, output
// channel k of the group), read from the source's [group·out_per_group + k][c][taps - 1 - tap].
template <typename T>
__global__ void backward_data_conv_weight_kernel(const T* source, T* destination, std::int64_t groups,
                                                 std::int64_t out_per_group, std::int64_t in_per_group,
                                                 std::int64_t taps) {
    const std::int64_t count = groups * out_per_group * in_per_group * taps;
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        const std::int64_t k = i % out_per_group, row = i / out_per_group;
        const std::int64_t tap = row % taps, channel = row / taps;
        const std::int64_t group = channel / in_per_group, c = channel % in_per_group;
        destination[i] = source[((group * out_per_group + k) * in_per_group + c) * taps + (taps - 1 - tap)];
    }
}
}  // namespace

void fill_constant(void* data, DType dtype, std::int64_t count, double value, Stream stream) {
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_all_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<fill_constant_kernel<T>>({grid_for(count), kThreadsPerBlock}, s, static_cast<T*>(data), count,
                                        element_cast<T>(value));
    });
}

void convert(const void* source, DType source_dtype, void* destination, DType destination_dtype, std::int64_t count,
             Stream stream) {
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    if (source_dtype == destination_dtype) {
        CONVKIT_CHECK_CUDA(
            cudaMemcpyAsync(destination, source, count * dtype_size(source_dtype), cudaMemcpyDeviceToDevice, s));
        return;
    }
    dispatch_all_types(source_dtype, [&](auto from) {
        dispatch_all_types(destination_dtype, [&](auto to) {
            launch<convert_kernel<decltype(from), decltype(to)>>({grid_for(count), kThreadsPerBlock}, s,
                                                                 static_cast<const decltype(from)*>(source),
                                                                 static_cast<decltype(to)*>(destination), count);
        });
    });
}

void permute_channels(const void* source, void* destination, DType dtype, std::int64_t batch, std::int64_t channels,
                      std::int64_t spatial, bool to_channels_last, Stream stream) {
    const std::int64_t count = batch * channels * spatial;
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    const detail::ChannelsGeometry g{batch, channels, spatial};
    dispatch_all_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<permute_channels_kernel<T>>({grid_for(count), kThreadsPerBlock}, s, static_cast<const T*>(source),
                                           static_cast<T*>(destination), g, to_channels_last);
    });
}

void backward_data_conv_weight(const void* source, void* destination, DType dtype, std::int64_t groups,
                               std::int64_t out_per_group, std::int64_t in_per_group, std::int64_t taps,
                               Stream stream) {
    const std::int64_t count = groups * out_per_group * in_per_group * taps;
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_all_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<backward_data_conv_weight_kernel<T>>({grid_for(count), kThreadsPerBlock}, s,
                                                    static_cast<const T*>(source), static_cast<T*>(destination), groups,
                                                    out_per_group, in_per_group, taps);
    });
}

CONVKIT_KERNELS_END
