#include "core/random.h"

#include <cmath>
#include <numbers>

namespace convkit::detail {

namespace {
template <typename T, typename Generate>
void fill_with(void* data, std::int64_t n, Generate generate) {
    T* out = static_cast<T*>(data);
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(generate(static_cast<std::uint64_t>(i)));
}

template <typename Generate>
void fill_any(void* data, DType dtype, std::int64_t n, Generate generate) {
    if (dtype == DType::Float32) {
        fill_with<float>(data, n, generate);
    } else {
        fill_with<double>(data, n, generate);
    }
}
}  // namespace

void fill_uniform_host(void* data, DType dtype, std::int64_t n, double low, double high, std::uint64_t seed) {
    fill_any(data, dtype, n, [&](std::uint64_t i) { return low + (high - low) * uniform01(seed, i); });
    // Rounding to float32 can land a value just below `high` on `high`; keep the range half-open.
    if (dtype == DType::Float32 && low < high) {
        float* out = static_cast<float*>(data);
        const float top = static_cast<float>(high);
        const float below_top = std::nextafter(top, static_cast<float>(low));
        for (std::int64_t i = 0; i < n; ++i)
            if (out[i] >= top) out[i] = below_top;
    }
}

void fill_normal_host(void* data, DType dtype, std::int64_t n, double mean, double stddev, std::uint64_t seed) {
    // Box-Muller on two independent uniforms per element; 1 - u keeps the log's argument in (0, 1].
    fill_any(data, dtype, n, [&](std::uint64_t i) {
        const double u1 = 1.0 - uniform01(seed, 2 * i);
        const double u2 = uniform01(seed, 2 * i + 1);
        return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    });
}

}  // namespace convkit::detail
