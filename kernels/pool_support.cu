// The pooling kernels' host-side switches (kernels/pool_support.cuh): the index width of a
// launch and the tests' overrides, shared by kernels/pool_max.cu and kernels/pool_mean.cu.
#include <atomic>

#include "kernels/index_width.h"
#include "kernels/pool_support.cuh"

CONVKIT_KERNELS_BEGIN
namespace pool {
namespace {
// Cleared by set_pool_packs_for_testing(false): every launch then takes the per-element kernels.
std::atomic<bool> allow_pool_packs{true};
}  // namespace

bool divisions_fit_32_bits(const PoolGeometry& g) {
    constexpr std::int64_t limit = std::int64_t{1} << 31;
    const bool tensors_fit = g.planes() * g.input_spatial() < limit && g.planes() * g.output_spatial() < limit;
    bool windows_fit = true;
    for (int s = 0; s < 3; ++s)
        windows_fit = windows_fit && g.input[s] + 2 * g.padding[s] + kWarpSize < limit && g.stride[s] < limit;
    return !indices_forced_to_64_bits() && tensors_fit && windows_fit;
}

bool packs_allowed() {
    return allow_pool_packs;
}
}  // namespace pool

void set_pool_packs_for_testing(bool allow) {
    pool::allow_pool_packs = allow;
}

CONVKIT_KERNELS_END
