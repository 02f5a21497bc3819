#pragma once
// Launchers of the direct convolution kernels (kernels/conv_direct.cu): one thread per output
// element, written for correctness on every geometry the host reference accepts; the fast,
// shape-specialised kernels come later and are chosen beside these. Plain C++: host code calls
// them without CUDA headers. Pointers are device pointers of `dtype`; work goes on `stream`.
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/geometry.h"

CONVKIT_KERNELS_BEGIN

// y = conv(x, w) + bias (bias may be null).
void conv_forward_direct(const detail::ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias,
                         void* y, Stream stream);

// dx = conv^T(dy, w) + bias per channel of dx (bias may be null: the transposed forward's bias).
// Padding modes other than zeros fold the gradient of the padded input back onto the elements
// it was read from, without atomics.
void conv_backward_data_direct(const detail::ConvGeometry& g, DType dtype, const void* dy, const void* w,
                               const void* bias, void* dx, Stream stream);

// Padding modes other than zeros, the second step of the backward data pass: dx = bias + the
// gradient of the padded input (dpadded, [N, C_in, padded...] with padded = pad_begin + input +
// pad_end per dim) folded back onto the elements each padded position was read from. Shared by
// every CUDA backward-data kernel that computes dpadded first (cuda.direct, cuda.depthwise).
SpatialDims padded_input_dims(const detail::ConvGeometry& g);
void fold_padded_input_gradient(const detail::ConvGeometry& g, DType dtype, const void* dpadded, const void* bias,
                                void* dx, Stream stream);

// dw = sum over batch and output of dy x; one block per weight element, a fixed-order reduction.
void conv_backward_filter_direct(const detail::ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw,
                                 Stream stream);

// db[c] = sum over batch and space of dy[n, c, ...]; one block per channel.
void conv_backward_bias(std::int64_t batch, std::int64_t channels, std::int64_t spatial, DType dtype, const void* dy,
                        void* db, Stream stream);

CONVKIT_KERNELS_END
