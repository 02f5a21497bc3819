#pragma once
// Softmax and log-softmax along one dim of a float32/float64 tensor of any rank, on the host or
// a CUDA device, with PyTorch's semantics (channels-last inputs are converted to contiguous at
// entry, counted in layout_conversions(); results are contiguous):
//   softmax(x)_k     = exp(x_k - m) / sum_j exp(x_j - m),   m = max_j x_j (for stability)
//   log_softmax(x)_k = x_k - m - log(sum_j exp(x_j - m))
// `dim` may be negative (counted from the end). A -inf among finite values gives 0 (-inf for
// log_softmax); a slice that is all -inf, or holds +inf or NaN, gives NaN throughout, as in
// PyTorch. Both are differentiable (convkit/autograd.h).
#include "convkit/tensor.h"

namespace convkit {

Tensor softmax(const Tensor& x, int dim);
Tensor log_softmax(const Tensor& x, int dim);

// The backward passes, from the forward op's output y and the gradient of y:
//   softmax:     dx = y * (dy - sum_dim(dy * y))
//   log_softmax: dx = dy - exp(y) * sum_dim(dy)
Tensor softmax_backward(const Tensor& grad_output, const Tensor& output, int dim);
Tensor log_softmax_backward(const Tensor& grad_output, const Tensor& output, int dim);

}  // namespace convkit
