// Dropout: checks, device dispatch, autograd. The mask is recomputed from the seed in the
// backward pass instead of being stored: drawing it costs a few integer multiplies per element,
// while storing it would hold a tensor of the input's size until backward.
#include "convkit/ops/dropout.h"

#include <cmath>

#include "autograd/graph.h"
#include "backends/host/dropout_host.h"
#include "core/check.h"
#include "cuda/graph_capture.h"
#include "kernels/dropout.h"
#include "ops/dropout_with_device_seed.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
// The mask's seed: `value`, or, when `on_device` is set (a CUDA graph's step), the uint64 there,
// which is written before each replay.
struct MaskSeed {
    std::uint64_t value = 0;
    std::shared_ptr<void> on_device;
};

// x through the mask of (seed, p); the forward pass on the input and the backward on dy.
Tensor apply_mask(const Tensor& x, double p, const MaskSeed& seed) {
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (x.device().is_host()) {
        detail::dropout_host(x.dtype(), x.raw_data(), y.raw_data(), x.numel(), p, seed.value);
    } else {
        kernels::dropout(x.dtype(), x.raw_data(), y.raw_data(), x.numel(), p, seed.value,
                         static_cast<const std::uint64_t*>(seed.on_device.get()), detail::stream_of(x));
    }
    return y;
}

Tensor dropout_masked(const Tensor& t_in, double p, bool training, const MaskSeed& seed) {
    const Tensor t = detail::contiguous_operand(t_in);
    const std::string op = "dropout";
    detail::check_same_device_and_dtype(op, {{"input", t}}, detail::kComputedInFloat32);
    CONVKIT_REQUIRE(p >= 0 && p <= 1, op, "p must be in [0, 1], got ", p);
    if (!training || p == 0) return t;
    if (t.device().is_cuda() && seed.on_device == nullptr) {
        detail::refuse_in_graph_capture(t.device().index, "dropout with a seed argument",
                                        "the seed is a value of this call, which every replay would reuse, dropping "
                                        "the same elements at every step (nn::Dropout draws a new seed per replay)");
    }
    if (detail::is_reduced_precision_tensor(t)) {
        // The same mask as float32's (it depends on the seed and the index only), scaled in float32.
        return detail::computed_in_float32(
            t.dtype(), [&](const Tensor& x) { return dropout_masked(x, p, training, seed); }, t);
    }
    Tensor y = apply_mask(t, p, seed);
    autograd::record(op, y, {t}, [p, seed](const Tensor& dy, const autograd::NeedsGrad&) {
        return std::vector<Tensor>{apply_mask(dy, p, seed)};
    });
    return y;
}
}  // namespace

Tensor dropout(const Tensor& t, double p, bool training, std::uint64_t seed) {
    return dropout_masked(t, p, training, MaskSeed{seed, nullptr});
}

namespace detail {
Tensor dropout_with_device_seed(const Tensor& t, double p, std::shared_ptr<void> seed_on_device) {
    CONVKIT_REQUIRE(t.device().is_cuda() && seed_on_device != nullptr, "dropout",
                    "a seed in device memory needs a CUDA tensor");
    return dropout_masked(t, p, true, MaskSeed{0, std::move(seed_on_device)});
}
}  // namespace detail

}  // namespace convkit
