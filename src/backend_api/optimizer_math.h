#pragma once
// The per-element arithmetic of the optimizers, one definition for the host loop and the CUDA
// kernel (constexpr: the .cu files are built with --expt-relaxed-constexpr).
//
// Each update follows PyTorch 1.13's default single-tensor implementation (foreach=False)
// operation by operation, rounding to T where PyTorch's in-place ops round, with the scalar
// coefficients formed in double and then cast to T, as PyTorch forms them in Python and casts
// them to the tensor's type. Results still differ from PyTorch in the last bits where its
// vectorised CPU kernels fuse a multiply-add; docs/optimizers.md has the formulas.
//
// A "table" is a list of per-tensor entries (pointers into one parameter and its state, its
// element count and any per-tensor coefficient); the host loop and the multi-tensor kernel both
// walk a table and call the same *_update_element for each element.
#include <cmath>
#include <cstdint>

namespace convkit::detail {

// ---- SGD (torch.optim.SGD) --------------------------------------------------------------------

template <typename T>
struct SgdCoefficients {
    T lr;
    T momentum;
    T one_minus_dampening;  // PyTorch computes 1 - dampening in double
    T weight_decay;
    bool nesterov;
    bool maximize;
};

template <typename T>
SgdCoefficients<T> make_sgd_coefficients(double lr, double momentum, double dampening, double weight_decay,
                                         bool nesterov, bool maximize) {
    return {static_cast<T>(lr),
            static_cast<T>(momentum),
            static_cast<T>(1.0 - dampening),
            static_cast<T>(weight_decay),
            nesterov,
            maximize};
}

template <typename T>
struct SgdTensor {
    T* param;
    const T* grad;
    T* momentum_buffer;  // null when momentum is 0: no buffer is read or written
    std::int64_t numel;
    bool first_step;  // the buffer is new: it becomes d_p itself (no dampening), as in PyTorch
};

//   d_p = ±grad (+ weight_decay * p)
//   buf = first step ? d_p : momentum * buf + (1 - dampening) * d_p
//   d_p = nesterov ? d_p + momentum * buf : buf          (when momentum != 0)
//   p   = p - lr * d_p
template <typename T>
constexpr void sgd_update_element(const SgdCoefficients<T>& c, const SgdTensor<T>& t, std::int64_t i) {
    const T p = t.param[i];
    T d = c.maximize ? -t.grad[i] : t.grad[i];
    if (c.weight_decay != T(0)) d = d + c.weight_decay * p;
    if (t.momentum_buffer != nullptr) {
        const T buffer = t.first_step ? d : t.momentum_buffer[i] * c.momentum + c.one_minus_dampening * d;
        t.momentum_buffer[i] = buffer;
        d = c.nesterov ? d + c.momentum * buffer : buffer;
    }
    t.param[i] = p + (-c.lr) * d;
}

// ---- Adam and AdamW (torch.optim.Adam, torch.optim.AdamW) -------------------------------------

template <typename T>
struct AdamCoefficients {
    T beta1;
    T beta2;
    T one_minus_beta1;
    T one_minus_beta2;
    T l2_weight_decay;  // Adam: added to the gradient; AdamW: 0
    T decoupled_decay;  // AdamW: 1 - lr * weight_decay, multiplied into p first; Adam: unused
    T eps;
    bool decoupled;
    bool maximize;
};

template <typename T>
AdamCoefficients<T> make_adam_coefficients(double lr, double beta1, double beta2, double eps, double weight_decay,
                                           bool decoupled, bool maximize) {
    return {static_cast<T>(beta1),
            static_cast<T>(beta2),
            static_cast<T>(1.0 - beta1),
            static_cast<T>(1.0 - beta2),
            static_cast<T>(decoupled ? 0.0 : weight_decay),
            static_cast<T>(1.0 - lr * weight_decay),
            static_cast<T>(eps),
            decoupled,
            maximize};
}

template <typename T>
struct AdamTensor {
    T* param;
    const T* grad;
    T* exp_avg;
    T* exp_avg_sq;
    T* max_exp_avg_sq;  // null unless amsgrad
    std::int64_t numel;
    // Per tensor, since each parameter counts its own steps (one without a grad is skipped):
    T step_size;              // lr / (1 - beta1^step)
    T bias_correction2_sqrt;  // sqrt(1 - beta2^step)
};

// The step's scalars for a parameter at `step` (already incremented), in double as in PyTorch.
template <typename T>
void set_adam_step_scalars(AdamTensor<T>& t, double lr, double beta1, double beta2, std::int64_t step) {
    const auto s = static_cast<double>(step);
    t.step_size = static_cast<T>(lr / (1.0 - std::pow(beta1, s)));
    t.bias_correction2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(beta2, s)));
}

// torch.maximum: NaN in either operand gives NaN.
template <typename T>
constexpr T nan_propagating_max(T a, T b) {
    return (a != a || a > b) ? a : b;
}

template <typename T>
constexpr T square_root(T x) {
    return std::sqrt(x);
}

//   g = ±grad (+ weight_decay * p for Adam);  p = p * (1 - lr * weight_decay) for AdamW
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g;  v_max = max(v_max, v) with amsgrad
//   p = p - step_size * m / (sqrt(v or v_max) / sqrt(1 - beta2^step) + eps)
template <typename T>
constexpr void adam_update_element(const AdamCoefficients<T>& c, const AdamTensor<T>& t, std::int64_t i) {
    T p = t.param[i];
    T g = c.maximize ? -t.grad[i] : t.grad[i];
    if (c.decoupled) {
        p = p * c.decoupled_decay;
    } else if (c.l2_weight_decay != T(0)) {
        g = g + c.l2_weight_decay * p;
    }
    const T m = t.exp_avg[i] * c.beta1 + c.one_minus_beta1 * g;
    T v = t.exp_avg_sq[i] * c.beta2 + c.one_minus_beta2 * g * g;
    t.exp_avg[i] = m;
    t.exp_avg_sq[i] = v;
    if (t.max_exp_avg_sq != nullptr) {
        v = nan_propagating_max(t.max_exp_avg_sq[i], v);
        t.max_exp_avg_sq[i] = v;
    }
    const T denominator = square_root(v) / t.bias_correction2_sqrt + c.eps;
    // addcdiv_(m, denom, value=-step_size) computes p + (-step_size * m) / denom.
    t.param[i] = p + (-t.step_size) * m / denominator;
}

}  // namespace convkit::detail
