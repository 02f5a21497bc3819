#pragma once
// Kernels that divide indices by FastDivisor (kernels/fast_division.h: a multiplication and a
// shift) run where every index of a launch stays below 2^31; their 64-bit twins, which divide
// with the integer division sequence, run past that. The emulated device cannot hold tensors
// that large, so tests force the 64-bit kernels instead, to run both (pooling, the broadcasting
// binary ops). Plain C++ for host callers.
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// Tests only: with `force`, every launch of such a family takes its 64-bit kernels.
void set_64_bit_indices_for_testing(bool force);
bool indices_forced_to_64_bits();

// Tests only: the 64-bit kernels forced or not for a scope, and not forced after it (also when
// the scope ends by an exception).
class ForcedIndexWidth {
public:
    explicit ForcedIndexWidth(bool force_64_bits) { set_64_bit_indices_for_testing(force_64_bits); }
    ~ForcedIndexWidth() { set_64_bit_indices_for_testing(false); }
    ForcedIndexWidth(const ForcedIndexWidth&) = delete;
    ForcedIndexWidth& operator=(const ForcedIndexWidth&) = delete;
};

CONVKIT_KERNELS_END
