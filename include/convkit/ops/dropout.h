#pragma once
// Dropout (torch.nn.functional.dropout): in training, each element is zeroed with probability
// p and the survivors are scaled by 1 / (1 - p), so the expectation is unchanged.
// Memory format (convkit/memory_format.h): channels-last inputs are converted to contiguous at
// entry (counted in layout_conversions()); results are contiguous.
#include <cstdint>

#include "convkit/tensor.h"

namespace convkit {

// The mask is a pure function of (seed, element index): the same seed gives the same mask on
// the host and on any GPU, and a caller that wants a new mask per step passes a new seed.
// p must lie in [0, 1] (InvalidArgument otherwise); p = 1 gives zeros. training = false, and
// p = 0, return `t` itself (no copy), as PyTorch does. Differentiable: the gradient is the
// output's gradient through the same mask, recomputed from the seed rather than stored.
Tensor dropout(const Tensor& t, double p, bool training, std::uint64_t seed);

}  // namespace convkit
