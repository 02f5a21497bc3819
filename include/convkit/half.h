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

// The float16 conversions are written without branches (each case computed, one selected), so
// a kernel converts every value in the same ~10-15 instructions; with branches nvcc emitted 20
// to widen and 50 to narrow, divergent ones. The constants that scale subnormals keep every
// intermediate a normal float, so flushing subnormals to zero (a device's -ftz, a host's DAZ)
// cannot change a result.
constexpr std::uint16_t float16_bits_from_float(float value) {
    const std::uint32_t bits = float_bits(value);
    const std::uint32_t sign = (bits >> 16) & 0x8000U;
    const std::uint32_t magnitude = bits & 0x7FFFFFFFU;
    // A normal result: the exponent rebiased 127 -> 15 and the 13 dropped bits rounded to
    // nearest even (adding 0xFFF plus the kept last bit carries exactly when it should); from
    // 65520 on the carry reaches the exponent's all-ones, infinity. Wraps (unused) below 2^-14.
    const std::uint32_t kept_last_bit = (magnitude >> 13) & 1U;
    const std::uint32_t normal = (magnitude - (112U << 23) + 0xFFFU + kept_last_bit) >> 13;
    // Below 2^-14, a subnormal or zero: in 0.5 + |value| the float's last place is 2^-24,
    // float16's subnormal step, so the addition rounds |value| / 2^-24 to nearest even into the
    // low bits (1024 = the smallest normal's bits when it rounds up). A float subnormal read as
    // zero still gives zero, its right result.
    // (Fed only magnitudes below 2^-14: a NaN here, unused, would still stop clang evaluating a
    // constexpr float16(NaN).)
    const std::uint32_t small = magnitude < 0x38800000U ? magnitude : 0U;
    const std::uint32_t subnormal = float_bits(float_from_bits(small) + 0.5F) - float_bits(0.5F);
    std::uint32_t h = magnitude < 0x38800000U ? subnormal : normal;
    if (magnitude >= 0x47800000U) h = magnitude > 0x7F800000U ? 0x7E00U : 0x7C00U;  // from 65536: inf; NaN quiet
    return static_cast<std::uint16_t>(sign | h);
}

constexpr float float_from_float16_bits(std::uint16_t h) {
    const std::uint32_t sign = (static_cast<std::uint32_t>(h) & 0x8000U) << 16;
    const std::uint32_t magnitude = h & 0x7FFFU;
    // A normal number: the exponent rebiased 15 -> 127, the fraction moved to float's top bits.
    std::uint32_t bits = (magnitude << 13) + (112U << 23);
    if (magnitude >= 0x7C00U) bits |= 0x7F800000U;  // inf, NaN: exponent all ones, payload kept
    // Zero and subnormals: the fraction times 2^-24, exact.
    if (magnitude < 0x0400U) bits = float_bits(static_cast<float>(magnitude) * 5.9604644775390625e-08F);
    return float_from_bits(sign | bits);
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
