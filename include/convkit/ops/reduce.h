#pragma once
// Reductions on float32/float64 tensors (torch.sum, torch.mean, torch.max, torch.argmax).
// Dims may be negative (counted from the end); a rank-0 tensor reduces over dim 0 or -1 as if
// it were [1]. Without keepdim the reduced dims are removed; with it they stay, of size 1.
// Sums and means accumulate in double on every device and round once.
// Memory format (convkit/memory_format.h): channels-last inputs are converted to contiguous at
// entry (counted in layout_conversions()); results are contiguous.
#include <cstdint>
#include <vector>

#include "convkit/tensor.h"

namespace convkit {

// Of all elements, as a rank-0 tensor. sum of no elements is 0, mean of none is NaN.
Tensor sum(const Tensor& t);
Tensor mean(const Tensor& t);
// Over `dims` (each at most once). An empty list reduces over every dim, as in PyTorch.
Tensor sum(const Tensor& t, const std::vector<int>& dims, bool keepdim = false);
Tensor mean(const Tensor& t, const std::vector<int>& dims, bool keepdim = false);

// The largest element (NaN if there is one), as a rank-0 tensor; the tensor must not be empty.
// The gradient goes to the first maximal element in row-major order (torch.max(t) instead
// shares it among ties).
Tensor max(const Tensor& t);
// The largest element along `dim` (torch.max(t, dim).values); that dim must not be empty. The
// gradient goes to the first maximal element of each row, as in PyTorch; NaN counts as maximal.
Tensor max(const Tensor& t, int dim, bool keepdim = false);
// The position along `dim` of the first maximal element (NaN counts as maximal), as int64;
// not differentiable (torch.argmax).
Tensor argmax(const Tensor& t, int dim, bool keepdim = false);

}  // namespace convkit
