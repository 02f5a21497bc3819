// The tests' switch between the 32-bit and 64-bit index kernels (kernels/index_width.h).
#include <atomic>

#include "kernels/index_width.h"

CONVKIT_KERNELS_BEGIN

namespace {
std::atomic<bool> force_64_bit_indices{false};
}  // namespace

void set_64_bit_indices_for_testing(bool force) {
    force_64_bit_indices = force;
}

bool indices_forced_to_64_bits() {
    return force_64_bit_indices;
}

CONVKIT_KERNELS_END
