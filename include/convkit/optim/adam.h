#pragma once
// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), with optional
// AMSGrad: torch.optim.Adam's and torch.optim.AdamW's update rules, step for step, bias
// correction and eps placed as in their default implementation (docs/optimizers.md).
#include <cstdint>

#include "convkit/optim/optimizer.h"

namespace convkit::optim {

struct AdamOptions {
    double lr = 1e-3;         // >= 0
    double beta1 = 0.9;       // in [0, 1)
    double beta2 = 0.999;     // in [0, 1)
    double eps = 1e-8;        // >= 0
    double weight_decay = 0;  // >= 0
    bool amsgrad = false;
    bool maximize = false;
};

// As AdamOptions; only the default weight decay differs (PyTorch's AdamW default).
struct AdamWOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-2;
    bool amsgrad = false;
    bool maximize = false;
};

// state_dict keys: param_groups.0.{lr, beta1, beta2, eps, weight_decay, amsgrad, maximize}
// (PyTorch's `betas` pair as two scalars); once parameter i has been stepped,
// state.<i>.{step, exp_avg, exp_avg_sq} and, with amsgrad, state.<i>.max_exp_avg_sq.
class Adam : public Optimizer {
public:
    explicit Adam(std::vector<Tensor> parameters, AdamOptions options = {});

    void step() override;
    AdamOptions options() const;  // the current hyperparameters (lr included)
    // How many steps parameters()[i] has taken (each counts its own: one without a grad is skipped).
    std::int64_t step_count(std::size_t i) const;

    std::map<std::string, Tensor> state_dict() const override;
    void load_state_dict(const std::map<std::string, Tensor>& state) override;

    bool has_cycle_momentum() const override { return true; }
    double cycle_momentum() const override { return options_.beta1; }
    void set_cycle_momentum(double beta1) override;

protected:
    // decoupled: AdamW's weight decay; name: "Adam" or "AdamW" for messages and name().
    Adam(std::vector<Tensor> parameters, AdamOptions options, bool decoupled, const char* name);

private:
    struct ParameterState {
        std::int64_t step = 0;
        Tensor exp_avg;
        Tensor exp_avg_sq;
        Tensor max_exp_avg_sq;  // amsgrad only
    };

    AdamOptions options_;  // lr lives in Optimizer
    bool decoupled_;
    std::vector<ParameterState> state_;  // one per parameter; step 0 and no tensors until stepped
};

class AdamW final : public Adam {
public:
    explicit AdamW(std::vector<Tensor> parameters, AdamWOptions options = {});
};

}  // namespace convkit::optim
