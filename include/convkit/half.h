#pragma once
// Host element types of DType::BFloat16 and DType::Float16: 16 bits of storage with
// round-to-nearest-even conversions from float and double and exact conversions to float.
// Plain C++20 and constexpr, so CUDA kernels call the same code (nvcc runs with
// --expt-relaxed-constexpr) and users need no CUDA header. Arithmetic is not defined on purpose:
// ops convert to float, compute, and convert back once.
#include <bit>
#include <cstdint>
#include <type_traits>

#include "convkit/dtype.h"

namespace convkit {

namespace half_detail {

constexpr std::uint32_t float_bits(float value) { return std::bit_cast<std::uint32_t>(value); }
constexpr float float_from_bits(std::uint32_t bits) { return std::bit_cast<float>(bits); }

// `value` rounded to float with round-to-odd: the float toward zero, its last bit set when the
// conversion was inexact. Rounding that once more to a format with at least two fewer
// significand bits (bfloat16: 8, float16: 11, float: 24) gives the correctly rounded result,
// which double -> float -> 16 bits with two round-to-nearest steps would not.
constexpr float round_to_odd_float(double value) {
    const float nearest = static_cast<float>(value);  // may be inf past float's range
    const double back = static_cast<double>(nearest);
    if (back == value || value != value) return nearest;
    std::uint32_t bits = float_bits(nearest);
    const bool away_from_zero = (value < 0) ? back < value : back > value;
    if (away_from_zero) bits -= 1;  // the float toward zero (inf -> largest finite)
    return float_from_bits(bits | 1U);
}

constexpr std::uint16_t bfloat16_bits_from_float(float value) {
    const std::uint32_t bits = float_bits(value);
    if ((bits & 0x7FFFFFFFU) > 0x7F800000U) return static_cast<std::uint16_t>((bits >> 16) | 0x0040U);  // quiet NaN
    const std::uint32_t rounding = 0x7FFFU + ((bits >> 16) & 1U);  // ties to even
    return static_cast<std::uint16_t>((bits + rounding) >> 16);    // carries into inf past the largest
}

constexpr float float_from_bfloat16_bits(std::uint16_t bits) {
    return float_from_bits(static_cast<std::uint32_t>(bits) << 16);
}

constexpr std::uint16_t float16_bits_from_float(float value) {
    const std::uint32_t bits = float_bits(value);
    const std::uint32_t sign = (bits >> 16) & 0x8000U;
    const std::uint32_t magnitude = bits & 0x7FFFFFFFU;
    if (magnitude > 0x7F800000U) return static_cast<std::uint16_t>(sign | 0x7E00U);  // quiet NaN
    if (magnitude >= 0x477FF000U) return static_cast<std::uint16_t>(sign | 0x7C00U);  // >= 65520: inf
    if (magnitude < 0x38800000U) {                                                     // below 2^-14: subnormal
        if (magnitude <= 0x33000000U) return static_cast<std::uint16_t>(sign);          // <= 2^-25: zero (tie to even)
        const std::uint32_t significand = (magnitude & 0x7FFFFFU) | 0x800000U;
        const std::uint32_t shift = 126U - (magnitude >> 23);  // units of 2^-24
        std::uint32_t q = significand >> shift;
        const std::uint32_t rest = significand & ((1U << shift) - 1U);
        const std::uint32_t half = 1U << (shift - 1U);
        if (rest > half || (rest == half && (q & 1U))) ++q;  // may become the smallest normal: right
        return static_cast<std::uint16_t>(sign | q);
    }
    std::uint32_t h = (magnitude - 0x38000000U) >> 13;  // rebias the exponent 127 -> 15
    const std::uint32_t rest = magnitude & 0x1FFFU;
    if (rest > 0x1000U || (rest == 0x1000U && (h & 1U))) ++h;
    return static_cast<std::uint16_t>(sign | h);
}

constexpr float float_from_float16_bits(std::uint16_t h) {
    const std::uint32_t sign = (static_cast<std::uint32_t>(h) & 0x8000U) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1FU;
    const std::uint32_t fraction = h & 0x3FFU;
    if (exponent == 0x1FU) return float_from_bits(sign | 0x7F800000U | (fraction << 13));
    if (exponent == 0) {
        const float magnitude = static_cast<float>(fraction) * 5.9604644775390625e-08F;  // 2^-24, exact
        return sign ? -magnitude : magnitude;
    }
    return float_from_bits(sign | ((exponent + 112U) << 23) | (fraction << 13));
}

// What both 16-bit types share: the bits, their conversions through float (exact) and
// construction from bits. `Derived` names the type; Encode/Decode are its rounding and widening.
template <typename Derived, std::uint16_t (*Encode)(float), float (*Decode)(std::uint16_t)>
struct Storage16 {
    std::uint16_t bits = 0;

    static constexpr Derived from_bits(std::uint16_t bits) {
        Derived v;
        v.bits = bits;
        return v;
    }
    constexpr explicit operator float() const { return Decode(bits); }
    constexpr explicit operator double() const { return static_cast<double>(Decode(bits)); }

protected:
    Storage16() = default;
    constexpr explicit Storage16(float value) : bits(Encode(value)) {}
    // Rounded once: see round_to_odd_float.
    constexpr explicit Storage16(double value) : bits(Encode(round_to_odd_float(value))) {}
};

}  // namespace half_detail

// bfloat16: float's sign and 8-bit exponent, 7 fraction bits (the upper half of a float).
struct bfloat16 : half_detail::Storage16<bfloat16, half_detail::bfloat16_bits_from_float,
                                              half_detail::float_from_bfloat16_bits> {
    bfloat16() = default;
    constexpr explicit bfloat16(float value) : Storage16(value) {}
    constexpr explicit bfloat16(double value) : Storage16(value) {}
};

// float16 (IEEE binary16): 5-bit exponent, 10 fraction bits; largest finite 65504.
struct float16 : half_detail::Storage16<float16, half_detail::float16_bits_from_float,
                                             half_detail::float_from_float16_bits> {
    float16() = default;
    constexpr explicit float16(float value) : Storage16(value) {}
    constexpr explicit float16(double value) : Storage16(value) {}
};

static_assert(sizeof(bfloat16) == 2 && sizeof(float16) == 2);
static_assert(std::is_trivially_copyable_v<bfloat16> && std::is_trivially_copyable_v<float16>);

template <typename T>
inline constexpr bool is_half_type = std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>;

// Converts one element between any two element types (float, double, int64, bfloat16, float16):
// 16-bit sources through float (exact), 16-bit destinations from double (correctly rounded).
template <typename To, typename From>
constexpr To element_cast(From value) {
    if constexpr (std::is_same_v<To, From>) {
        return value;
    } else if constexpr (is_half_type<From>) {
        return element_cast<To>(static_cast<float>(value));
    } else if constexpr (is_half_type<To>) {
        return To(static_cast<double>(value));
    } else {
        return static_cast<To>(value);
    }
}

}  // namespace convkit
