#include "backends/host/batch_norm_parallel.h"

#include <cmath>

#include "backends/host/thread_pool.h"
#include "backend_api/dtype_dispatch.h"

// The per-plane loops below are compiled for AVX-512 and AVX2 besides the baseline x86-64 (SSE2)
// the library is built for, and the best the CPU has is picked when the library loads: the
// double arithmetic of batch norm is compute-bound at 2 doubles per SSE2 instruction. The
// results are those of the baseline build up to the order of the partial sums (the same
// tolerance, tests/test_batch_norm_parallel.cpp).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CONVKIT_PER_TARGET __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CONVKIT_PER_TARGET
#endif

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

// ---- One plane (one image's values of one channel), in double. The `omp simd` reductions keep
// several partial sums at once (the reference adds one value at a time). Each loop is a template
// inlined into per-type, per-target functions.

template <typename T>
[[gnu::always_inline]] inline void plane_sums(const T* x, std::int64_t n, double mu, double& sum, double& squares) {
    double s = 0;
    double q = 0;
#pragma omp simd reduction(+ : s, q)
    for (std::int64_t t = 0; t < n; ++t) {
        const double deviation = static_cast<double>(x[t]) - mu;
        s += deviation;
        q += deviation * deviation;
    }
    sum = s;
    squares = q;
}

template <typename T>
[[gnu::always_inline]] inline void plane_gradient_sums(const T* dy, const T* x, std::int64_t n, double mu,
                                                       double& sum_dy, double& sum_dy_centered) {
    double a = 0;
    double b = 0;
#pragma omp simd reduction(+ : a, b)
    for (std::int64_t t = 0; t < n; ++t) {
        a += static_cast<double>(dy[t]);
        b += static_cast<double>(dy[t]) * (static_cast<double>(x[t]) - mu);
    }
    sum_dy = a;
    sum_dy_centered = b;
}

// y = (x - mean) * (weight * invstd) + bias, in double, rounded once (batch_norm_math.h says why
// x - mean is taken in double).
template <typename T>
[[gnu::always_inline]] inline void plane_normalize(const T* x, T* y, std::int64_t n, double mu, double scale,
                                                   double shift) {
#pragma omp simd
    for (std::int64_t t = 0; t < n; ++t) y[t] = static_cast<T>((static_cast<double>(x[t]) - mu) * scale + shift);
}

template <typename T>
[[gnu::always_inline]] inline void plane_input_gradient(const T* dy, const T* x, T* dx, std::int64_t n, double mu,
                                                        double invstd, double weight_invstd, double mean_dy,
                                                        double mean_dy_x_hat, bool batch_statistics) {
#pragma omp simd
    for (std::int64_t t = 0; t < n; ++t) {
        const double x_hat = (static_cast<double>(x[t]) - mu) * invstd;
        dx[t] = static_cast<T>(batch_norm_input_gradient<double>(static_cast<double>(dy[t]), x_hat, weight_invstd,
                                                                 mean_dy, mean_dy_x_hat, batch_statistics));
    }
}

#define CONVKIT_BATCH_NORM_PLANE_KERNELS(T)                                                                     \
    CONVKIT_PER_TARGET void sums(const T* x, std::int64_t n, double mu, double& sum, double& squares) {         \
        plane_sums(x, n, mu, sum, squares);                                                                     \
    }                                                                                                           \
    CONVKIT_PER_TARGET void gradient_sums(const T* dy, const T* x, std::int64_t n, double mu, double& sum_dy,   \
                                          double& sum_dy_centered) {                                            \
        plane_gradient_sums(dy, x, n, mu, sum_dy, sum_dy_centered);                                             \
    }                                                                                                           \
    CONVKIT_PER_TARGET void normalize(const T* x, T* y, std::int64_t n, double mu, double scale, double shift) { \
        plane_normalize(x, y, n, mu, scale, shift);                                                             \
    }                                                                                                           \
    CONVKIT_PER_TARGET void input_gradient(const T* dy, const T* x, T* dx, std::int64_t n, double mu,           \
                                           double invstd, double weight_invstd, double mean_dy,                 \
                                           double mean_dy_x_hat, bool batch_statistics) {                       \
        plane_input_gradient(dy, x, dx, n, mu, invstd, weight_invstd, mean_dy, mean_dy_x_hat, batch_statistics); \
    }
CONVKIT_BATCH_NORM_PLANE_KERNELS(float)
CONVKIT_BATCH_NORM_PLANE_KERNELS(double)
#undef CONVKIT_BATCH_NORM_PLANE_KERNELS
}  // namespace

void batch_norm_statistics_parallel(const BatchNormGeometry& g, DType dtype, const void* x, double* mean,
                                    double* var, const RunningStatistics& running) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* values = static_cast<const T*>(x);
        const std::int64_t m = g.per_channel();
        host::parallel_for(g.channels, [&](std::int64_t c, int) {
            // Two passes, as the reference: the mean, then the mean squared deviation from it,
            // never E[x^2] - E[x]^2.
            double total = 0;
            for (std::int64_t n = 0; n < g.batch; ++n) {
                double sum = 0;
                double squares = 0;
                sums(plane(g, values, n, c), g.spatial, 0.0, sum, squares);
                total += sum;
            }
            const double mu = total / static_cast<double>(m);
            double deviations = 0;
            for (std::int64_t n = 0; n < g.batch; ++n) {
                double sum = 0;
                double squares = 0;
                sums(plane(g, values, n, c), g.spatial, mu, sum, squares);
                deviations += squares;
            }
            mean[c] = mu;
            var[c] = deviations / static_cast<double>(m);
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
            normalize(static_cast<const T*>(x) + nc * s, static_cast<T*>(y) + nc * s, s, mean[c],
                      parameter<T>(weight, c, 1) * inverse_std(var[c], eps), parameter<T>(bias, c, 0));
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
        host::parallel_for(g.channels, [&](std::int64_t c, int) {
            double s_dy = 0;
            double s_dy_centered = 0;
            for (std::int64_t n = 0; n < g.batch; ++n) {
                double a = 0;
                double b = 0;
                gradient_sums(plane(g, dy, n, c), plane(g, in, n, c), g.spatial, mean[c], a, b);
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
            const double invstd = inverse_std(var[c], eps);
            input_gradient(static_cast<const T*>(grad_output) + nc * s, static_cast<const T*>(x) + nc * s,
                           static_cast<T*>(grad_input) + nc * s, s, mean[c], invstd,
                           parameter<T>(weight, c, 1) * invstd, batch_statistics ? sum_dy[c] / m : 0.0,
                           batch_statistics ? sum_dy_x_hat[c] / m : 0.0, batch_statistics);
        });
    });
}

}  // namespace convkit::detail
