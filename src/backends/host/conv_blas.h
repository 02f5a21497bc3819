#pragma once
// The fast host path for convolution: unfold the input into a patch matrix (im2col), multiply
// by the weight with OpenBLAS, fold back (col2im) for the data gradient. Same geometry, same
// results as the reference (host/conv_reference.h) up to summation order; docs/host-backend.md
// explains the layout, the scratch bound and the threading.
//
// For image n, group g (Cg = C_in / groups input and Og = C_out / groups output channels,
// K kernel taps) and a block of output positions p of that image:
//   patches[(ci, k), p] = x[n, g Cg + ci, source(p, k)]  (0 where the tap reads zero padding)
//   forward          y[n, g Og + :, p]  = W_g [Og, Cg K] * patches           (+ bias)
//   backward data    patches            = W_g^T * dy[n, g Og + :, p], added back onto dx
//   backward filter  dW_g              += dy[n, g Og + :, p] * patches^T
// source() is the shared index math (detail::conv_tap_source), so every padding mode maps taps
// exactly as the reference does; where reflect/replicate/circular padding sends several taps to
// one element, the fold adds them all. The products read and write y and dy in place (rows of
// one image's channels are P apart), so nothing is copied besides the patches.
//
// Threading: OpenMP runs the (image, group, block) work items in one parallel region per call,
// each thread unfolding and multiplying its own items with a single-threaded OpenBLAS call.
// See blas.h for why OpenBLAS itself is kept to one thread.
#include <cstddef>
#include <string>

#include "backend_api/geometry.h"

namespace convkit::host {

// Patch-matrix scratch per thread. The whole scratch of a call is at most threads x this (plus,
// for the filter gradient, one weight-sized accumulator per thread), whatever the batch size.
inline constexpr std::size_t kConvBlasScratchBytesPerThread = std::size_t{8} << 20;

// Output positions per block so that a block's patches, (C_in / groups x taps) x columns
// elements of `element_size` bytes, fit in `scratch_bytes`: at most one image's positions,
// never fewer than one.
std::int64_t conv_blas_block_columns(const detail::ConvGeometry& g, std::size_t element_size,
                                     std::size_t scratch_bytes);

// Empty if the BLAS path runs this geometry; else why not (sizes past the BLAS integer).
std::string conv_blas_unsupported_reason(const detail::ConvGeometry& g);

template <typename T>
void conv_forward_blas(const detail::ConvGeometry& g, const T* input, const T* weight, const T* bias, T* output,
                       std::size_t scratch_bytes_per_thread = kConvBlasScratchBytesPerThread);

template <typename T>
void conv_backward_data_blas(const detail::ConvGeometry& g, const T* grad_output, const T* weight, const T* bias,
                             T* grad_input, std::size_t scratch_bytes_per_thread = kConvBlasScratchBytesPerThread);

template <typename T>
void conv_backward_filter_blas(const detail::ConvGeometry& g, const T* grad_output, const T* input, T* grad_weight,
                               std::size_t scratch_bytes_per_thread = kConvBlasScratchBytesPerThread);

}  // namespace convkit::host
