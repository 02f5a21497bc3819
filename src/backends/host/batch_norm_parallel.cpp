#include "backends/host/batch_norm_parallel.h"

#include <cmath>

#include "backends/host/thread_pool.h"
#include "ops/op_support.h"

namespace convkit::detail {

namespace {
double inverse_std(double var, double eps) { return 1.0 / std::sqrt(var + eps); }

template <typename T>
double parameter(const void* values, std::int64_t c, double absent) {
    return values == nullptr ? absent : static_cast<double>(static_cast<const T*>(values)[c]);
}

// The start of channel c's values in image n: [batch, channels, spatial], spatial contiguous.
template <typename T>
const T* plane(const BatchNormGeometry& g, const T* data, std::int64_t n, std::int64_t c) {
    return data + (n * g.channels + c) * g.spatial;
}

// The sum over images of f_of_image(n), each a sum over one plane of a channel: those use
// `omp simd` reductions, several partial sums at once (the reference adds one value at a time).
template <typename F>
double channel_sum(const BatchNormGeometry& g, F&& f_of_image) {
    double total = 0;
    for (std::int64_t n = 0; n < g.batch; ++n) total += f_of_image(n);
    return total;
}
}  // namespace

void batch_norm_statistics_parallel(const BatchNormGeometry& g, DType dtype, const void* x, double* mean,
                                    double* var, const RunningStatistics& running) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* values = static_cast<const T*>(x);
        const std::int64_t m = g.per_channel();
        const std::int64_t s = g.spatial;
        host::parallel_for(g.channels, [&](std::int64_t c, int) {
            const double mu = channel_sum(g, [&](std::int64_t n) {
                                  const T* p = plane(g, values, n, c);
                                  double sum = 0;
#pragma omp simd reduction(+ : sum)
                                  for (std::int64_t t = 0; t < s; ++t) sum += static_cast<double>(p[t]);
                                  return sum;
                              }) /
                              static_cast<double>(m);
            // Two passes, as the reference: the mean squared deviation, never E[x^2] - E[x]^2.
            const double squares = channel_sum(g, [&](std::int64_t n) {
                const T* p = plane(g, values, n, c);
                double sum = 0;
#pragma omp simd reduction(+ : sum)
                for (std::int64_t t = 0; t < s; ++t) {
                    const double deviation = static_cast<double>(p[t]) - mu;
                    sum += deviation * deviation;
                }
                return sum;
            });
            mean[c] = mu;
            var[c] = squares / static_cast<double>(m);
            if (running.updated_mean != nullptr) {
                static_cast<T*>(running.updated_mean)[c] =
                    static_cast<T>(running_average(static_cast<const T*>(running.mean)[c], mu, running.momentum));
                static_cast<T*>(running.updated_var)[c] = static_cast<T>(running_average(
                    static_cast<const T*>(running.var)[c], unbiased_variance(var[c], m), running.momentum));
            }
        });
    });
}

void batch_norm_forward_parallel(const BatchNormGeometry& g, DType dtype, const void* x, const double* mean,
                                 const double* var, const void* weight, const void* bias, double eps, void* y) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const std::int64_t s = g.spatial;
        host::parallel_for(g.batch * g.channels, [&](std::int64_t nc, int) {
            const std::int64_t c = nc % g.channels;
            // y = (x - mean) * (weight * invstd) + bias, in double, rounded once (see batch_norm_math.h
            // on why x - mean is taken in double).
            const double mu = mean[c];
            const double scale = parameter<T>(weight, c, 1) * inverse_std(var[c], eps);
            const double shift = parameter<T>(bias, c, 0);
            const T* in = static_cast<const T*>(x) + nc * s;
            T* out = static_cast<T*>(y) + nc * s;
#pragma omp simd
            for (std::int64_t t = 0; t < s; ++t)
                out[t] = static_cast<T>((static_cast<double>(in[t]) - mu) * scale + shift);
        });
    });
}

void batch_norm_backward_reduce_parallel(const BatchNormGeometry& g, DType dtype, const void* grad_output,
                                         const void* x, const double* mean, const double* var, double eps,
                                         double* sum_dy, double* sum_dy_x_hat) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* dy = static_cast<const T*>(grad_output);
        const T* in = static_cast<const T*>(x);
        const std::int64_t s = g.spatial;
        host::parallel_for(g.channels, [&](std::int64_t c, int) {
            const double mu = mean[c];
            double s_dy = 0;
            double s_dy_centered = 0;
            for (std::int64_t n = 0; n < g.batch; ++n) {
                const T* d = plane(g, dy, n, c);
                const T* p = plane(g, in, n, c);
                double a = 0;
                double b = 0;
#pragma omp simd reduction(+ : a, b)
                for (std::int64_t t = 0; t < s; ++t) {
                    a += static_cast<double>(d[t]);
                    b += static_cast<double>(d[t]) * (static_cast<double>(p[t]) - mu);
                }
                s_dy += a;
                s_dy_centered += b;
            }
            sum_dy[c] = s_dy;
            sum_dy_x_hat[c] = s_dy_centered * inverse_std(var[c], eps);
        });
    });
}

void batch_norm_backward_input_parallel(const BatchNormGeometry& g, DType dtype, const void* grad_output,
                                        const void* x, const double* mean, const double* var, const void* weight,
                                        const double* sum_dy, const double* sum_dy_x_hat, double eps,
                                        bool batch_statistics, void* grad_input) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const auto m = static_cast<double>(g.per_channel());
        const std::int64_t s = g.spatial;
        host::parallel_for(g.batch * g.channels, [&](std::int64_t nc, int) {
            const std::int64_t c = nc % g.channels;
            const double mu = mean[c];
            const double invstd = inverse_std(var[c], eps);
            const double weight_invstd = parameter<T>(weight, c, 1) * invstd;
            const double mean_dy = batch_statistics ? sum_dy[c] / m : 0.0;
            const double mean_dy_x_hat = batch_statistics ? sum_dy_x_hat[c] / m : 0.0;
            const T* d = static_cast<const T*>(grad_output) + nc * s;
            const T* in = static_cast<const T*>(x) + nc * s;
            T* dx = static_cast<T*>(grad_input) + nc * s;
#pragma omp simd
            for (std::int64_t t = 0; t < s; ++t) {
                const double x_hat = (static_cast<double>(in[t]) - mu) * invstd;
                dx[t] = static_cast<T>(batch_norm_input_gradient<double>(static_cast<double>(d[t]), x_hat,
                                                                         weight_invstd, mean_dy, mean_dy_x_hat,
                                                                         batch_statistics));
            }
        });
    });
}

}  // namespace convkit::detail
