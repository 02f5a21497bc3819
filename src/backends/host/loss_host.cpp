#include "backends/host/loss_host.h"

#include <limits>

#include "backend_api/dtype_dispatch.h"

namespace convkit::detail {

namespace {
// log(sum_c exp(x_c)) of one row, by way of its max.
template <typename T>
double row_log_sum_exp(const SoftmaxGeometry& g, const T* x, std::int64_t start) {
    double max = -std::numeric_limits<double>::infinity();
    for (std::int64_t k = 0; k < g.dim; ++k) max = max_or_nan<double>(max, x[g.element(start, k)]);
    double sum = 0;
    for (std::int64_t k = 0; k < g.dim; ++k) sum += softmax_term<double>(x[g.element(start, k)], max);
    return max + std::log(sum);
}

template <typename T>
double row_sum(const SoftmaxGeometry& g, const T* x, std::int64_t start) {
    double sum = 0;
    for (std::int64_t k = 0; k < g.dim; ++k) sum += x[g.element(start, k)];
    return sum;
}

double reduced(Reduction reduction, double sum, double count) {
    return reduction == Reduction::Mean ? sum / count : sum;
}
}  // namespace

CrossEntropyStatus cross_entropy_forward_host(const CrossEntropyParams& p, Reduction reduction, DType dtype,
                                              const void* logits, const std::int64_t* targets, void* out,
                                              void* row_lse) {
    CrossEntropyStatus status;
    for (std::int64_t row = 0; row < p.g.rows(); ++row) {
        if (!p.ignored(targets[row]) && !p.valid(targets[row])) {
            status.first_invalid_row = row;
            return status;
        }
    }
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* x = static_cast<const T*>(logits);
        T* result = static_cast<T*>(out);
        double total = 0;
        for (std::int64_t row = 0; row < p.g.rows(); ++row) {
            const std::int64_t start = p.g.row_start(row);
            const double lse = row_log_sum_exp(p.g, x, start);
            static_cast<T*>(row_lse)[row] = static_cast<T>(lse);
            double loss = 0;
            if (!p.ignored(targets[row])) {
                const double smoothing_sum = p.label_smoothing > 0 ? row_sum(p.g, x, start) : 0.0;
                loss = cross_entropy_row_loss<double>(p, lse, x[p.g.element(start, targets[row])], smoothing_sum);
                ++status.counted_rows;
            }
            if (reduction == Reduction::None) result[row] = static_cast<T>(loss);
            total += loss;
        }
        if (reduction != Reduction::None) {
            result[0] = static_cast<T>(reduced(reduction, total, static_cast<double>(status.counted_rows)));
        }
    });
    return status;
}

void cross_entropy_backward_host(const CrossEntropyParams& p, DType dtype, const void* grad_output, bool per_row,
                                 double scale, const void* logits, const std::int64_t* targets, const void* row_lse,
                                 void* grad_logits) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* x = static_cast<const T*>(logits);
        const T* lse = static_cast<const T*>(row_lse);
        T* dx = static_cast<T*>(grad_logits);
        for (std::int64_t i = 0; i < p.g.count(); ++i) {
            const std::int64_t row = p.g.row_of(i);
            const std::int64_t target = targets[row];
            if (p.ignored(target) || !p.valid(target)) {
                dx[i] = T(0);
                continue;
            }
            const double dy = element_gradient(static_cast<const T*>(grad_output), per_row, row, scale);
            dx[i] = static_cast<T>(
                cross_entropy_logit_gradient<double>(p, dy, x[i], lse[row], p.g.position_in_row(i) == target));
        }
    });
}

void pointwise_loss_forward_host(PointwiseLoss loss, Reduction reduction, const BroadcastGeometry& pos_weight_geometry,
                                 DType dtype, const void* input, const void* target, const void* pos_weight,
                                 void* out) {
    const BroadcastGeometry& g = pos_weight_geometry;
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* x = static_cast<const T*>(input);
        const T* t = static_cast<const T*>(target);
        const T* pw = static_cast<const T*>(pos_weight);
        T* result = static_cast<T*>(out);
        dispatch_pointwise_loss(loss, [&](auto loss_constant) {
            constexpr PointwiseLoss kLoss = decltype(loss_constant)::value;
            double total = 0;
            for (std::int64_t i = 0; i < g.count; ++i) {
                const double weight = pw ? static_cast<double>(pw[broadcast_offsets(g, i).b]) : 1.0;
                const double value = pointwise_loss_value<kLoss, double>(x[i], t[i], weight);
                if (reduction == Reduction::None) result[i] = static_cast<T>(value);
                total += value;
            }
            if (reduction != Reduction::None) {
                result[0] = static_cast<T>(reduced(reduction, total, static_cast<double>(g.count)));
            }
        });
    });
}

void pointwise_loss_backward_host(PointwiseLoss loss, const BroadcastGeometry& pos_weight_geometry, DType dtype,
                                  const void* grad_output, bool per_element, double scale, const void* input,
                                  const void* target, const void* pos_weight, void* grad_input, void* grad_target) {
    const BroadcastGeometry& g = pos_weight_geometry;
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* x = static_cast<const T*>(input);
        const T* t = static_cast<const T*>(target);
        const T* pw = static_cast<const T*>(pos_weight);
        T* dx = static_cast<T*>(grad_input);
        T* dt = static_cast<T*>(grad_target);
        dispatch_pointwise_loss(loss, [&](auto loss_constant) {
            constexpr PointwiseLoss kLoss = decltype(loss_constant)::value;
            for (std::int64_t i = 0; i < g.count; ++i) {
                const double dy = element_gradient(static_cast<const T*>(grad_output), per_element, i, scale);
                const double weight = pw ? static_cast<double>(pw[broadcast_offsets(g, i).b]) : 1.0;
                const PointwiseGradients<double> d = pointwise_loss_gradients<kLoss, double>(x[i], t[i], weight);
                if (dx) dx[i] = static_cast<T>(dy * d.input);
                if (dt) dt[i] = static_cast<T>(dy * d.target);
            }
        });
    });
}

}  // namespace convkit::detail
