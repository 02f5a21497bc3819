// Unary elementwise ops (neg, exp, ..., clamp, and the ops with a scalar): checks, device
// dispatch, autograd. The activations (ops/activation.cpp) go through the same apply_unary.
#include "ops/unary.h"

#include "autograd/graph.h"
#include "backends/host/unary_host.h"
#include "convkit/ops/elementwise.h"
#include "kernels/unary.h"
#include "ops/op_support.h"

namespace convkit {

namespace detail {
namespace {
// Elementwise, so both passes run on the buffers in either memory format and keep it.
Tensor unary_forward_raw(UnaryOp op, const Tensor& x, UnaryScalars scalars) {
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device(), x.memory_format());
    if (x.device().is_host()) {
        unary_forward_host(op, scalars, x.dtype(), x.raw_physical_data(), y.raw_physical_data(), x.numel());
    } else {
        kernels::unary_forward(op, scalars, x.dtype(), x.raw_physical_data(), y.raw_physical_data(), x.numel(),
                               stream_of(x));
    }
    return y;
}

}  // namespace

// dy is brought to the format of the saved tensor (the op's input or output) when they differ.
Tensor unary_backward_raw(UnaryOp op, const Tensor& dy_in, const Tensor& saved, UnaryScalars scalars) {
    const Tensor dy = operand_in_format(dy_in, saved.memory_format());
    Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device(), dy.memory_format());
    if (dy.device().is_host()) {
        unary_backward_host(op, scalars, dy.dtype(), dy.raw_physical_data(), saved.raw_physical_data(),
                            dx.raw_physical_data(), dy.numel());
    } else {
        kernels::unary_backward(op, scalars, dy.dtype(), dy.raw_physical_data(), saved.raw_physical_data(),
                                dx.raw_physical_data(), dy.numel(), stream_of(dy));
    }
    return dx;
}

Tensor apply_unary(UnaryOp op, const Tensor& t, UnaryScalars scalars) {
    const std::string name = unary_op_name(op);
    check_same_device_and_dtype(name, {{"input", t}}, ReducedPrecision::ComputedInFloat32, Layouts::Either);
    // bfloat16/float16 on the host: the float32 op between two recorded conversions, so forward
    // and backward both compute in float32 and round once. The CUDA kernels compute 16-bit
    // storage in float themselves (one rounding per value, the same), without the copies.
    if (is_reduced_precision(t.dtype()) && t.device().is_host()) {
        return apply_unary(op, widened_to_float32(t), scalars).to(t.dtype());
    }
    Tensor y = unary_forward_raw(op, t, scalars);
    if (!autograd::should_record({t})) return y;
    // Keep only what the gradient reads: nothing, the input, or the output.
    autograd::SavedTensor saved;
    const GradientSource source = unary_gradient_source(op);
    if (source == GradientSource::Input) saved = autograd::SavedTensor(t);
    if (source == GradientSource::Output) saved = autograd::SavedTensor(y);
    autograd::record(name, y, {t}, [op, scalars, saved](const Tensor& dy, const autograd::NeedsGrad&) {
        // Ops whose gradient reads nothing are passed dy in the saved slot; they ignore it.
        const Tensor& kept = saved.defined() ? saved.get() : dy;
        return std::vector<Tensor>{unary_backward_raw(op, dy, kept, scalars)};
    });
    return y;
}

const char* unary_op_name(UnaryOp op) {
    // clang-format off
    switch (op) {
        case UnaryOp::Neg: return "neg";
        case UnaryOp::Exp: return "exp";
        case UnaryOp::Log: return "log";
        case UnaryOp::Sqrt: return "sqrt";
        case UnaryOp::Square: return "square";
        case UnaryOp::Abs: return "abs";
        case UnaryOp::AddScalar: return "add_scalar";
        case UnaryOp::MulScalar: return "mul_scalar";
        case UnaryOp::DivScalar: return "div_scalar";
        case UnaryOp::PowScalar: return "pow_scalar";
        case UnaryOp::Clamp: return "clamp";
        case UnaryOp::Relu: return "relu";
        case UnaryOp::LeakyRelu: return "leaky_relu";
        case UnaryOp::Sigmoid: return "sigmoid";
        case UnaryOp::Tanh: return "tanh";
        case UnaryOp::Gelu: return "gelu";
        case UnaryOp::GeluTanh: return "gelu_tanh";
    }
    // clang-format on
    return "unary";
}
}  // namespace detail

using detail::apply_unary;
using detail::UnaryOp;

// clang-format off
Tensor neg(const Tensor& t) { return apply_unary(UnaryOp::Neg, t); }
Tensor exp(const Tensor& t) { return apply_unary(UnaryOp::Exp, t); }
Tensor log(const Tensor& t) { return apply_unary(UnaryOp::Log, t); }
Tensor sqrt(const Tensor& t) { return apply_unary(UnaryOp::Sqrt, t); }
Tensor square(const Tensor& t) { return apply_unary(UnaryOp::Square, t); }
Tensor abs(const Tensor& t) { return apply_unary(UnaryOp::Abs, t); }
Tensor add_scalar(const Tensor& t, double value) { return apply_unary(UnaryOp::AddScalar, t, {value}); }
Tensor mul_scalar(const Tensor& t, double value) { return apply_unary(UnaryOp::MulScalar, t, {value}); }
Tensor div_scalar(const Tensor& t, double value) { return apply_unary(UnaryOp::DivScalar, t, {value}); }
Tensor pow_scalar(const Tensor& t, double exponent) { return apply_unary(UnaryOp::PowScalar, t, {exponent}); }
Tensor clamp(const Tensor& t, double lo, double hi) { return apply_unary(UnaryOp::Clamp, t, {lo, hi}); }
// clang-format on

}  // namespace convkit
