#pragma once
// The matrix product and the fully connected layer, forward and backward.
//
// Layouts as PyTorch: matrices are row-major 2-D tensors; linear's weight is [out_features,
// in_features] and its bias [out_features]. An undefined Tensor() as bias means no bias.
// Matrices are never channels-last; a channels-last tensor of rank 3-5 is a shape error as any
// other non-matrix.
// Host tensors run on default_host_backend() (the reference, or OpenBLAS for HostBlas); CUDA
// tensors run on cuBLAS whichever GPU backend is chosen, float32 under default_math_mode()
// (TF32 only when it is AllowTF32). Every size must be at least 1. matmul and linear record
// their backward for autograd (the functions below; they do not record themselves).
#include "convkit/tensor.h"

namespace convkit {

// [M, K] x [K, N] -> [M, N].
Tensor matmul(const Tensor& a, const Tensor& b);
// Gradients of matmul given grad_output [M, N]: with respect to a (grad_output b^T, [M, K]) and
// to b (a^T grad_output, [K, N]).
Tensor matmul_backward_a(const Tensor& grad_output, const Tensor& b);
Tensor matmul_backward_b(const Tensor& grad_output, const Tensor& a);

// y = x W^T + b: input [N, in], weight [out, in], bias [out] or undefined -> [N, out].
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias);
inline Tensor linear(const Tensor& input, const Tensor& weight) { return linear(input, weight, Tensor()); }

// Gradients of linear given grad_output [N, out]: with respect to the input (grad_output W,
// [N, in]), the weight (grad_output^T x, [out, in]) and the bias (grad_output summed over the
// batch, [out]).
Tensor linear_backward_input(const Tensor& grad_output, const Tensor& weight);
Tensor linear_backward_weight(const Tensor& grad_output, const Tensor& input);
Tensor linear_backward_bias(const Tensor& grad_output);

}  // namespace convkit
