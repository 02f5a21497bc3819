// Activation functions: entries of the unary op table (ops/unary_math.h), so they share its
// checks, kernels, host loops and autograd recording.
#include "convkit/ops/activation.h"

#include "ops/unary.h"

namespace convkit {

using detail::apply_unary;
using detail::UnaryOp;

Tensor relu(const Tensor& t) {
    return apply_unary(UnaryOp::Relu, t);
}
Tensor leaky_relu(const Tensor& t, double negative_slope) {
    return apply_unary(UnaryOp::LeakyRelu, t, {negative_slope});
}
Tensor sigmoid(const Tensor& t) {
    return apply_unary(UnaryOp::Sigmoid, t);
}
Tensor tanh(const Tensor& t) {
    return apply_unary(UnaryOp::Tanh, t);
}
Tensor gelu(const Tensor& t, GeluApproximation approximate) {
    return apply_unary(approximate == GeluApproximation::Tanh ? UnaryOp::GeluTanh : UnaryOp::Gelu, t);
}

}  // namespace convkit
