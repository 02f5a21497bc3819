#pragma once
// The arithmetic of the losses, one definition for the host reference and the CUDA kernels
// (constexpr, so kernels call it too). Cross-entropy works on the rows of ops/softmax_math.h:
// logits [N, C, d...] are [outer = N, dim = C, inner = d...], and row r = n * inner + i is the
// class scores of sample n at position i, whose target is targets[r].
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "convkit/ops/loss.h"
#include "backend_api/softmax_math.h"

namespace convkit::detail {

struct CrossEntropyParams {
    SoftmaxGeometry g;  // dim = classes
    double label_smoothing = 0;
    std::int64_t ignore_index = -100;

    constexpr std::int64_t classes() const { return g.dim; }
    constexpr bool ignored(std::int64_t target) const { return target == ignore_index; }
    constexpr bool valid(std::int64_t target) const { return target >= 0 && target < g.dim; }
};

// The loss of one row from its log-sum-exp `lse`, its target's logit and (only read when
// smoothing) the sum of its logits:
//   (1 - eps) * (lse - x_t) + eps * mean_c (lse - x_c)  =  (1 - eps) (lse - x_t) + eps (lse - sum_x / C),
// PyTorch's  (1 - eps) * nll + eps * mean over classes of -log_softmax. With eps = 0 the sum
// is left out entirely, so a -inf logit of another class does not turn 0 * inf into NaN.
template <typename A>
constexpr A cross_entropy_row_loss(const CrossEntropyParams& p, A lse, A target_logit, A logit_sum) {
    const A eps = static_cast<A>(p.label_smoothing);
    const A nll = lse - target_logit;
    if (p.label_smoothing == 0) return nll;
    return (1 - eps) * nll + eps * (lse - logit_sum / static_cast<A>(p.classes()));
}

// d loss_row / d x_c = softmax_c - (1 - eps) [c == t] - eps / C, times the row's gradient.
template <typename A>
constexpr A cross_entropy_logit_gradient(const CrossEntropyParams& p, A row_gradient, A logit, A lse,
                                         bool is_target) {
    const A eps = static_cast<A>(p.label_smoothing);
    const A one_hot = is_target ? 1 - eps : A(0);
    return row_gradient * (std::exp(logit - lse) - one_hot - eps / static_cast<A>(p.classes()));
}

// The losses that are one value per element: (input, target[, pos_weight]) -> loss.
enum class PointwiseLoss : std::uint8_t { SquaredError, BinaryCrossEntropyWithLogits };

const char* pointwise_loss_name(PointwiseLoss loss);  // "mse_loss", "binary_cross_entropy_with_logits"

// log(1 + exp(-x)) without overflow for any x: max(-x, 0) + log1p(exp(-|x|)).
template <typename A>
constexpr A softplus_of_negative(A x) {
    return (x < 0 ? -x : A(0)) + std::log1p(std::exp(-std::fabs(x)));
}

// 1 / (1 + exp(-x)) without overflow.
template <typename A>
constexpr A sigmoid(A x) {
    if (x >= 0) return 1 / (1 + std::exp(-x));
    const A e = std::exp(x);
    return e / (1 + e);
}

// Squared error (x - t)^2. BCE with logits, PyTorch's form:
//   (1 - t) x + (1 + (pw - 1) t) log(1 + exp(-x)),
// which is max(x, 0) - x t + log(1 + exp(-|x|)) when pos_weight pw = 1.
template <PointwiseLoss loss, typename A>
constexpr A pointwise_loss_value(A x, A t, A pos_weight) {
    if constexpr (loss == PointwiseLoss::SquaredError) {
        const A d = x - t;
        return d * d;
    } else {
        return (1 - t) * x + (1 + (pos_weight - 1) * t) * softplus_of_negative(x);
    }
}

// d loss / d x and d loss / d t of one element.
template <typename A>
struct PointwiseGradients {
    A input;
    A target;
};
template <PointwiseLoss loss, typename A>
constexpr PointwiseGradients<A> pointwise_loss_gradients(A x, A t, A pos_weight) {
    if constexpr (loss == PointwiseLoss::SquaredError) {
        const A d = 2 * (x - t);
        return {d, -d};
    } else {
        // d/dx: (1 - t) + (1 + (pw - 1) t) (sigmoid(x) - 1), which is sigmoid(x) - t for pw = 1;
        // d/dt: -x + (pw - 1) log(1 + exp(-x)).
        if (pos_weight == 1) return {sigmoid(x) - t, -x};
        return {(1 - t) + (1 + (pos_weight - 1) * t) * (sigmoid(x) - 1),
                -x + (pos_weight - 1) * softplus_of_negative(x)};
    }
}

// Calls f(std::integral_constant<PointwiseLoss, loss>{}) for the runtime `loss`.
template <typename F>
void dispatch_pointwise_loss(PointwiseLoss loss, F&& f) {
    switch (loss) {
        case PointwiseLoss::SquaredError:
            return f(std::integral_constant<PointwiseLoss, PointwiseLoss::SquaredError>{});
        case PointwiseLoss::BinaryCrossEntropyWithLogits:
            return f(std::integral_constant<PointwiseLoss, PointwiseLoss::BinaryCrossEntropyWithLogits>{});
    }
}

// How the gradient of a loss reaches each element: from grad_output[i] (Reduction::None) or
// from the scalar grad_output[0] times `scale` (1 for Sum, 1 / count for Mean).
template <typename T>
constexpr T element_gradient(const T* grad_output, bool per_element, std::int64_t i, double scale) {
    return per_element ? grad_output[i] : static_cast<T>(grad_output[0] * scale);
}

}  // namespace convkit::detail
