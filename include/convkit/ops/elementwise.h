#pragma once
// Elementwise arithmetic on float32/float64 tensors of one device, with broadcasting as in
// NumPy and PyTorch: shapes are aligned at their last dim, and a dim of size 1 (or a missing
// leading dim) stretches to the other operand's size, e.g. [N, C, H, W] + [C, 1, 1].
// All are differentiable; the gradient of a broadcast operand is summed back to its shape.
// Memory format (convkit/memory_format.h): unary and scalar ops, and binary ops on operands of
// one shape and one format, run on the buffers and return that format. A broadcasting binary op
// reads each operand in its own format and returns the format of the operand of the result's
// shape (a's where both are, contiguous where neither is): a channels-last activation plus a
// [C, 1, 1] bias is channels-last. Operands of one shape in two formats convert b to a's format
// (counted in layout_conversions()) and return a's.
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

// Unary ops, elementwise (as the torch functions of the same names). All differentiable; float32
// tensors compute in float32 with the scalar arguments rounded to float32, as PyTorch does.
Tensor neg(const Tensor& t);
Tensor exp(const Tensor& t);
Tensor log(const Tensor& t);   // NaN below 0, -inf at 0
Tensor sqrt(const Tensor& t);  // NaN below 0
Tensor square(const Tensor& t);
Tensor abs(const Tensor& t);  // gradient sign(x), 0 at 0 (torch.abs)

// With a scalar: t + value, t * value, t / value, t ^ exponent (torch.pow with a scalar
// exponent; the gradient of a zero exponent is 0 everywhere).
Tensor add_scalar(const Tensor& t, double value);
Tensor mul_scalar(const Tensor& t, double value);
Tensor div_scalar(const Tensor& t, double value);
Tensor pow_scalar(const Tensor& t, double exponent);
// min(max(t, lo), hi) as torch.clamp: NaN stays NaN, lo > hi gives hi everywhere, and the
// gradient passes where lo <= t <= hi (edges included).
Tensor clamp(const Tensor& t, double lo, double hi);

inline Tensor operator-(const Tensor& t) { return neg(t); }
inline Tensor operator+(const Tensor& t, double value) { return add_scalar(t, value); }
inline Tensor operator+(double value, const Tensor& t) { return add_scalar(t, value); }
inline Tensor operator-(const Tensor& t, double value) { return add_scalar(t, -value); }
inline Tensor operator*(const Tensor& t, double value) { return mul_scalar(t, value); }
inline Tensor operator*(double value, const Tensor& t) { return mul_scalar(t, value); }
inline Tensor operator/(const Tensor& t, double value) { return div_scalar(t, value); }

// The broadcast of `gradient` summed back to `shape` (which must broadcast to its shape): the
// gradient of an operand that was broadcast. Returns `gradient` itself when the shapes agree.
Tensor sum_to_shape(const Tensor& gradient, const Shape& shape);

}  // namespace convkit
