#pragma once
// Batch normalization with PyTorch's semantics (torch.nn.functional.batch_norm and the
// BatchNorm1d/2d/3d modules), differentiable, on host and CUDA tensors.
// Dtypes and memory formats: float32/float64 everywhere, bfloat16/float16 computed in float (on
// the host in float32 copies); the result has the input's memory format. The CUDA kernels read
// channels-last inputs as they are; the host converts them (counted in layout_conversions()).
#include "convkit/tensor.h"

namespace convkit {

// x is [N, C] or [N, C, L] (1d), [N, C, H, W] (2d) or [N, C, D, H, W] (3d); every channel is
// normalized over the batch and spatial positions:
//   y = (x - mean) / sqrt(var + eps) * weight + bias.
// weight and bias are [C], or undefined for no affine parameters (affine=False).
// running_mean and running_var are [C], or both undefined (track_running_stats=False).
//
// Training (or no running statistics): mean and var are the batch's, var biased (divisor
// N * spatial), and there must be more than one value per channel. In training the running
// statistics, when given, are updated in place (their storage version bumped) with the batch's
// mean and UNBIASED variance (divisor N * spatial - 1):
//   running = (1 - momentum) * running + momentum * batch statistic.
// Evaluation with running statistics: mean and var are the running ones, and the op is an
// affine map of x.
// The gradient flows to x, weight and bias (never to the running statistics).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean, Tensor& running_var,
                  bool training, double momentum = 0.1, double eps = 1e-5);

// relu(batch_norm(...)) with the same arguments and result; on CUDA tensors one fused op, whose
// forward writes relu(y) in the normalization's pass and whose backward takes the gradient
// through the ReLU inside batch norm's own passes (y recomputed from x, not stored or re-read):
// a ReLU pass and its gradient's pass fewer. On the host it is the composition.
Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                       Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

}  // namespace convkit
