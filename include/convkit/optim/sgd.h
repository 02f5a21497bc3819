#pragma once
// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay:
// torch.optim.SGD's update rule, step for step (docs/optimizers.md).
#include <optional>

#include "convkit/optim/optimizer.h"

namespace convkit::optim {

struct SGDOptions {
    std::optional<double> lr;  // required (no default, as in PyTorch); >= 0
    double momentum = 0;       // >= 0
    double dampening = 0;
    double weight_decay = 0;  // >= 0
    bool nesterov = false;    // needs momentum > 0 and dampening == 0
    bool maximize = false;    // ascend instead of descend
};

// state_dict keys: param_groups.0.{lr, momentum, dampening, weight_decay, nesterov, maximize};
// state.<i>.momentum_buffer once parameter i has been stepped with momentum != 0.
class SGD final : public Optimizer {
public:
    SGD(std::vector<Tensor> parameters, SGDOptions options);

    void step() override;
    // The current hyperparameters (lr included).
    SGDOptions options() const;

    std::map<std::string, Tensor> state_dict() const override;
    void load_state_dict(const std::map<std::string, Tensor>& state) override;

    bool has_cycle_momentum() const override { return true; }
    double cycle_momentum() const override { return options_.momentum; }
    void set_cycle_momentum(double momentum) override;

private:
    SGDOptions options_;                    // lr lives in Optimizer
    std::vector<Tensor> momentum_buffers_;  // one per parameter; undefined until its first step
};

}  // namespace convkit::optim
