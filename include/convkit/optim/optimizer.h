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
// A bfloat16/float16 parameter is trained through float32 master weights (docs/optimizers.md):
// the optimizer keeps a float32 copy of it, made from the parameter on its first step, widens
// the 16-bit gradient to float32, updates the copy and the state (also float32) and writes the
// copy back into the parameter, rounded once. Its state_dict has them as
// "state.<i>.master_weights" (float32), so a resumed checkpoint continues bit-identically.
// The state tensors in the map share storage with the optimizer's (as PyTorch's state_dict
// does): clone them to keep a snapshot across later steps. load_state_dict copies.
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::detail {
class StateDictReader;
class GraphCapture;
}  // namespace convkit::detail

namespace convkit::optim {

class Optimizer {
public:
    virtual ~Optimizer();
    Optimizer(const Optimizer&) = delete;
    Optimizer& operator=(const Optimizer&) = delete;

    // Updates every parameter that has a gradient.
    virtual void step() = 0;
    // step() with every gradient divided by `divisor` as the update reads it (in float32 for a
    // 16-bit parameter, after widening, so small gradients do not underflow); the gradients
    // themselves are left as they are. How GradScaler (optim/grad_scaler.h) unscales. divisor > 0.
    void step_with_gradients_divided_by(double divisor);
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
    // Checks the parameters: at least one; defined floating-point leaves (requires_grad is not
    // needed: a frozen parameter simply never has a grad, as in PyTorch); all on one device; no
    // storage twice.
    Optimizer(std::string name, std::vector<Tensor> parameters, double lr);

    // Indices of the parameters that have a gradient, each checked to match its parameter.
    std::vector<std::size_t> parameters_with_grad() const;

    // What the update loops of one step read and write for one parameter: the parameter and its
    // gradient for float32/float64; for a 16-bit parameter its float32 master weights and its
    // gradient widened to float32. Either way float32 or float64, so the update tables (and the
    // one-launch CUDA step) run unchanged.
    struct UpdateOperands {
        Tensor weights;
        Tensor grad;
    };
    // The operands of each parameter in `active` (indexed like parameters()); makes the master
    // weights of a 16-bit parameter's first step and marks them written by `op`.
    std::vector<UpdateOperands> update_operands(const std::vector<std::size_t>& active, const char* op);
    // The CUDA graph capture under way for this optimizer's device on this thread (CapturedStep),
    // or null. Throws NotSupported naming `op` when the step cannot be captured: a gradient
    // divisor (GradScaler's unscaling, a value of this step) or a 16-bit parameter of `active`
    // without master weights yet (its first step copies them from the parameter).
    detail::GraphCapture* graph_capture(const std::string& op, const std::vector<std::size_t>& active) const;
    // After the update: each 16-bit parameter in `active` becomes its master weights, rounded once.
    void write_back_master_weights(const std::vector<std::size_t>& active);
    // The dtype of a parameter's optimizer state (float32 for a 16-bit parameter).
    DType state_dtype(std::size_t index) const;

    // The master weights in a state_dict ("state.<i>.master_weights"), sharing storage.
    void add_master_weights(std::map<std::string, Tensor>& state) const;
    // Reads them back for every 16-bit parameter that has state; commit with set_master_weights.
    std::vector<Tensor> read_master_weights(detail::StateDictReader& reader) const;
    void set_master_weights(std::vector<Tensor> master_weights) { master_weights_ = std::move(master_weights); }

private:
    std::string name_;
    std::vector<Tensor> parameters_;
    std::vector<Tensor> master_weights_;  // one per parameter; defined for a stepped 16-bit one
    double lr_;
    double gradient_divisor_ = 1;  // step_with_gradients_divided_by's, for the step in progress
};

}  // namespace convkit::optim
