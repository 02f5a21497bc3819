#include "backends/host/softmax_host.h"

#include <limits>

#include "backend_api/dtype_dispatch.h"

namespace convkit::detail {

void softmax_forward_host(SoftmaxKind kind, const SoftmaxGeometry& g, DType dtype, const void* x, void* y) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* in = static_cast<const T*>(x);
        T* out = static_cast<T*>(y);
        for (std::int64_t row = 0; row < g.rows(); ++row) {
            const std::int64_t start = g.row_start(row);
            double max = -std::numeric_limits<double>::infinity();
            for (std::int64_t k = 0; k < g.dim; ++k) max = max_or_nan<double>(max, in[g.element(start, k)]);
            double sum = 0;
            for (std::int64_t k = 0; k < g.dim; ++k) sum += softmax_term<double>(in[g.element(start, k)], max);
            for (std::int64_t k = 0; k < g.dim; ++k) {
                const std::int64_t i = g.element(start, k);
                out[i] = static_cast<T>(softmax_output<double>(kind, in[i], max, sum));
            }
        }
    });
}

void softmax_backward_host(SoftmaxKind kind, const SoftmaxGeometry& g, DType dtype, const void* dy, const void* y,
                           void* dx) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* grad_out = static_cast<const T*>(dy);
        const T* out = static_cast<const T*>(y);
        T* grad_in = static_cast<T*>(dx);
        for (std::int64_t row = 0; row < g.rows(); ++row) {
            const std::int64_t start = g.row_start(row);
            double sum = 0;
            for (std::int64_t k = 0; k < g.dim; ++k) {
                const std::int64_t i = g.element(start, k);
                sum += softmax_backward_term<double>(kind, grad_out[i], out[i]);
            }
            for (std::int64_t k = 0; k < g.dim; ++k) {
                const std::int64_t i = g.element(start, k);
                grad_in[i] = static_cast<T>(softmax_input_gradient<double>(kind, grad_out[i], out[i], sum));
            }
        }
    });
}

}  // namespace convkit::detail
