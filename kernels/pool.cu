// Pooling kernels. One thread per output element forward, one per input element backward.
// Window arithmetic comes from ops/geometry.h, shared with the host reference, so the GPU picks
// the same windows, divisors and argmax (first maximum; the last NaN) as the oracle.
#include "kernels/pool.h"

#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::PoolGeometry;
using detail::WindowSpan;
using Position = std::array<std::int64_t, 3>;

__device__ inline std::int64_t plane_offset(const SpatialDims& size, std::int64_t plane, const Position& p) {
    return ((plane * size[0] + p[0]) * size[1] + p[1]) * size[2] + p[2];
}

// Splits a flat index over [planes, D, H, W] into the plane and the position.
__device__ inline std::int64_t split_plane(std::int64_t index, const SpatialDims& size, Position& p) {
    p[2] = index % size[2];
    index /= size[2];
    p[1] = index % size[1];
    index /= size[1];
    p[0] = index % size[0];
    return index / size[0];
}

template <typename T>
__global__ void max_pool_forward_kernel(PoolGeometry g, const T* x, T* y) {
    const std::int64_t total = g.planes() * g.output_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        Position o{};
        const std::int64_t plane = split_plane(index, g.output, o);
        const std::int64_t best = detail::max_pool_window_argmax(g, x, plane, o);
        y[index] = best >= 0 ? x[best] : -INFINITY;
    }
}

// Calls f(o, k) for each output position o along dim s whose window's tap k lands on input i.
template <typename F>
__device__ void for_each_window_holding(const PoolGeometry& g, int s, std::int64_t i, F&& f) {
    for (std::int64_t k = 0; k < g.kernel[s]; ++k) {
        const std::int64_t numerator = i + g.padding[s] - k * g.dilation[s];
        if (numerator < 0 || numerator % g.stride[s] != 0) continue;
        const std::int64_t o = numerator / g.stride[s];
        if (o < g.output[s]) f(o, k);
    }
}

template <typename T>
__global__ void max_pool_backward_kernel(PoolGeometry g, const T* dy, const T* x, T* dx) {
    const std::int64_t total = g.planes() * g.input_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        Position i{};
        const std::int64_t plane = split_plane(index, g.input, i);
        T acc = T(0);
        for_each_window_holding(g, 0, i[0], [&](std::int64_t od, std::int64_t) {
            for_each_window_holding(g, 1, i[1], [&](std::int64_t oh, std::int64_t) {
                for_each_window_holding(g, 2, i[2], [&](std::int64_t ow, std::int64_t) {
                    const Position o{od, oh, ow};
                    if (detail::max_pool_window_argmax(g, x, plane, o) == index)
                        acc += dy[plane_offset(g.output, plane, o)];
                });
            });
        });
        dx[index] = acc;
    }
}

// Forward of average and adaptive pooling: the box of spans, summed and divided.
template <typename T, bool Adaptive>
__global__ void mean_pool_forward_kernel(PoolGeometry g, const T* x, T* y) {
    const std::int64_t total = g.planes() * g.output_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        Position o{};
        const std::int64_t plane = split_plane(index, g.output, o);
        WindowSpan span[3];
        for (int s = 0; s < 3; ++s)
            span[s] = Adaptive ? detail::adaptive_pool_span(g, s, o[s]) : detail::average_pool_span(g, s, o[s]);
        T sum = T(0);
        for (std::int64_t d = span[0].begin; d < span[0].end; ++d)
            for (std::int64_t h = span[1].begin; h < span[1].end; ++h)
                for (std::int64_t w = span[2].begin; w < span[2].end; ++w)
                    sum += x[plane_offset(g.input, plane, {d, h, w})];
        y[index] = sum / static_cast<T>(span[0].divisor_length * span[1].divisor_length * span[2].divisor_length);
    }
}

template <typename T>
__device__ T average_share(const PoolGeometry& g, const T* dy, std::int64_t plane, const Position& o) {
    const std::int64_t divisor = detail::average_pool_span(g, 0, o[0]).divisor_length *
                                 detail::average_pool_span(g, 1, o[1]).divisor_length *
                                 detail::average_pool_span(g, 2, o[2]).divisor_length;
    return dy[plane_offset(g.output, plane, o)] / static_cast<T>(divisor);
}

template <typename T>
__global__ void avg_pool_backward_kernel(PoolGeometry g, const T* dy, T* dx) {
    const std::int64_t total = g.planes() * g.input_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        Position i{};
        const std::int64_t plane = split_plane(index, g.input, i);
        T acc = T(0);
        // A window holds i when i is in its span (the span clips a ceil-mode overhang).
        for_each_window_holding(g, 0, i[0], [&](std::int64_t od, std::int64_t) {
            for_each_window_holding(g, 1, i[1], [&](std::int64_t oh, std::int64_t) {
                for_each_window_holding(g, 2, i[2], [&](std::int64_t ow, std::int64_t) {
                    acc += average_share(g, dy, plane, Position{od, oh, ow});
                });
            });
        });
        dx[index] = acc;
    }
}

// Adaptive windows along dim s that hold input i: o in [floor(i * out / in), ceil((i + 1) * out / in)),
// checked against the span itself so the two definitions cannot drift apart.
template <typename F>
__device__ void for_each_adaptive_window_holding(const PoolGeometry& g, int s, std::int64_t i, F&& f) {
    const std::int64_t first = i * g.output[s] / g.input[s];
    const std::int64_t last = ((i + 1) * g.output[s] + g.input[s] - 1) / g.input[s];
    for (std::int64_t o = first > 0 ? first - 1 : 0; o <= last && o < g.output[s]; ++o) {
        const WindowSpan span = detail::adaptive_pool_span(g, s, o);
        if (span.begin <= i && i < span.end) f(o, span.divisor_length);
    }
}

template <typename T>
__global__ void adaptive_avg_pool_backward_kernel(PoolGeometry g, const T* dy, T* dx) {
    const std::int64_t total = g.planes() * g.input_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        Position i{};
        const std::int64_t plane = split_plane(index, g.input, i);
        T acc = T(0);
        for_each_adaptive_window_holding(g, 0, i[0], [&](std::int64_t od, std::int64_t ld) {
            for_each_adaptive_window_holding(g, 1, i[1], [&](std::int64_t oh, std::int64_t lh) {
                for_each_adaptive_window_holding(g, 2, i[2], [&](std::int64_t ow, std::int64_t lw) {
                    acc += dy[plane_offset(g.output, plane, {od, oh, ow})] / static_cast<T>(ld * lh * lw);
                });
            });
        });
        dx[index] = acc;
    }
}

// Launches `kernel` over `count` elements on `stream`, for the dtype's element type.
template <typename Launch>
void on_stream_for_dtype(DType dtype, Stream stream, Launch&& launch_typed) {
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_types(dtype, [&](auto tag) { launch_typed(tag, detail::to_cuda(stream)); });
}
}  // namespace

void max_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream) {
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<max_pool_forward_kernel<T>>({grid_for(g.planes() * g.output_spatial()), kThreadsPerBlock}, s, g,
                                           static_cast<const T*>(x), static_cast<T*>(y));
    });
}

void max_pool_backward(const PoolGeometry& g, DType dtype, const void* dy, const void* x, void* dx, Stream stream) {
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<max_pool_backward_kernel<T>>({grid_for(g.planes() * g.input_spatial()), kThreadsPerBlock}, s, g,
                                            static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx));
    });
}

void avg_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream) {
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<mean_pool_forward_kernel<T, false>>({grid_for(g.planes() * g.output_spatial()), kThreadsPerBlock}, s, g,
                                                   static_cast<const T*>(x), static_cast<T*>(y));
    });
}

void avg_pool_backward(const PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream) {
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<avg_pool_backward_kernel<T>>({grid_for(g.planes() * g.input_spatial()), kThreadsPerBlock}, s, g,
                                            static_cast<const T*>(dy), static_cast<T*>(dx));
    });
}

void adaptive_avg_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream) {
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<mean_pool_forward_kernel<T, true>>({grid_for(g.planes() * g.output_spatial()), kThreadsPerBlock}, s, g,
                                                  static_cast<const T*>(x), static_cast<T*>(y));
    });
}

void adaptive_avg_pool_backward(const PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream) {
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<adaptive_avg_pool_backward_kernel<T>>({grid_for(g.planes() * g.input_spatial()), kThreadsPerBlock}, s, g,
                                                     static_cast<const T*>(dy), static_cast<T*>(dx));
    });
}

CONVKIT_KERNELS_END
