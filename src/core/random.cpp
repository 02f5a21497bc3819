#include "core/random.h"

#include <cmath>
#include <numbers>
#include <string>

#include "convkit/error.h"
#include "convkit/half.h"

namespace convkit::detail {

namespace {
template <typename T, typename Generate>
void fill_with(void* data, std::int64_t n, Generate generate) {
    T* out = static_cast<T*>(data);
    for (std::int64_t i = 0; i < n; ++i) out[i] = element_cast<T>(generate(static_cast<std::uint64_t>(i)));
}

template <typename Generate>
void fill_any(void* data, DType dtype, std::int64_t n, Generate generate) {
    switch (dtype) {
        case DType::Float32: fill_with<float>(data, n, generate); return;
        case DType::Float64: fill_with<double>(data, n, generate); return;
        case DType::BFloat16: fill_with<bfloat16>(data, n, generate); return;
        case DType::Float16: fill_with<float16>(data, n, generate); return;
        case DType::Int64: break;
    }
    throw NotSupported(std::string("random fill: fills floating-point tensors only, not ") + dtype_name(dtype));
}

// The largest 16-bit value below `value` (which is finite): one step of the bits toward -inf.
template <typename T>
T next_below(T value) {
    const std::uint16_t magnitude = value.bits & 0x7FFFU;
    if (magnitude == 0) return T::from_bits(0x8001U);  // +-0 -> the negative smallest subnormal
    return T::from_bits(static_cast<std::uint16_t>((value.bits & 0x8000U) ? value.bits + 1U : value.bits - 1U));
}

template <typename T>
void keep_below_high(void* data, std::int64_t n, double high) {
    T* out = static_cast<T*>(data);
    const T top(high);
    const float top_value = static_cast<float>(top);
    const T below = static_cast<double>(top_value) >= high ? next_below(top) : top;
    for (std::int64_t i = 0; i < n; ++i)
        if (static_cast<double>(static_cast<float>(out[i])) >= high) out[i] = below;
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
    if (dtype == DType::BFloat16 && low < high) keep_below_high<bfloat16>(data, n, high);
    if (dtype == DType::Float16 && low < high) keep_below_high<float16>(data, n, high);
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
