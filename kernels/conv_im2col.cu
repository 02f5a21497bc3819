// cuda.im2col's unfolding kernels (kernels/conv_im2col.h): one thread per element written, grid
// stride, 64-bit indices. The index math is the shared geometry's (backend_api/geometry.h): the
// unfolding reads where conv_tap_source says, and the gather sums what for_each_tap_reading, its
// inverse, enumerates, so every padding mode the geometry accepts runs here as on the host.
#include "kernels/conv_im2col.h"

#include "backend_api/layout_math.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::ChannelsGeometry;
using detail::ConvGeometry;

__device__ inline std::int64_t offset_in(MemoryFormat layout, const ChannelsGeometry& at, std::int64_t n,
                                         std::int64_t c, std::int64_t s) {
    return layout == MemoryFormat::ChannelsLast ? at.channels_last_offset(n, c, s) : at.contiguous_offset(n, c, s);
}

// (d, h, w) of flat position `s` in right-aligned 3-D dims.
struct Position3 {
    std::int64_t d, h, w;
};
__device__ inline Position3 split_position(std::int64_t s, const SpatialDims& size) {
    return {s / (size[1] * size[2]), s / size[2] % size[1], s % size[2]};
}

// One thread per (row, input channel): the row's position is split once, then the thread walks
// the taps with no division, writing the channel's `taps` consecutive column entries. Adjacent
// threads take adjacent channels, so channels-last reads coalesce.
template <typename T>
__global__ void im2col_kernel(ConvGeometry g, MemoryFormat layout, const T* x, std::int64_t first_image,
                              std::int64_t images, T* columns) {
    const std::int64_t taps = g.kernel_spatial();
    const std::int64_t count = images * g.output_spatial() * g.in_channels;
    const ChannelsGeometry at{g.batch, g.in_channels, g.input_spatial()};
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        const std::int64_t ci = i % g.in_channels;
        const std::int64_t row = i / g.in_channels;
        const std::int64_t n = first_image + row / g.output_spatial();
        const Position3 o = split_position(row % g.output_spatial(), g.output);
        T* to = columns + i * taps;  // (row, ci) is entry row * C_in + ci of [rows, C_in, taps]
        for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd) {
            const std::int64_t d = detail::conv_tap_source(g, 0, o.d, kd);
            for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh) {
                const std::int64_t h = detail::conv_tap_source(g, 1, o.h, kh);
                for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw) {
                    const std::int64_t w = detail::conv_tap_source(g, 2, o.w, kw);
                    *to++ = d < 0 || h < 0 || w < 0
                                ? element_cast<T>(0.0f)
                                : x[offset_in(layout, at, n, ci, (d * g.input[1] + h) * g.input[2] + w)];
                }
            }
        }
    }
}

// Threads walk dx in its memory order (writes coalesce in either layout).
template <typename T, typename Column>
__global__ void col2im_kernel(ConvGeometry g, MemoryFormat layout, const Column* columns, const T* bias,
                              std::int64_t first_image, std::int64_t images, T* dx) {
    using Acc = ComputeType<T>;
    const std::int64_t taps = g.kernel_spatial();
    const std::int64_t spatial = g.input_spatial();
    const std::int64_t count = images * g.in_channels * spatial;
    const bool channels_last = layout == MemoryFormat::ChannelsLast;
    const ChannelsGeometry at{g.batch, g.in_channels, spatial};
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        const std::int64_t ci = channels_last ? i % g.in_channels : i / spatial % g.in_channels;
        const std::int64_t s = channels_last ? i / g.in_channels % spatial : i % spatial;
        const std::int64_t local = i / (g.in_channels * spatial);  // image within the block
        const Position3 in = split_position(s, g.input);
        // The block's column entries of image `local`, channel ci: [positions, taps], row stride C_in * taps.
        const Column* image_columns = columns + (local * g.output_spatial() * g.in_channels + ci) * taps;
        Acc sum = bias != nullptr ? element_cast<Acc>(bias[ci]) : Acc(0);
        detail::for_each_tap_reading(g, 0, in.d, [&](std::int64_t od, std::int64_t kd) {
            detail::for_each_tap_reading(g, 1, in.h, [&](std::int64_t oh, std::int64_t kh) {
                detail::for_each_tap_reading(g, 2, in.w, [&](std::int64_t ow, std::int64_t kw) {
                    const std::int64_t p = (od * g.output[1] + oh) * g.output[2] + ow;
                    const std::int64_t t = (kd * g.kernel[1] + kh) * g.kernel[2] + kw;
                    sum += element_cast<Acc>(image_columns[p * g.in_channels * taps + t]);
                });
            });
        });
        dx[offset_in(layout, at, first_image + local, ci, s)] = element_cast<T>(sum);
    }
}

template <typename T>
__global__ void fill_channels_kernel(MemoryFormat layout, ChannelsGeometry g, const T* values, T* out) {
    const std::int64_t count = g.batch * g.channels * g.spatial;
    const bool channels_last = layout == MemoryFormat::ChannelsLast;
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        out[i] = values[channels_last ? i % g.channels : i / g.spatial % g.channels];
    }
}
}  // namespace

void im2col(const ConvGeometry& g, DType dtype, MemoryFormat layout, const void* x, std::int64_t first_image,
            std::int64_t images, void* columns, Stream stream) {
    const std::int64_t count = images * g.output_spatial() * g.in_channels;  // threads
    if (count == 0 || g.kernel_spatial() == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_storage_types("im2col", dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<im2col_kernel<T>>({grid_for(count), kThreadsPerBlock}, detail::to_cuda(stream), g, layout,
                                 static_cast<const T*>(x), first_image, images, static_cast<T*>(columns));
    });
}

void col2im(const ConvGeometry& g, DType dtype, MemoryFormat layout, const void* columns, DType columns_dtype,
            const void* bias, std::int64_t first_image, std::int64_t images, void* dx, Stream stream) {
    const std::int64_t count = images * g.in_channels * g.input_spatial();
    if (count == 0) return;
    const bool sixteen_bit = dtype == DType::BFloat16 || dtype == DType::Float16;
    if (columns_dtype != (sixteen_bit ? DType::Float32 : dtype)) {
        throw NotSupported(std::string("col2im: ") + dtype_name(dtype) + " gradients gather " +
                           (sixteen_bit ? "float32" : dtype_name(dtype)) + " columns, not " +
                           dtype_name(columns_dtype));
    }
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_storage_types("col2im", dtype, [&](auto zero) {
        using T = decltype(zero);
        using Column = ComputeType<T>;  // float32 for 16-bit dx
        launch<col2im_kernel<T, Column>>({grid_for(count), kThreadsPerBlock}, detail::to_cuda(stream), g, layout,
                                         static_cast<const Column*>(columns), static_cast<const T*>(bias),
                                         first_image, images, static_cast<T*>(dx));
    });
}

void fill_channels(DType dtype, MemoryFormat layout, std::int64_t batch, std::int64_t channels, std::int64_t spatial,
                   const void* values, void* out, Stream stream) {
    const std::int64_t count = batch * channels * spatial;
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_storage_types("fill_channels", dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<fill_channels_kernel<T>>({grid_for(count), kThreadsPerBlock}, detail::to_cuda(stream), layout,
                                        ChannelsGeometry{batch, channels, spatial}, static_cast<const T*>(values),
                                        static_cast<T*>(out));
    });
}

CONVKIT_KERNELS_END
