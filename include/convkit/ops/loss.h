#pragma once
// Loss functions with PyTorch's semantics (torch.nn.functional), on float32/float64 tensors on
// the host or a CUDA device. Each is one fused op: the per-element (or per-row) losses and
// their reduction are computed together, without intermediate tensors, and the reduction is a
// fixed-order sum accumulated in double (the same result on every run). All are differentiable
// in their floating inputs (convkit/autograd.h).
// Memory format (convkit/memory_format.h): channels-last inputs are converted to contiguous at
// entry (counted in layout_conversions()); results are contiguous.
#include <cstdint>

#include "convkit/tensor.h"

namespace convkit {

// How the per-element losses become the result: kept as they are (None, the shape of the
// targets), averaged (Mean) or summed (Sum) into a rank-0 tensor.
enum class Reduction : std::uint8_t { None, Mean, Sum };
const char* reduction_name(Reduction reduction);  // "none", "mean", "sum"

// Cross-entropy over class indices, PyTorch's F.cross_entropy:
//   logits  [N, C] or [N, C, d1, ...] (a class score per pixel, for segmentation), or [C];
//   targets int64 [N] or [N, d1, ...] (or a scalar for [C] logits), values in [0, C) or
//           ignore_index, on the same device.
//   loss_i = (1 - label_smoothing) * (-log_softmax(x_i)[t_i])
//            + label_smoothing * mean over classes c of (-log_softmax(x_i)[c])
// Targets equal to ignore_index contribute 0 (None) and are left out of the Mean's count; Mean
// over no counted target is NaN, as in PyTorch. A target outside [0, C) that is not
// ignore_index is an InvalidArgument naming its value and position. On a CUDA device the check
// runs inside the kernel and the call does not wait: the error is raised by the next wait of the
// host that reads the device (a copy to the host, synchronize()), as PyTorch's device asserts are
// (docs/losses.md).
// The gradient flows to logits only; label_smoothing must be in [0, 1].
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing = 0.0,
                     Reduction reduction = Reduction::Mean, std::int64_t ignore_index = -100);

// Mean squared error (input - target)^2 of two tensors of one shape (no broadcasting: a
// mismatch is an InvalidArgument). Differentiable in both.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);

// Binary cross-entropy on logits, in the stable form
//   loss = (1 - t) x + (1 + (pos_weight - 1) t) log(1 + exp(-x)),
// which is max(x, 0) - x t + log(1 + exp(-|x|)) without pos_weight. targets (probabilities in
// [0, 1], not checked, as in PyTorch) have the shape of logits; pos_weight, if given, weights
// the positive term and broadcasts against logits (e.g. [C] for logits [N, C], [C, 1, 1] for
// [N, C, H, W]). Differentiable in logits and targets; pos_weight is a constant.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        Reduction reduction = Reduction::Mean, const Tensor& pos_weight = Tensor());

}  // namespace convkit
