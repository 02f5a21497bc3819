#pragma once
// Dropout's mask, one definition for every backend: element i survives when a counter-based
// uniform draw keyed by (seed, i) is at least p (core/random.h), so a seed gives the same mask
// on the host and on any GPU, for any launch shape, in the forward and the backward pass.
#include <cstdint>

#include "core/random.h"

namespace convkit::detail {

// Mixed into the seed so that a dropout mask is not the same draw as a Tensor::uniform fill
// made with the same seed (a test input filled with seed s would otherwise lose exactly its
// smallest values to dropout with seed s).
inline constexpr std::uint64_t kDropoutSeedSalt = 0xd1b54a32d192ed03ULL;

constexpr bool dropout_keeps(std::uint64_t seed, std::int64_t index, double p) {
    return uniform01(seed ^ kDropoutSeedSalt, static_cast<std::uint64_t>(index)) >= p;
}

// 1 / (1 - p), the survivors' scale; p = 1 keeps nothing, so its scale is never used.
constexpr double dropout_scale(double p) {
    return p < 1 ? 1 / (1 - p) : 0;
}

// x times the mask's factor (scale or 0). A product, not a select, so a dropped NaN or inf
// still gives NaN, as PyTorch's input * mask does. Backward is the same map applied to dy.
template <typename T>
constexpr T dropout_value(T x, std::uint64_t seed, std::int64_t index, double p, T scale) {
    return x * (dropout_keeps(seed, index, p) ? scale : T(0));
}

}  // namespace convkit::detail
