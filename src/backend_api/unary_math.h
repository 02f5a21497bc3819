#pragma once
// The arithmetic of the unary elementwise ops and activations, one definition for every backend
// (constexpr, so CUDA kernels call it too; nvcc supplies device versions of the <cmath>
// functions). Each op has a forward value and a gradient; the gradient reads either the op's
// input or its output, whichever the formula needs (sigmoid and tanh from the output, as in
// PyTorch, so the input need not be kept).
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace convkit::detail {

enum class UnaryOp : std::uint8_t {
    Neg,
    Exp,
    Log,
    Sqrt,
    Square,
    Abs,
    AddScalar,  // x + a
    MulScalar,  // x * a
    DivScalar,  // x / a
    PowScalar,  // x ^ a
    Clamp,      // min(max(x, a), b)
    Relu,
    LeakyRelu,  // x > 0 ? x : a x
    Sigmoid,
    Tanh,
    Gelu,      // x Phi(x), the exact (erf) form
    GeluTanh,  // the tanh approximation of GELU
};

// The op's scalar arguments (the scalar, the exponent, the clamp bounds, the slope); unused ones
// are ignored. Converted to the element type before use, as PyTorch does with Python scalars.
struct UnaryScalars {
    double a = 0;
    double b = 0;
};

const char* unary_op_name(UnaryOp op);  // "neg", "exp", ..., "gelu"

// What the gradient of an op reads besides the output's gradient.
enum class GradientSource : std::uint8_t { Nothing, Input, Output };

constexpr GradientSource unary_gradient_source(UnaryOp op) {
    switch (op) {
        case UnaryOp::Neg:
        case UnaryOp::AddScalar:
        case UnaryOp::MulScalar:
        case UnaryOp::DivScalar:
            return GradientSource::Nothing;
        case UnaryOp::Exp:
        case UnaryOp::Sqrt:
        case UnaryOp::Relu:
        case UnaryOp::Sigmoid:
        case UnaryOp::Tanh:
            return GradientSource::Output;
        default:
            return GradientSource::Input;
    }
}

// sqrt(2 / pi) and the cubic coefficient of the tanh form of GELU (Hendrycks & Gimpel, 2016).
inline constexpr double kGeluTanhScale = 0.7978845608028654;
inline constexpr double kGeluTanhCubic = 0.044715;
inline constexpr double kInverseSqrt2 = 0.7071067811865476;
inline constexpr double kInverseSqrt2Pi = 0.3989422804014327;

template <UnaryOp op, typename T>
constexpr T unary_value(T x, UnaryScalars s) {
    [[maybe_unused]] const T a = static_cast<T>(s.a);
    if constexpr (op == UnaryOp::Neg) return -x;
    if constexpr (op == UnaryOp::Exp) return std::exp(x);
    if constexpr (op == UnaryOp::Log) return std::log(x);
    if constexpr (op == UnaryOp::Sqrt) return std::sqrt(x);
    if constexpr (op == UnaryOp::Square) return x * x;
    if constexpr (op == UnaryOp::Abs) return std::fabs(x);
    if constexpr (op == UnaryOp::AddScalar) return x + a;
    if constexpr (op == UnaryOp::MulScalar) return x * a;
    if constexpr (op == UnaryOp::DivScalar) return x / a;
    if constexpr (op == UnaryOp::PowScalar) return std::pow(x, a);
    if constexpr (op == UnaryOp::Clamp) {
        // In this order a NaN input stays NaN and lo > hi gives hi everywhere, as torch.clamp.
        const T at_least_lo = x < a ? a : x;
        const T hi = static_cast<T>(s.b);
        return at_least_lo > hi ? hi : at_least_lo;
    }
    if constexpr (op == UnaryOp::Relu) return x <= T(0) ? T(0) : x;  // NaN stays NaN
    if constexpr (op == UnaryOp::LeakyRelu) return x > T(0) ? x : x * a;
    if constexpr (op == UnaryOp::Sigmoid) return T(1) / (T(1) + std::exp(-x));
    if constexpr (op == UnaryOp::Tanh) return std::tanh(x);
    if constexpr (op == UnaryOp::Gelu) return T(0.5) * x * (T(1) + std::erf(x * T(kInverseSqrt2)));
    if constexpr (op == UnaryOp::GeluTanh) {
        return T(0.5) * x * (T(1) + std::tanh(T(kGeluTanhScale) * (x + T(kGeluTanhCubic) * x * x * x)));
    }
    return T(0);
}

// The input's gradient from the output's gradient `dy` and `saved`, which is the op's input or
// its output as unary_gradient_source says (anything for GradientSource::Nothing).
template <UnaryOp op, typename T>
constexpr T unary_gradient(T dy, [[maybe_unused]] T saved, UnaryScalars s) {
    [[maybe_unused]] const T a = static_cast<T>(s.a);
    if constexpr (op == UnaryOp::Neg) return -dy;
    if constexpr (op == UnaryOp::Exp) return dy * saved;            // saved = exp(x)
    if constexpr (op == UnaryOp::Log) return dy / saved;            // saved = x
    if constexpr (op == UnaryOp::Sqrt) return dy / (T(2) * saved);  // saved = sqrt(x)
    if constexpr (op == UnaryOp::Square) return dy * T(2) * saved;
    if constexpr (op == UnaryOp::Abs) {
        // sign(x), 0 at 0 (torch.sgn); NaN passes through the product.
        const T sign = saved > T(0) ? T(1) : (saved < T(0) ? T(-1) : saved * T(0));
        return dy * sign;
    }
    if constexpr (op == UnaryOp::AddScalar) return dy;
    if constexpr (op == UnaryOp::MulScalar) return dy * a;
    if constexpr (op == UnaryOp::DivScalar) return dy / a;
    if constexpr (op == UnaryOp::PowScalar) {
        // A zero exponent has zero gradient, also at x = 0 where 0 * x^-1 would be NaN.
        return a == T(0) ? T(0) : dy * a * std::pow(saved, a - T(1));
    }
    if constexpr (op == UnaryOp::Clamp) {
        // Inside the closed interval the gradient passes, as torch.clamp's backward.
        return saved >= a && saved <= static_cast<T>(s.b) ? dy : T(0);
    }
    if constexpr (op == UnaryOp::Relu) return saved > T(0) ? dy : T(0);  // saved = relu(x)
    if constexpr (op == UnaryOp::LeakyRelu) return saved > T(0) ? dy : dy * a;
    if constexpr (op == UnaryOp::Sigmoid) return dy * saved * (T(1) - saved);  // saved = sigmoid(x)
    if constexpr (op == UnaryOp::Tanh) return dy * (T(1) - saved * saved);     // saved = tanh(x)
    if constexpr (op == UnaryOp::Gelu) {
        // d/dx x Phi(x) = Phi(x) + x phi(x).
        const T cdf = T(0.5) * (T(1) + std::erf(saved * T(kInverseSqrt2)));
        const T pdf = T(kInverseSqrt2Pi) * std::exp(T(-0.5) * saved * saved);
        return dy * (cdf + saved * pdf);
    }
    if constexpr (op == UnaryOp::GeluTanh) {
        const T x = saved;
        const T t = std::tanh(T(kGeluTanhScale) * (x + T(kGeluTanhCubic) * x * x * x));
        const T inner_derivative = T(kGeluTanhScale) * (T(1) + T(3 * kGeluTanhCubic) * x * x);
        return dy * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * inner_derivative);
    }
    return T(0);
}

// Calls f(std::integral_constant<UnaryOp, op>{}) for the runtime `op`, so backends instantiate
// one loop per op instead of switching per element.
template <typename F>
void dispatch_unary_op(UnaryOp op, F&& f) {
    using U = UnaryOp;
    // One line per op reads as a table.
    // clang-format off
    switch (op) {
        case U::Neg: return f(std::integral_constant<U, U::Neg>{});
        case U::Exp: return f(std::integral_constant<U, U::Exp>{});
        case U::Log: return f(std::integral_constant<U, U::Log>{});
        case U::Sqrt: return f(std::integral_constant<U, U::Sqrt>{});
        case U::Square: return f(std::integral_constant<U, U::Square>{});
        case U::Abs: return f(std::integral_constant<U, U::Abs>{});
        case U::AddScalar: return f(std::integral_constant<U, U::AddScalar>{});
        case U::MulScalar: return f(std::integral_constant<U, U::MulScalar>{});
        case U::DivScalar: return f(std::integral_constant<U, U::DivScalar>{});
        case U::PowScalar: return f(std::integral_constant<U, U::PowScalar>{});
        case U::Clamp: return f(std::integral_constant<U, U::Clamp>{});
        case U::Relu: return f(std::integral_constant<U, U::Relu>{});
        case U::LeakyRelu: return f(std::integral_constant<U, U::LeakyRelu>{});
        case U::Sigmoid: return f(std::integral_constant<U, U::Sigmoid>{});
        case U::Tanh: return f(std::integral_constant<U, U::Tanh>{});
        case U::Gelu: return f(std::integral_constant<U, U::Gelu>{});
        case U::GeluTanh: return f(std::integral_constant<U, U::GeluTanh>{});
    }
    // clang-format on
}

}  // namespace convkit::detail
