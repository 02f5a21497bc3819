#pragma once
// Optimizers over a list of parameters, as torch.optim with one parameter group.
//
//   std::vector<Tensor> params = model.parameters();        // leaves (requires_grad)
//   optim::SGD opt(params, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
//   for (...) { opt.zero_grad(); loss(...).backward(); opt.step(); }
//
// The Tensor handles share storage with the model's parameters, so step() updates the model in
// place (under a NoGradGuard, bumping each storage's version). A parameter whose grad() is
// undefined is skipped by step(), state and all, as in PyTorch. All parameters are on one device;
// on a CUDA device each step is one fused kernel launch per dtype for all parameters.
//
// state_dict() exposes the optimizer's state as named tensors for checkpoints
// (docs/optimizers.md lists the keys):
//   "param_groups.0.<hyperparameter>"  rank-0 float64 (lr, momentum, ...; flags as 0 or 1)
//   "state.<i>.<buffer>"               the state of parameters()[i] (momentum_buffer, exp_avg,
//                                      exp_avg_sq, max_exp_avg_sq; step as rank-0 float64),
//                                      present only once that parameter has been stepped
// The state tensors in the map share storage with the optimizer's (as PyTorch's state_dict
// does): clone them to keep a snapshot across later steps. load_state_dict copies.
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::optim {

class Optimizer {
public:
    virtual ~Optimizer();
    Optimizer(const Optimizer&) = delete;
    Optimizer& operator=(const Optimizer&) = delete;

    // Updates every parameter that has a gradient.
    virtual void step() = 0;
    // Clears every parameter's gradient (grad() becomes undefined, as set_to_none in PyTorch).
    void zero_grad();

    double learning_rate() const { return lr_; }
    void set_learning_rate(double lr);  // lr >= 0

    const std::vector<Tensor>& parameters() const { return parameters_; }
    Device device() const { return parameters_.front().device(); }
    const std::string& name() const { return name_; }  // "SGD", "Adam", "AdamW"

    // Hyperparameters and per-parameter state as named tensors (see the top of this header).
    virtual std::map<std::string, Tensor> state_dict() const = 0;
    // Replaces hyperparameters and state from a state_dict() of an optimizer of the same kind
    // over parameters of the same shapes. Throws InvalidArgument naming the key on a missing or
    // unexpected key, a wrong shape or an invalid value, and then changes nothing. State tensors
    // are copied to the parameter's dtype and device.
    virtual void load_state_dict(const std::map<std::string, Tensor>& state) = 0;

    // The momentum-like hyperparameter that OneCycleLR cycles, as PyTorch does: SGD's momentum,
    // Adam's and AdamW's beta1. The defaults say there is none (and set_ throws).
    virtual bool has_cycle_momentum() const { return false; }
    virtual double cycle_momentum() const;
    virtual void set_cycle_momentum(double value);

protected:
    // Checks the parameters: at least one; defined float32/float64 leaves (requires_grad is not
    // needed: a frozen parameter simply never has a grad, as in PyTorch); all on one device; no
    // storage twice.
    Optimizer(std::string name, std::vector<Tensor> parameters, double lr);

    // Indices of the parameters that have a gradient, each checked to match its parameter.
    std::vector<std::size_t> parameters_with_grad() const;

private:
    std::string name_;
    std::vector<Tensor> parameters_;
    double lr_;
};

}  // namespace convkit::optim
