#pragma once
// The unfolding kernels of cuda.im2col (kernels/conv_im2col.cu): a convolution as a matrix
// product over its column matrix (Caffe's im2col), for every float dtype, both activation
// layouts and every padding mode. Plain C++: the variant calls them without CUDA headers.
//
// The column matrix of images [first, first + images) has one row per (image, output position),
// row (n - first) * P + p, and one column per (input channel, tap), column ci * taps + t: the
// input channel before the tap, the weight's own [C_out, C_in / groups, taps] order, so that
// group g's columns are one block [rows, C_in / groups * taps] of it, multiplied by the group's
// weight rows as they are stored.
#include <cstdint>

#include "backend_api/geometry.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "convkit/memory_format.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// columns[row, ci * taps + t] = the element of x (of `dtype`, in `layout`) that tap t of the
// row's output position reads (detail::conv_tap_source), or zero in zero padding.
void im2col(const detail::ConvGeometry& g, DType dtype, MemoryFormat layout, const void* x, std::int64_t first_image,
            std::int64_t images, void* columns, Stream stream);

// The adjoint as a gather, one thread per element of dx (of `dtype`, in `layout`), images
// [first, first + images): dx[n, ci, i] = bias[ci] (0 when bias is null) + the sum, in a fixed
// order, of the column entries of every (output position, tap) that reads i
// (detail::for_each_tap_reading). No atomics: deterministic. `columns` holds `columns_dtype`:
// `dtype`, or float32 for 16-bit dx (rounded once, after the sum).
void col2im(const detail::ConvGeometry& g, DType dtype, MemoryFormat layout, const void* columns, DType columns_dtype,
            const void* bias, std::int64_t first_image, std::int64_t images, void* dx, Stream stream);

// out[n, c, s] = values[c] for an [N, C, S] tensor of `dtype` in `layout` (a bias that products
// are then added to).
void fill_channels(DType dtype, MemoryFormat layout, std::int64_t batch, std::int64_t channels, std::int64_t spatial,
                   const void* values, void* out, Stream stream);

CONVKIT_KERNELS_END
