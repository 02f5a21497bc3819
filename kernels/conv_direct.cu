// Direct convolution: forward, backward-data (with the fold for non-zero padding modes),
// backward-filter and bias gradient. Every kernel is a gather (each thread or block owns the
// elements it writes), so results are deterministic and need no atomics. Index math comes from
// ops/geometry.h, shared with the host reference; only the arithmetic is written here.
#include "kernels/conv_direct.h"

#include <memory>

#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::ConvGeometry;

// Row-major offset into a contiguous [*, C, D, H, W] tensor.
__device__ inline std::int64_t offset5(std::int64_t n, std::int64_t c, std::int64_t channels, const SpatialDims& size,
                                       std::int64_t d, std::int64_t h, std::int64_t w) {
    return (((n * channels + c) * size[0] + d) * size[1] + h) * size[2] + w;
}

// Splits a flat index over [N, C, D, H, W] (W fastest) into its coordinates.
struct Coordinates {
    std::int64_t n, c, d, h, w;
};
__device__ inline Coordinates split5(std::int64_t index, std::int64_t channels, const SpatialDims& size) {
    Coordinates at{};
    at.w = index % size[2];
    index /= size[2];
    at.h = index % size[1];
    index /= size[1];
    at.d = index % size[0];
    index /= size[0];
    at.c = index % channels;
    at.n = index / channels;
    return at;
}

template <typename T>
__global__ void conv_forward_kernel(ConvGeometry g, const T* x, const T* w, const T* bias, T* y) {
    const std::int64_t total = g.batch * g.out_channels * g.output_spatial();
    const std::int64_t per_group_in = g.in_channels_per_group();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        const Coordinates o = split5(index, g.out_channels, g.output);
        const std::int64_t first_ci = o.c / g.out_channels_per_group() * per_group_in;
        T acc = bias != nullptr ? bias[o.c] : T(0);
        for (std::int64_t ci = 0; ci < per_group_in; ++ci) {
            for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd) {
                const std::int64_t id = detail::conv_tap_source(g, 0, o.d, kd);
                if (id < 0) continue;
                for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh) {
                    const std::int64_t ih = detail::conv_tap_source(g, 1, o.h, kh);
                    if (ih < 0) continue;
                    for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw) {
                        const std::int64_t iw = detail::conv_tap_source(g, 2, o.w, kw);
                        if (iw < 0) continue;
                        acc += x[offset5(o.n, first_ci + ci, g.in_channels, g.input, id, ih, iw)] *
                               w[offset5(o.c, ci, per_group_in, g.kernel, kd, kh, kw)];
                    }
                }
            }
        }
        y[index] = acc;
    }
}

// The output positions o (and taps k) whose tap reads padded position q along dim s:
// q = o * stride + k * dilation, with q counted from the start of the padding.
template <typename F>
__device__ void for_each_output_reading(const ConvGeometry& g, int s, std::int64_t q, F&& f) {
    for (std::int64_t k = 0; k < g.kernel[s]; ++k) {
        const std::int64_t numerator = q - k * g.dilation[s];
        if (numerator < 0 || numerator % g.stride[s] != 0) continue;
        const std::int64_t o = numerator / g.stride[s];
        if (o < g.output[s]) f(o, k);
    }
}

// The gradient reaching padded position (qd, qh, qw) of input channel ci: a gather over the
// output positions and taps that read it.
template <typename T>
__device__ T padded_input_gradient(const ConvGeometry& g, const T* dy, const T* w, std::int64_t n, std::int64_t ci,
                                   std::int64_t qd, std::int64_t qh, std::int64_t qw) {
    const std::int64_t per_group_in = g.in_channels_per_group();
    const std::int64_t per_group_out = g.out_channels_per_group();
    const std::int64_t group = ci / per_group_in;
    const std::int64_t ci_in_group = ci - group * per_group_in;
    T acc = T(0);
    for (std::int64_t co = group * per_group_out; co < (group + 1) * per_group_out; ++co) {
        for_each_output_reading(g, 0, qd, [&](std::int64_t od, std::int64_t kd) {
            for_each_output_reading(g, 1, qh, [&](std::int64_t oh, std::int64_t kh) {
                for_each_output_reading(g, 2, qw, [&](std::int64_t ow, std::int64_t kw) {
                    acc += dy[offset5(n, co, g.out_channels, g.output, od, oh, ow)] *
                           w[offset5(co, ci_in_group, per_group_in, g.kernel, kd, kh, kw)];
                });
            });
        });
    }
    return acc;
}

// Zeros padding: each input element is padded position i + pad_begin, read from nowhere else.
template <typename T>
__global__ void conv_backward_data_kernel(ConvGeometry g, const T* dy, const T* w, const T* bias, T* dx) {
    const std::int64_t total = g.batch * g.in_channels * g.input_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        const Coordinates i = split5(index, g.in_channels, g.input);
        T acc =
            padded_input_gradient(g, dy, w, i.n, i.c, i.d + g.pad_begin[0], i.h + g.pad_begin[1], i.w + g.pad_begin[2]);
        if (bias != nullptr) acc += bias[i.c];
        dx[index] = acc;
    }
}

// Other padding modes, step 1: the gradient of every position of the padded input.
template <typename T>
__global__ void padded_gradient_kernel(ConvGeometry g, SpatialDims padded, const T* dy, const T* w, T* dpadded) {
    const std::int64_t total = g.batch * g.in_channels * padded[0] * padded[1] * padded[2];
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        const Coordinates q = split5(index, g.in_channels, padded);
        dpadded[index] = padded_input_gradient(g, dy, w, q.n, q.c, q.d, q.h, q.w);
    }
}

// The padded positions (counted from the start of the padding) along dim s that read input
// element i: i itself, and whichever positions of the two pads the padding mode maps onto i.
// Calls f(q) for each; at most 1 + pad_begin + pad_end candidates.
template <typename F>
__device__ void for_each_padded_source_of(const ConvGeometry& g, int s, std::int64_t i, F&& f) {
    f(i + g.pad_begin[s]);
    const std::int64_t padded_size = g.pad_begin[s] + g.input[s] + g.pad_end[s];
    for (std::int64_t q = 0; q < padded_size; ++q) {
        if (q == g.pad_begin[s]) q += g.input[s];  // skip the input itself
        if (q >= padded_size) break;
        if (detail::padded_source_index(q - g.pad_begin[s], g.input[s], g.padding_mode) == i) f(q);
    }
}

// Other padding modes, step 2: each input element sums the gradients of the padded positions
// that read it (for reflect, replicate, circular: itself and its images in the pads).
template <typename T>
__global__ void fold_padded_gradient_kernel(ConvGeometry g, SpatialDims padded, const T* dpadded, const T* bias,
                                            T* dx) {
    const std::int64_t total = g.batch * g.in_channels * g.input_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        const Coordinates i = split5(index, g.in_channels, g.input);
        T acc = bias != nullptr ? bias[i.c] : T(0);
        for_each_padded_source_of(g, 0, i.d, [&](std::int64_t qd) {
            for_each_padded_source_of(g, 1, i.h, [&](std::int64_t qh) {
                for_each_padded_source_of(g, 2, i.w, [&](std::int64_t qw) {
                    acc += dpadded[offset5(i.n, i.c, g.in_channels, padded, qd, qh, qw)];
                });
            });
        });
        dx[index] = acc;
    }
}

// One block per weight element; the block's threads split the batch and output positions.
template <typename T>
__global__ void conv_backward_filter_kernel(ConvGeometry g, const T* dy, const T* x, T* dw) {
    const std::int64_t per_group_in = g.in_channels_per_group();
    const std::int64_t weights = g.out_channels * per_group_in * g.kernel_spatial();
    const std::int64_t terms = g.batch * g.output_spatial();
    for (std::int64_t weight = blockIdx.x; weight < weights; weight += gridDim.x) {
        const Coordinates k = split5(weight, per_group_in, g.kernel);  // k.n is co, k.c is ci in group
        const std::int64_t ci = k.n / g.out_channels_per_group() * per_group_in + k.c;
        T acc = T(0);
        for (std::int64_t term = threadIdx.x; term < terms; term += blockDim.x) {
            const std::int64_t n = term / g.output_spatial();
            const Coordinates o = split5(term % g.output_spatial(), 1, g.output);
            const std::int64_t id = detail::conv_tap_source(g, 0, o.d, k.d);
            const std::int64_t ih = detail::conv_tap_source(g, 1, o.h, k.h);
            const std::int64_t iw = detail::conv_tap_source(g, 2, o.w, k.w);
            if (id < 0 || ih < 0 || iw < 0) continue;
            acc += dy[offset5(n, k.n, g.out_channels, g.output, o.d, o.h, o.w)] *
                   x[offset5(n, ci, g.in_channels, g.input, id, ih, iw)];
        }
        const T sum = block_sum(acc);
        if (threadIdx.x == 0) dw[weight] = sum;
    }
}

template <typename T>
__global__ void conv_backward_bias_kernel(std::int64_t batch, std::int64_t channels, std::int64_t spatial, const T* dy,
                                          T* db) {
    for (std::int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
        T acc = T(0);
        for (std::int64_t term = threadIdx.x; term < batch * spatial; term += blockDim.x) {
            const std::int64_t n = term / spatial;
            acc += dy[(n * channels + c) * spatial + term % spatial];
        }
        const T sum = block_sum(acc);
        if (threadIdx.x == 0) db[c] = sum;
    }
}

unsigned blocks_for_reduction(std::int64_t outputs) {
    return grid_stride_blocks(outputs);
}
}  // namespace

void conv_forward_direct(const ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias, void* y,
                         Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        launch<conv_forward_kernel<T>>({grid_for(g.batch * g.out_channels * g.output_spatial()), kThreadsPerBlock},
                                       detail::to_cuda(stream), g, static_cast<const T*>(x), static_cast<const T*>(w),
                                       static_cast<const T*>(bias), static_cast<T*>(y));
    });
}

void conv_backward_data_direct(const ConvGeometry& g, DType dtype, const void* dy, const void* w, const void* bias,
                               void* dx, Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    const std::int64_t inputs = g.batch * g.in_channels * g.input_spatial();
    if (g.padding_mode == PaddingMode::Zeros) {
        dispatch_float_types(dtype, [&](auto tag) {
            using T = decltype(tag);
            launch<conv_backward_data_kernel<T>>({grid_for(inputs), kThreadsPerBlock}, s, g, static_cast<const T*>(dy),
                                                 static_cast<const T*>(w), static_cast<const T*>(bias),
                                                 static_cast<T*>(dx));
        });
        return;
    }
    const SpatialDims padded = padded_input_dims(g);
    const std::int64_t padded_count = g.batch * g.in_channels * padded[0] * padded[1] * padded[2];
    // Freed right after the launches: allocated for `stream`, the caching allocator reuses it
    // only behind the fold kernel.
    const std::shared_ptr<void> scratch =
        detail::allocate_cuda(static_cast<std::size_t>(padded_count) * dtype_size(dtype), stream);
    dispatch_float_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        T* dpadded = static_cast<T*>(scratch.get());
        launch<padded_gradient_kernel<T>>({grid_for(padded_count), kThreadsPerBlock}, s, g, padded,
                                          static_cast<const T*>(dy), static_cast<const T*>(w), dpadded);
    });
    fold_padded_input_gradient(g, dtype, scratch.get(), bias, dx, stream);
}

SpatialDims padded_input_dims(const ConvGeometry& g) {
    return {g.input[0] + g.pad_begin[0] + g.pad_end[0], g.input[1] + g.pad_begin[1] + g.pad_end[1],
            g.input[2] + g.pad_begin[2] + g.pad_end[2]};
}

void fold_padded_input_gradient(const ConvGeometry& g, DType dtype, const void* dpadded, const void* bias, void* dx,
                                Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    const std::int64_t inputs = g.batch * g.in_channels * g.input_spatial();
    dispatch_float_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        launch<fold_padded_gradient_kernel<T>>({grid_for(inputs), kThreadsPerBlock}, detail::to_cuda(stream), g,
                                               padded_input_dims(g), static_cast<const T*>(dpadded),
                                               static_cast<const T*>(bias), static_cast<T*>(dx));
    });
}

void conv_backward_filter_direct(const ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw,
                                 Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    const std::int64_t weights = g.out_channels * g.in_channels_per_group() * g.kernel_spatial();
    dispatch_float_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        launch<conv_backward_filter_kernel<T>>({blocks_for_reduction(weights), kThreadsPerBlock},
                                               detail::to_cuda(stream), g, static_cast<const T*>(dy),
                                               static_cast<const T*>(x), static_cast<T*>(dw));
    });
}

void conv_backward_bias(std::int64_t batch, std::int64_t channels, std::int64_t spatial, DType dtype, const void* dy,
                        void* db, Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        launch<conv_backward_bias_kernel<T>>({blocks_for_reduction(channels), kThreadsPerBlock},
                                             detail::to_cuda(stream), batch, channels, spatial,
                                             static_cast<const T*>(dy), static_cast<T*>(db));
    });
}

CONVKIT_KERNELS_END
