#pragma once
// Learning-rate schedules, as torch.optim.lr_scheduler, in PyTorch's closed forms of the epoch
// count (docs/optimizers.md):
//
//   optim::SGD opt(params, {.lr = 0.1, .momentum = 0.9});
//   optim::CosineAnnealingLR schedule(opt, 100);     // sets opt's lr for epoch 0
//   for (int epoch = 0; epoch < 100; ++epoch) { train_one_epoch(opt); schedule.step(); }
//
// Constructing a scheduler sets the optimizer's learning rate for epoch 0 (PyTorch's initial
// step); step() advances the epoch (or batch, for OneCycleLR) and sets the rate for it. The
// base rate is the optimizer's learning rate at construction (PyTorch's initial_lr). Being
// closed forms, the schedules do not compose with other changes to the learning rate made
// between steps: each step overwrites it. A scheduler refers to its optimizer, which must
// outlive it.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "convkit/optim/optimizer.h"

namespace convkit::optim {

class LRScheduler {
public:
    virtual ~LRScheduler();
    LRScheduler(const LRScheduler&) = delete;
    LRScheduler& operator=(const LRScheduler&) = delete;

    // Advances to the next epoch and sets the optimizer's learning rate (and, for OneCycleLR,
    // its momentum) for it.
    void step();
    double last_lr() const { return last_lr_; }              // the rate last set
    std::int64_t last_epoch() const { return last_epoch_; }  // 0 after construction
    double base_lr() const { return base_lr_; }
    // The rate of any epoch, without changing anything.
    virtual double lr_at(std::int64_t epoch) const = 0;

    // "last_epoch" and "base_lr" as rank-0 float64 tensors; the schedule's own arguments are
    // the constructor's. load_state_dict restores them (and last_lr) but leaves the optimizer
    // alone: its own state_dict restores its rate.
    std::map<std::string, Tensor> state_dict() const;
    void load_state_dict(const std::map<std::string, Tensor>& state);

protected:
    LRScheduler(Optimizer& optimizer, std::string name);
    // Applies epoch 0: call at the end of each constructor.
    void start();
    // What a schedule sets besides the rate (OneCycleLR's momentum).
    virtual void apply_extra(std::int64_t /*epoch*/) {}
    Optimizer& optimizer() const { return optimizer_; }
    void set_base_lr(double base_lr) { base_lr_ = base_lr; }
    const std::string& name() const { return name_; }

private:
    void apply(std::int64_t epoch);

    Optimizer& optimizer_;
    std::string name_;
    double base_lr_;
    std::int64_t last_epoch_ = -1;
    double last_lr_;
};

// lr = base_lr * gamma^floor(epoch / step_size)
class StepLR final : public LRScheduler {
public:
    StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);
    double lr_at(std::int64_t epoch) const override;

private:
    std::int64_t step_size_;
    double gamma_;
};

// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2
// (periodic past T_max, as PyTorch's closed form).
class CosineAnnealingLR final : public LRScheduler {
public:
    CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min = 0);
    double lr_at(std::int64_t epoch) const override;

private:
    std::int64_t t_max_;
    double eta_min_;
};

enum class AnnealStrategy { Cosine, Linear };

struct OneCycleOptions {
    double pct_start = 0.3;  // share of the steps spent rising, in [0, 1]
    AnnealStrategy anneal_strategy = AnnealStrategy::Cosine;
    // Cycle the optimizer's momentum (SGD) or beta1 (Adam, AdamW) inversely to the rate, from
    // max_momentum down to base_momentum and back.
    bool cycle_momentum = true;
    double base_momentum = 0.85;
    double max_momentum = 0.95;
    double div_factor = 25;         // initial lr = max_lr / div_factor
    double final_div_factor = 1e4;  // final lr = initial lr / final_div_factor
    bool three_phase = false;       // Fast.ai's schedule: rise, fall back to initial, then anneal
};

// The 1cycle policy (Smith & Topin, "Super-Convergence"), stepped once per batch: epochs 0 to
// total_steps - 1 follow PyTorch's formula; epoch total_steps (reached by the last step() of a
// loop over total_steps batches) keeps the final values, where PyTorch extrapolates; stepping
// further throws, as in PyTorch. Setting it up sets the
// optimizer's learning rate to max_lr / div_factor and, with cycle_momentum, its momentum to
// max_momentum (an optimizer without one is an InvalidArgument).
class OneCycleLR final : public LRScheduler {
public:
    OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps, OneCycleOptions options = {});
    double lr_at(std::int64_t epoch) const override;
    // The momentum (or beta1) the schedule sets at `epoch`.
    double momentum_at(std::int64_t epoch) const;

protected:
    void apply_extra(std::int64_t epoch) override;

private:
    struct Phase {
        double end_step;
        double start_lr, end_lr;
        double start_momentum, end_momentum;
    };
    struct Point {
        double lr;
        double momentum;
    };
    Point at(std::int64_t epoch) const;

    double max_lr_;
    std::int64_t total_steps_;
    OneCycleOptions options_;
    std::vector<Phase> phases_;
};

}  // namespace convkit::optim
