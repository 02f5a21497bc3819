#include "convkit/optim/grad_scaler.h"

#include <cmath>

#include "convkit/autograd.h"
#include "convkit/ops/elementwise.h"
#include "convkit/ops/reduce.h"
#include "core/check.h"

namespace convkit::optim {

namespace {
// Whether every gradient of the optimizer's parameters is finite: the sum of all magnitudes, in
// float32 on the parameters' device, read once (an inf or NaN anywhere makes it non-finite; the
// scaled float16 gradients are too small for finite ones to overflow it).
bool gradients_finite(const Optimizer& optimizer) {
    NoGradGuard no_grad;
    Tensor total;
    for (const Tensor& p : optimizer.parameters()) {
        const Tensor grad = p.grad();
        if (!grad.defined()) continue;
        const Tensor magnitude = sum(abs(grad.to(DType::Float32)));
        total = total.defined() ? total + magnitude : magnitude;
    }
    return !total.defined() || std::isfinite(total.to(Device::host()).item(0));
}
}  // namespace

GradScaler::GradScaler(GradScalerOptions options) : options_(options), scale_(options.init_scale) {
    constexpr const char* op = "GradScaler";
    CONVKIT_REQUIRE(options.init_scale > 0 && std::isfinite(options.init_scale), op,
                    "init_scale must be positive and finite, got ", options.init_scale);
    CONVKIT_REQUIRE(options.growth_factor > 1 && std::isfinite(options.growth_factor), op,
                    "growth_factor must be above 1, got ", options.growth_factor);
    CONVKIT_REQUIRE(options.backoff_factor > 0 && options.backoff_factor < 1, op,
                    "backoff_factor must be in (0, 1), got ", options.backoff_factor);
    CONVKIT_REQUIRE(options.growth_interval >= 1, op, "growth_interval must be at least 1, got ",
                    options.growth_interval);
}

// A 16-bit loss is widened first: the scale itself (2^16 by default) is past float16's range.
Tensor GradScaler::scale(const Tensor& loss) const {
    if (!options_.enabled) return loss;
    return (is_reduced_precision(loss.dtype()) ? loss.to(DType::Float32) : loss) * scale_;
}

bool GradScaler::step(Optimizer& optimizer) {
    if (!options_.enabled) {
        optimizer.step();
        return true;
    }
    if (!gradients_finite(optimizer)) {
        scale_ *= options_.backoff_factor;
        good_steps_ = 0;
        ++skipped_;
        return false;
    }
    optimizer.step_with_gradients_divided_by(scale_);
    if (++good_steps_ >= options_.growth_interval) {
        scale_ *= options_.growth_factor;
        good_steps_ = 0;
    }
    return true;
}

}  // namespace convkit::optim
