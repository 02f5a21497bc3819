#pragma once
// Elementwise arithmetic on float32/float64 tensors of one device, with broadcasting as in
// NumPy and PyTorch: shapes are aligned at their last dim, and a dim of size 1 (or a missing
// leading dim) stretches to the other operand's size, e.g. [N, C, H, W] + [C, 1, 1].
// All are differentiable; the gradient of a broadcast operand is summed back to its shape.
#include "convkit/tensor.h"

namespace convkit {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }

// The broadcast of `gradient` summed back to `shape` (which must broadcast to its shape): the
// gradient of an operand that was broadcast. Returns `gradient` itself when the shapes agree.
Tensor sum_to_shape(const Tensor& gradient, const Shape& shape);

}  // namespace convkit
