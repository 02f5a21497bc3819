#pragma once
// The host reference for convolution: the oracle every other backend is tested against.
// Written straight from the definition, one output (or weight) element at a time, accumulating
// in double. Never optimised: if it is not obviously correct it is not a reference.
//
// Definition, per spatial dim, with in(o, k) = o * stride - pad_begin + k * dilation read
// through the padding mode:
//   y[n, co, o] = bias[co] + sum_{ci in group(co), k} x[n, ci, in(o, k)] * w[co, ci - group start, k]
// Tensors are [N, C, D, H, W] with unused spatial dims of size 1; the activations (input,
// output and their gradients) in `layout` (contiguous or channels-last, read and written in
// place), the weight contiguous.
#include "backend_api/geometry.h"
#include "backend_api/problem.h"

namespace convkit::host {

template <typename T>
void conv_forward_reference(const detail::ConvGeometry& g, detail::Layout layout, const T* input, const T* weight,
                            const T* bias, T* output);

// grad_input[n, ci, i] = sum over every (co, o, k) whose tap reads i of grad_output[n, co, o] * w[co, ci, k],
// plus bias[ci] when a bias is given: the forward pass of a transposed convolution, whose bias
// is added before the one rounding to T.
template <typename T>
void conv_backward_data_reference(const detail::ConvGeometry& g, detail::Layout layout, const T* grad_output,
                                  const T* weight, const T* bias, T* grad_input);

// grad_weight[co, ci, k] = sum_{n, o} grad_output[n, co, o] * x[n, ci, in(o, k)].
template <typename T>
void conv_backward_filter_reference(const detail::ConvGeometry& g, detail::Layout layout, const T* grad_output,
                                    const T* input, T* grad_weight);

// grad_bias[c] = sum_{n, spatial} grad_output[n, c, spatial].
template <typename T>
void conv_backward_bias_reference(std::int64_t batch, std::int64_t channels, std::int64_t spatial,
                                  detail::Layout layout, const T* grad_output, T* grad_bias);

}  // namespace convkit::host
