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

CONVKIT_KERNELS_END
