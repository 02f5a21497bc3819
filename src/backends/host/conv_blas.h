#pragma once
// The fast host path for convolution: unfold the input into a patch matrix (im2col), multiply
// by the weight with OpenBLAS, fold back (col2im) for the data gradient. Same geometry, same
// results as the reference (host/conv_reference.h) up to summation order; docs/host-backend.md
// explains the layout, the scratch bound and the threading.
//
// For a group of the convolution, with Cg = C_in / groups input and Og = C_out / groups output
// channels, K = kernel taps and a block of columns j (image n, output position p):
//   patches[(ci, k), j] = x[n, ci, source(p, k)]  (0 where the tap reads zero padding)
//   forward          y_g[:, j]  = W_g [Og, Cg K] * patches          (+ bias)
//   backward data    patches    = W_g^T * dy_g[:, j], scattered back (added) onto dx
//   backward filter  dW_g      += dy_g[:, j] * patches^T
// source() is the shared index math (detail::conv_tap_source), so every padding mode maps taps
// exactly as the reference does; where reflect/replicate/circular padding sends several taps to
// one element, the fold adds them all.
#include <cstddef>
#include <string>

#include "ops/geometry.h"

namespace convkit::host {

// Scratch per call: the patch matrix and one block of the output (or output gradient) for as
// many columns as fit, but always at least one column.
inline constexpr std::size_t kConvBlasScratchBytes = std::size_t{32} << 20;

// Columns (output positions, over the whole batch) per block so that the patch matrix and the
// output block, (C_in / groups x taps + C_out / groups) x columns elements of `element_size`
// bytes, fit in `scratch_bytes`: whole images where at least one fits, and never fewer than one.
std::int64_t conv_blas_block_columns(const detail::ConvGeometry& g, std::size_t element_size,
                                     std::size_t scratch_bytes);

// Empty if the BLAS path runs this geometry; else why not (sizes past the BLAS integer).
std::string conv_blas_unsupported_reason(const detail::ConvGeometry& g);

template <typename T>
void conv_forward_blas(const detail::ConvGeometry& g, const T* input, const T* weight, const T* bias, T* output,
                       std::size_t scratch_bytes = kConvBlasScratchBytes);

template <typename T>
void conv_backward_data_blas(const detail::ConvGeometry& g, const T* grad_output, const T* weight, const T* bias,
                             T* grad_input, std::size_t scratch_bytes = kConvBlasScratchBytes);

template <typename T>
void conv_backward_filter_blas(const detail::ConvGeometry& g, const T* grad_output, const T* input, T* grad_weight,
                               std::size_t scratch_bytes = kConvBlasScratchBytes);

}  // namespace convkit::host
