#include "backends/host/batch_norm_host.h"

#include <cmath>

#include "backend_api/dtype_dispatch.h"

namespace convkit::detail {

namespace {
double inverse_std(double var, double eps) {
    return 1.0 / std::sqrt(var + eps);
}

// The affine parameters of channel c as doubles; no parameters is weight 1, bias 0.
template <typename T>
double parameter(const void* values, std::int64_t c, double absent) {
    return values == nullptr ? absent : static_cast<double>(static_cast<const T*>(values)[c]);
}
}  // namespace

void batch_norm_statistics_host(const BatchNormGeometry& g, DType dtype, const void* x, double* mean, double* var,
                                const RunningStatistics& running) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* values = static_cast<const T*>(x);
        const std::int64_t m = g.per_channel();
        for (std::int64_t c = 0; c < g.channels; ++c) {
            double sum = 0;
            for (std::int64_t t = 0; t < m; ++t) sum += values[batch_norm_offset(g, c, t)];
            const double mu = sum / static_cast<double>(m);
            double squares = 0;
            for (std::int64_t t = 0; t < m; ++t) {
                const double deviation = values[batch_norm_offset(g, c, t)] - mu;
                squares += deviation * deviation;
            }
            mean[c] = mu;
            var[c] = squares / static_cast<double>(m);
            if (running.updated_mean != nullptr) {
                static_cast<T*>(running.updated_mean)[c] =
                    static_cast<T>(running_average(static_cast<const T*>(running.mean)[c], mu, running.momentum));
                static_cast<T*>(running.updated_var)[c] = static_cast<T>(running_average(
                    static_cast<const T*>(running.var)[c], unbiased_variance(var[c], m), running.momentum));
            }
        }
    });
}

void batch_norm_forward_host(const BatchNormGeometry& g, DType dtype, const void* x, const double* mean,
                             const double* var, const void* weight, const void* bias, double eps, void* y) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* in = static_cast<const T*>(x);
        T* out = static_cast<T*>(y);
        for (std::int64_t i = 0; i < g.count(); ++i) {
            const std::int64_t c = batch_norm_channel(g, i);
            const double x_hat = batch_norm_normalized<double>(in[i], mean[c], inverse_std(var[c], eps));
            out[i] = static_cast<T>(batch_norm_output(x_hat, parameter<T>(weight, c, 1), parameter<T>(bias, c, 0)));
        }
    });
}

void batch_norm_backward_reduce_host(const BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                                     const double* mean, const double* var, double eps, double* sum_dy,
                                     double* sum_dy_x_hat) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* dy = static_cast<const T*>(grad_output);
        const T* in = static_cast<const T*>(x);
        for (std::int64_t c = 0; c < g.channels; ++c) {
            double s_dy = 0;
            double s_dy_centered = 0;
            for (std::int64_t t = 0; t < g.per_channel(); ++t) {
                const std::int64_t o = batch_norm_offset(g, c, t);
                s_dy += dy[o];
                s_dy_centered += static_cast<double>(dy[o]) * (static_cast<double>(in[o]) - mean[c]);
            }
            sum_dy[c] = s_dy;
            sum_dy_x_hat[c] = s_dy_centered * inverse_std(var[c], eps);
        }
    });
}

void batch_norm_backward_input_host(const BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                                    const double* mean, const double* var, const void* weight, const double* sum_dy,
                                    const double* sum_dy_x_hat, double eps, bool batch_statistics, void* grad_input) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* dy = static_cast<const T*>(grad_output);
        const T* in = static_cast<const T*>(x);
        T* dx = static_cast<T*>(grad_input);
        const auto m = static_cast<double>(g.per_channel());
        for (std::int64_t i = 0; i < g.count(); ++i) {
            const std::int64_t c = batch_norm_channel(g, i);
            const double invstd = inverse_std(var[c], eps);
            const double x_hat = batch_norm_normalized<double>(in[i], mean[c], invstd);
            const double mean_dy = batch_statistics ? sum_dy[c] / m : 0.0;
            const double mean_dy_x_hat = batch_statistics ? sum_dy_x_hat[c] / m : 0.0;
            dx[i] = static_cast<T>(batch_norm_input_gradient<double>(dy[i], x_hat, parameter<T>(weight, c, 1) * invstd,
                                                                     mean_dy, mean_dy_x_hat, batch_statistics));
        }
    });
}

}  // namespace convkit::detail
