#pragma once
// Activation functions, elementwise on float32/float64 tensors of any shape, differentiable.
// Semantics and gradients as torch.nn.functional's functions of the same names.
// Memory format: elementwise on the buffer, so the result has the input's format.
#include "convkit/tensor.h"

namespace convkit {

// max(x, 0); NaN stays NaN; gradient 0 at x = 0 (computed from the output, as PyTorch).
Tensor relu(const Tensor& t);
// x for x > 0, negative_slope * x otherwise; gradient negative_slope at x = 0.
Tensor leaky_relu(const Tensor& t, double negative_slope = 0.01);
// 1 / (1 + e^-x); gradient y (1 - y) from the output y.
Tensor sigmoid(const Tensor& t);
// Gradient 1 - y^2 from the output y.
Tensor tanh(const Tensor& t);

// GELU: x Phi(x) with Phi the standard normal CDF (torch.nn.GELU()), or its tanh approximation
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (torch.nn.GELU(approximate="tanh")).
enum class GeluApproximation { None, Tanh };
Tensor gelu(const Tensor& t, GeluApproximation approximate = GeluApproximation::None);

}  // namespace convkit
