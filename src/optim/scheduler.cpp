// Learning-rate schedules in PyTorch's closed forms (torch.optim.lr_scheduler, 1.13).
#include "convkit/optim/scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/check.h"
#include "optim/state_dict_support.h"

namespace convkit::optim {

LRScheduler::LRScheduler(Optimizer& optimizer, std::string name)
    : optimizer_(optimizer), name_(std::move(name)), base_lr_(optimizer.learning_rate()), last_lr_(base_lr_) {}

LRScheduler::~LRScheduler() = default;

void LRScheduler::start() {
    apply(0);
}

void LRScheduler::step() {
    apply(last_epoch_ + 1);
}

// Computes first (lr_at may throw, e.g. past OneCycleLR's last step), then changes state.
void LRScheduler::apply(std::int64_t epoch) {
    const double lr = lr_at(epoch);
    apply_extra(epoch);
    optimizer_.set_learning_rate(lr);
    last_epoch_ = epoch;
    last_lr_ = lr;
}

std::map<std::string, Tensor> LRScheduler::state_dict() const {
    return {{"last_epoch", detail::scalar_tensor(static_cast<double>(last_epoch_))},
            {"base_lr", detail::scalar_tensor(base_lr_)}};
}

void LRScheduler::load_state_dict(const std::map<std::string, Tensor>& state) {
    detail::StateDictReader reader(state, name_ + "::load_state_dict", DType::Float64);  // as state_dict writes them
    const std::int64_t epoch = reader.count("last_epoch");
    const double base_lr = reader.scalar("base_lr");
    reader.finish();
    CONVKIT_REQUIRE(base_lr >= 0 && std::isfinite(base_lr), name_ + "::load_state_dict", "invalid base_lr ", base_lr);
    const double saved_base_lr = base_lr_;
    base_lr_ = base_lr;
    try {
        last_lr_ = lr_at(epoch);
    } catch (...) {
        base_lr_ = saved_base_lr;
        throw;
    }
    last_epoch_ = epoch;
}

// ---- StepLR ---------------------------------------------------------------------------------

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
    CONVKIT_REQUIRE(step_size > 0, name(), "step_size must be positive, got ", step_size);
    CONVKIT_REQUIRE(gamma >= 0 && std::isfinite(gamma), name(), "gamma must be finite and >= 0, got ", gamma);
    start();
}

double StepLR::lr_at(std::int64_t epoch) const {
    return base_lr() * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

// ---- CosineAnnealingLR ------------------------------------------------------------------------

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LRScheduler(optimizer, "CosineAnnealingLR"), t_max_(t_max), eta_min_(eta_min) {
    CONVKIT_REQUIRE(t_max > 0, name(), "T_max must be positive, got ", t_max);
    CONVKIT_REQUIRE(eta_min >= 0 && std::isfinite(eta_min), name(), "eta_min must be finite and >= 0, got ", eta_min);
    start();
}

double CosineAnnealingLR::lr_at(std::int64_t epoch) const {
    return eta_min_ + (base_lr() - eta_min_) *
                          (1 + std::cos(std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(t_max_))) /
                          2;
}

// ---- OneCycleLR -------------------------------------------------------------------------------

namespace {

double anneal(AnnealStrategy strategy, double start, double end, double pct) {
    if (strategy == AnnealStrategy::Linear) return (end - start) * pct + start;
    const double cos_out = std::cos(std::numbers::pi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
}

}  // namespace

OneCycleLR::OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps, OneCycleOptions options)
    : LRScheduler(optimizer, "OneCycleLR"), max_lr_(max_lr), total_steps_(total_steps), options_(options) {
    const OneCycleOptions& o = options_;
    CONVKIT_REQUIRE(total_steps > 0, name(), "total_steps must be positive, got ", total_steps);
    CONVKIT_REQUIRE(max_lr >= 0 && std::isfinite(max_lr), name(), "max_lr must be finite and >= 0, got ", max_lr);
    CONVKIT_REQUIRE(o.pct_start >= 0 && o.pct_start <= 1, name(), "pct_start must be in [0, 1], got ", o.pct_start);
    CONVKIT_REQUIRE(o.div_factor > 0 && std::isfinite(o.div_factor), name(), "div_factor must be positive, got ",
                    o.div_factor);
    CONVKIT_REQUIRE(o.final_div_factor > 0 && std::isfinite(o.final_div_factor), name(),
                    "final_div_factor must be positive, got ", o.final_div_factor);
    CONVKIT_REQUIRE(!o.cycle_momentum || optimizer.has_cycle_momentum(), name(), optimizer.name(),
                    " has no momentum or beta1 to cycle (pass cycle_momentum = false)");

    const double initial_lr = max_lr / o.div_factor;
    const double min_lr = initial_lr / o.final_div_factor;
    const auto total = static_cast<double>(total_steps);
    if (o.three_phase) {
        phases_ = {{o.pct_start * total - 1, initial_lr, max_lr, o.max_momentum, o.base_momentum},
                   {2 * o.pct_start * total - 2, max_lr, initial_lr, o.base_momentum, o.max_momentum},
                   {total - 1, initial_lr, min_lr, o.max_momentum, o.max_momentum}};
    } else {
        phases_ = {{o.pct_start * total - 1, initial_lr, max_lr, o.max_momentum, o.base_momentum},
                   {total - 1, max_lr, min_lr, o.base_momentum, o.max_momentum}};
    }
    // A phase that ends where the previous one ended would divide 0 by 0 (PyTorch raises
    // ZeroDivisionError when it reaches it); refuse it up front.
    double start_step = 0;
    for (std::size_t k = 0; k < phases_.size(); ++k) {
        CONVKIT_REQUIRE(phases_[k].end_step != start_step, name(), "phase ", k + 1, " of the schedule is empty (",
                        "pct_start ", o.pct_start, ", total_steps ", total_steps, "); choose another pct_start");
        start_step = phases_[k].end_step;
    }
    if (o.cycle_momentum) {
        // Both ends must suit the optimizer (Adam's beta1 < 1); every value between does then.
        const double previous = optimizer.cycle_momentum();
        try {
            optimizer.set_cycle_momentum(o.base_momentum);
            optimizer.set_cycle_momentum(o.max_momentum);
        } catch (...) {
            optimizer.set_cycle_momentum(previous);
            throw;
        }
    }
    set_base_lr(initial_lr);
    start();
}

OneCycleLR::Point OneCycleLR::at(std::int64_t epoch) const {
    CONVKIT_REQUIRE(epoch >= 0 && epoch <= total_steps_, name(), "tried to step ", epoch + 1,
                    " times; the specified number of total steps is ", total_steps_);
    // Epoch total_steps follows the last scheduled step (a loop that steps once per batch reaches
    // it): it keeps the final values, where PyTorch extrapolates the last phase (to a negative
    // rate with linear annealing).
    const auto step = static_cast<double>(std::min(epoch, total_steps_ - 1));
    double start_step = 0;
    for (std::size_t k = 0; k < phases_.size(); ++k) {
        const Phase& phase = phases_[k];
        if (step <= phase.end_step || k + 1 == phases_.size()) {
            const double pct = (step - start_step) / (phase.end_step - start_step);
            return {anneal(options_.anneal_strategy, phase.start_lr, phase.end_lr, pct),
                    anneal(options_.anneal_strategy, phase.start_momentum, phase.end_momentum, pct)};
        }
        start_step = phase.end_step;
    }
    return {0, 0};  // not reached: the last phase always matches
}

double OneCycleLR::lr_at(std::int64_t epoch) const {
    return at(epoch).lr;
}

double OneCycleLR::momentum_at(std::int64_t epoch) const {
    return at(epoch).momentum;
}

void OneCycleLR::apply_extra(std::int64_t epoch) {
    if (options_.cycle_momentum) optimizer().set_cycle_momentum(momentum_at(epoch));
}

}  // namespace convkit::optim
