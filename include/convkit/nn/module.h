#pragma once
// Layers in the LibTorch style. A Module owns named parameters (tensors that require grad),
// named buffers (state that is saved but not trained, e.g. BatchNorm's running statistics) and
// named child modules; its name-to-tensor maps use PyTorch's dotted names ("0.weight",
// "encoder.1.running_mean"), so a state_dict lines up with the same model in PyTorch.
//
//   auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
//       std::make_shared<nn::Conv2d>(1, 32, 3, ConvParams(2).set_padding(1)),
//       std::make_shared<nn::ReLU>(), ...});
//   Tensor logits = (*model)(images);
//
// Parameter handles returned by parameters() share storage with the module: an optimizer built
// from them updates the model. to(Device)/to(DType) replace the tensors, so build optimizers
// after moving a model (as in PyTorch); load_state_dict copies values into the existing tensors.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StateDict = std::map<std::string, Tensor>;

class Module {
public:
    Module() = default;
    virtual ~Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;

    // The layer's computation; call it through operator(), which also feeds summary().
    virtual Tensor forward(const Tensor& input) = 0;
    Tensor operator()(const Tensor& input);

    // "Conv2d", and the arguments that describe it ("1, 32, kernel_size=[3, 3], padding=[1, 1]").
    virtual std::string type_name() const = 0;
    virtual std::string extra_repr() const { return ""; }
    // Floating-point operations of one call that gave `output` from `input`, counting a
    // multiply-add as two; only the layers whose arithmetic dominates (convolutions, linear
    // layers) count, the others report 0. summary() adds them up.
    virtual std::int64_t flops(const Shape& input, const Shape& output) const;
    std::string to_string() const;  // the module tree, one line per module

    std::vector<Tensor> parameters(bool recurse = true) const;
    NamedTensors named_parameters(bool recurse = true) const;
    NamedTensors named_buffers(bool recurse = true) const;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
    // Every module below this one (not itself), depth first, with dotted names.
    std::vector<std::pair<std::string, Module*>> named_modules() const;
    std::int64_t parameter_count(bool trainable_only = false) const;

    // Training mode (dropout active, batch statistics) or evaluation; applies to children.
    void train(bool on = true);
    void eval() { train(false); }
    bool is_training() const { return training_; }

    void to(Device device);
    void to(DType dtype);  // floating tensors only; integer buffers keep their type
    void zero_grad();      // clears every parameter's grad (grad() becomes undefined)

    // Parameters and buffers by dotted name.
    StateDict state_dict() const;
    // Copies values into the existing tensors (on their devices, converting dtype where needed).
    // strict: a missing or unexpected key is an error; a shape mismatch always is, and so is an
    // integer tensor for a floating one or the reverse (float32 and float64 convert). Every
    // error names the tensor(s) concerned, and nothing is written unless every check passes.
    void load_state_dict(const StateDict& state, bool strict = true);

protected:
    // Registration, in the order that names and state_dict follow. The returned reference stays
    // valid for the module's lifetime (also across to()), so layers keep it as their member.
    Tensor& register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
    Tensor& register_buffer(const std::string& name, Tensor tensor);
    template <typename M>
    std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
        register_child(name, module);
        return module;
    }
    void register_child(const std::string& name, std::shared_ptr<Module> module);
    // Swaps the child registered as `name` for `module`, keeping its place in the order of names
    // (PyTorch's `model.fc = nn.Linear(...)`). InvalidArgument if there is no such child.
    void replace_child(const std::string& name, std::shared_ptr<Module> module);
    // Called on every module of the tree after load_state_dict has written new values, for
    // layers that keep a derived copy of a buffer.
    virtual void state_loaded() {}
    // Runs compute(input) as operator() runs forward(input): summary() records it as this
    // module's call. For a layer's other entry points (BatchNorm::forward_relu).
    template <typename Compute>
    Tensor recorded_call(const Tensor& input, Compute&& compute) {
        const std::size_t entry = enter_summary(input);
        Tensor output = compute(input);
        leave_summary(entry, output);
        return output;
    }

private:
    // The summary recorder's bookkeeping around a call; nothing when none is active.
    std::size_t enter_summary(const Tensor& input);
    void leave_summary(std::size_t entry, const Tensor& output);

    struct Slot {
        std::string name;
        Tensor tensor;
    };
    template <typename Visit>
    void visit_tensors(const std::string& prefix, bool recurse, bool parameters, Visit&& visit) const;

    std::vector<std::unique_ptr<Slot>> parameters_;  // unique_ptr: stable addresses for members
    std::vector<std::unique_ptr<Slot>> buffers_;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
    bool training_ = true;
};

}  // namespace convkit::nn
