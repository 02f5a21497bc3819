#include "convkit/optim/grad_scaler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "convkit/autograd.h"
#include "convkit/ops/elementwise.h"
#include "convkit/ops/reduce.h"
#include "core/check.h"
#include "optim/state_dict_support.h"

namespace convkit::optim {

namespace {
// Whether every gradient of the optimizer's parameters divided by `scale` is finite in float32,
// the type the optimizer reads them in (step_with_gradients_divided_by): the sum of all scaled
// magnitudes, in float32 on the parameters' device, read once, divided by the scale. An inf or NaN
// anywhere makes it non-finite; so do finite gradients that a small scale would blow past
// float32's range (after many skipped steps), which the step would otherwise write into the
// weights as inf.
bool unscaled_gradients_finite(const Optimizer& optimizer, double scale) {
    NoGradGuard no_grad;
    Tensor total;
    for (const Tensor& p : optimizer.parameters()) {
        const Tensor grad = p.grad();
        if (!grad.defined()) continue;
        const Tensor magnitude = sum(abs(grad.to(DType::Float32)));
        total = total.defined() ? total + magnitude : magnitude;
    }
    if (!total.defined()) return true;
    const double scaled = total.to(Device::host()).item(0);
    return std::isfinite(scaled) && scaled / scale <= std::numeric_limits<float>::max();
}

// The lowest scale: float32's smallest normal number. Halving without a floor reaches 0 after
// about a thousand skipped steps in a row (a NaN in the model or the data), and then no growth
// can bring it back.
constexpr double kSmallestScale = std::numeric_limits<float>::min();

// The ranges of the scale and the hyperparameters, shared by the constructor (naming the option)
// and load_state_dict (naming the key), so a checkpoint cannot hold what the constructor refuses.
using Namer = std::string (*)(const std::string&);
std::string option_name(const std::string& name) {
    return name;
}
std::string key_name(const std::string& name) {
    return "key '" + name + "'";
}

void check_scale(double scale, const std::string& op, const std::string& name) {
    CONVKIT_REQUIRE(scale > 0 && std::isfinite(scale), op, name, " must be positive and finite, got ", scale);
}

void check_hyperparameters(const GradScalerOptions& o, const std::string& op, Namer name) {
    CONVKIT_REQUIRE(o.growth_factor > 1 && std::isfinite(o.growth_factor), op, name("growth_factor"),
                    " must be finite and above 1, got ", o.growth_factor);
    CONVKIT_REQUIRE(o.backoff_factor > 0 && o.backoff_factor < 1, op, name("backoff_factor"),
                    " must be in (0, 1), got ", o.backoff_factor);
    CONVKIT_REQUIRE(o.growth_interval >= 1, op, name("growth_interval"), " must be at least 1, got ",
                    o.growth_interval);
}

const char* const kScale = "scale";
const char* const kGrowthFactor = "growth_factor";
const char* const kBackoffFactor = "backoff_factor";
const char* const kGrowthInterval = "growth_interval";
const char* const kGrowthTracker = "_growth_tracker";  // PyTorch's name for the good-step count
const char* const kSkippedSteps = "skipped_steps";

}  // namespace

GradScaler::GradScaler(GradScalerOptions options) : options_(options), scale_(options.init_scale) {
    check_scale(options.init_scale, "GradScaler", option_name("init_scale"));
    check_hyperparameters(options, "GradScaler", option_name);
}

std::map<std::string, Tensor> GradScaler::state_dict() const {
    return {{kScale, detail::scalar_tensor(scale_)},
            {kGrowthFactor, detail::scalar_tensor(options_.growth_factor)},
            {kBackoffFactor, detail::scalar_tensor(options_.backoff_factor)},
            {kGrowthInterval, detail::scalar_tensor(static_cast<double>(options_.growth_interval))},
            {kGrowthTracker, detail::scalar_tensor(static_cast<double>(good_steps_))},
            {kSkippedSteps, detail::scalar_tensor(static_cast<double>(skipped_))}};
}

void GradScaler::load_state_dict(const std::map<std::string, Tensor>& state) {
    const std::string op = "GradScaler::load_state_dict";
    // float64 only, as state_dict() writes them: a float32 or float16 copy may have rounded the
    // scale (float16 cannot even hold 2^16), and the resumed run would not be the same run.
    detail::StateDictReader reader(state, op, DType::Float64);
    const double scale = reader.scalar(kScale);
    GradScalerOptions o = options_;
    o.growth_factor = reader.scalar(kGrowthFactor);
    o.backoff_factor = reader.scalar(kBackoffFactor);
    o.growth_interval = reader.count(kGrowthInterval);
    const std::int64_t good_steps = reader.count(kGrowthTracker);
    const std::int64_t skipped = reader.count(kSkippedSteps);
    reader.finish();
    check_scale(scale, op, key_name(kScale));
    check_hyperparameters(o, op, key_name);
    // step() resets the count when it reaches the interval, so no scaler holds more: such a dict
    // was edited or mixed from two runs.
    CONVKIT_REQUIRE(good_steps < o.growth_interval, op, "key '", kGrowthTracker, "' must be below '", kGrowthInterval,
                    "' (", o.growth_interval, "), got ", good_steps);
    // Everything checked: now commit.
    options_ = o;
    scale_ = scale;
    good_steps_ = good_steps;
    skipped_ = skipped;
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
    if (!unscaled_gradients_finite(optimizer, scale_)) {
        scale_ = std::max(scale_ * options_.backoff_factor, kSmallestScale);
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
