#pragma once
// Shape ops with PyTorch semantics, differentiable, on host and CUDA tensors:
// flattening, concatenation and slicing along a dim (U-Net skip connections: concat the encoder's
// features to the decoder's along channels, or crop them first), and nearest-neighbour
// upsampling. Residual addition is `add` (convkit/ops/elementwise.h). Dims may be negative
// (counted from the end). Results are new contiguous tensors (flatten: a view, like reshape).
// Channels-last inputs are converted to contiguous at entry (counted in layout_conversions()).
#include <cstdint>
#include <vector>

#include "convkit/tensor.h"

namespace convkit {

// torch.flatten: dims start_dim..end_dim (inclusive) merged into one. A scalar becomes [1].
Tensor flatten(const Tensor& x, int start_dim = 1, int end_dim = -1);

// torch.cat: the tensors joined along `dim`; all of one device, dtype (any) and rank, equal in
// every other dim. The gradient of each input is its slice of the output's gradient.
Tensor concat(const std::vector<Tensor>& tensors, int dim);

// x[..., start:end, ...] along `dim`, copied. Negative start/end count from the end (as in
// Python); unlike Python, bounds outside [0, size] or start > end are an error rather than
// clamped, since a crop that silently comes out smaller is a bug. The gradient is the output's
// gradient placed into zeros of x's shape.
Tensor slice(const Tensor& x, int dim, std::int64_t start, std::int64_t end);

// torch.split with a list of sizes: consecutive slices along `dim`; the sizes must add up to
// x.size(dim).
std::vector<Tensor> split(const Tensor& x, int dim, const std::vector<std::int64_t>& sizes);

// nn.Upsample(scale_factor=..., mode='nearest') on [N, C, spatial...] with 1 to 3 spatial dims
// (float32/float64): every spatial position repeated scale_factors[d] times along dim d. Give
// one factor per spatial dim, or one for all. Factors are integers >= 1.
Tensor upsample_nearest(const Tensor& x, const std::vector<std::int64_t>& scale_factors);

// nn.Upsample(size=..., mode='nearest'): output position o along a spatial dim reads input
// floor(o * in / out) (downsampling too). One size per spatial dim, or one for all.
Tensor upsample_nearest_to_size(const Tensor& x, const std::vector<std::int64_t>& output_size);

}  // namespace convkit
