#pragma once
// Random draws for shuffling and the transforms, from std::mt19937_64 (whose output the standard
// fixes) with our own arithmetic: std::uniform_int_distribution, std::shuffle and
// std::normal_distribution differ between standard libraries, and a seed must reproduce an
// epoch everywhere.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <numeric>
#include <random>
#include <vector>

#include "core/random.h"

namespace convkit::data::sampling {

// Uniform in [0, 1) with 53 random bits.
inline double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

inline double uniform(std::mt19937_64& rng, double low, double high) { return low + (high - low) * uniform01(rng); }

// Uniform in [0, bound), bound > 0, without modulo bias (Lemire 2019, "Fast random integer
// generation in an interval").
__extension__ typedef unsigned __int128 UInt128;  // __extension__: no -Wpedantic warning
inline std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t bound) {
    UInt128 product = static_cast<UInt128>(rng()) * bound;
    auto low = static_cast<std::uint64_t>(product);
    if (low < bound) {
        const std::uint64_t threshold = -bound % bound;
        while (low < threshold) {
            product = static_cast<UInt128>(rng()) * bound;
            low = static_cast<std::uint64_t>(product);
        }
    }
    return static_cast<std::uint64_t>(product >> 64);
}

// A standard normal draw (Box-Muller; the second value is dropped to keep draws stateless).
inline double standard_normal(std::mt19937_64& rng) {
    const double u1 = 1.0 - uniform01(rng);  // (0, 1]: log is finite
    const double u2 = uniform01(rng);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

// 0..n-1 in a uniformly random order (Fisher-Yates).
inline std::vector<std::int64_t> random_permutation(std::int64_t n, std::mt19937_64& rng) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), std::int64_t{0});
    for (std::int64_t i = n - 1; i > 0; --i) {
        const auto j = static_cast<std::int64_t>(uniform_below(rng, static_cast<std::uint64_t>(i) + 1));
        std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
    return order;
}

// Independent generator seeds for the purposes below, by mixing distinct tags into the seed.
enum class SeedPurpose : std::uint64_t { Shuffle = 1, Transform = 2, Split = 3 };
inline std::uint64_t derive_seed(std::uint64_t seed, SeedPurpose purpose, std::uint64_t a, std::uint64_t b = 0) {
    using convkit::detail::mix64;
    return mix64(mix64(mix64(seed ^ (static_cast<std::uint64_t>(purpose) * 0x9e3779b97f4a7c15ULL)) + a) + b);
}

}  // namespace convkit::data::sampling
