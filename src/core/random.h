#pragma once
// Counter-based random numbers: element i of a fill is a pure function of (seed, i), so a fill
// gives the same values on every device, for any thread count and in any order of evaluation.
#include <cstdint>

#include "convkit/dtype.h"

namespace convkit::detail {

// SplitMix64's finaliser: a bijective 64-bit mix with good avalanche (Steele et al., 2014).
constexpr std::uint64_t mix64(std::uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Uniform in [0, 1) with 53 random bits.
constexpr double uniform01(std::uint64_t seed, std::uint64_t counter) {
    const std::uint64_t bits = mix64(mix64(seed) ^ (counter * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL));
    return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// Host fills of n elements of `dtype` at `data`.
void fill_uniform_host(void* data, DType dtype, std::int64_t n, double low, double high, std::uint64_t seed);
void fill_normal_host(void* data, DType dtype, std::int64_t n, double mean, double stddev, std::uint64_t seed);

}  // namespace convkit::detail
