#include "backends/host/linear_reference.h"

namespace convkit::host {

template <typename T>
void gemm_reference(const detail::GemmShape& s, const T* a, const T* b, const T* bias, T* c) {
    const auto a_at = [&](std::int64_t i, std::int64_t k) { return s.transpose_a ? a[k * s.m + i] : a[i * s.k + k]; };
    const auto b_at = [&](std::int64_t k, std::int64_t j) { return s.transpose_b ? b[j * s.k + k] : b[k * s.n + j]; };
    for (std::int64_t i = 0; i < s.m; ++i) {
        for (std::int64_t j = 0; j < s.n; ++j) {
            double acc = bias != nullptr ? static_cast<double>(bias[j]) : 0.0;
            for (std::int64_t k = 0; k < s.k; ++k)
                acc += static_cast<double>(a_at(i, k)) * static_cast<double>(b_at(k, j));
            c[i * s.n + j] = static_cast<T>(acc);
        }
    }
}

template void gemm_reference<float>(const detail::GemmShape&, const float*, const float*, const float*, float*);
template void gemm_reference<double>(const detail::GemmShape&, const double*, const double*, const double*, double*);

}  // namespace convkit::host
