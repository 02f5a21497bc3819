#pragma once
// The arithmetic of the binary elementwise ops, one definition for every backend (constexpr, so
// CUDA kernels call it too).
#include <cstdint>
#include <type_traits>

namespace convkit::detail {

enum class BinaryOp : std::uint8_t {
    Add,
    Sub,
    Mul,
    Div,
    NegDivSquare,  // -a / b^2: d(a / b)/db, used by div's backward
};

const char* binary_op_name(BinaryOp op);  // "add", "sub", ...

template <BinaryOp op, typename T>
constexpr T binary_value(T a, T b) {
    if constexpr (op == BinaryOp::Add) return a + b;
    if constexpr (op == BinaryOp::Sub) return a - b;
    if constexpr (op == BinaryOp::Mul) return a * b;
    if constexpr (op == BinaryOp::Div) return a / b;
    if constexpr (op == BinaryOp::NegDivSquare) return -a / (b * b);
    return T(0);
}

// Calls f(std::integral_constant<BinaryOp, op>{}) for the runtime `op`, so backends instantiate
// one loop per op instead of switching per element.
template <typename F>
void dispatch_binary_op(BinaryOp op, F&& f) {
    switch (op) {
        case BinaryOp::Add: return f(std::integral_constant<BinaryOp, BinaryOp::Add>{});
        case BinaryOp::Sub: return f(std::integral_constant<BinaryOp, BinaryOp::Sub>{});
        case BinaryOp::Mul: return f(std::integral_constant<BinaryOp, BinaryOp::Mul>{});
        case BinaryOp::Div: return f(std::integral_constant<BinaryOp, BinaryOp::Div>{});
        case BinaryOp::NegDivSquare: return f(std::integral_constant<BinaryOp, BinaryOp::NegDivSquare>{});
    }
}

}  // namespace convkit::detail
