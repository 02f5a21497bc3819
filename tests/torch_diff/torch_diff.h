#pragma once
// The C++ half of the differential test against PyTorch (tests/python/test_torch_differential.py).
//
// A case is one safetensors file, <name>.case.safetensors, written by the Python side:
//   metadata  "op" and the op's parameters as text ("stride": "2,1", "ceil_mode": "true"),
//             "requires_grad": the tensors whose gradients are compared ("input,weight,bias");
//   tensors   float64 inputs, a module's state_dict as "state.<PyTorch name>", "grad_output".
// The tool runs the op in float64 on the host with autograd, calls backward(grad_output) and
// writes <name>.result.safetensors: "output", "grad.<tensor name>" for every tensor that requires
// grad, and what an op adds (e.g. buffers after the step); its metadata says "status": "ok"
// (with "backward_error" if only backward threw), "error" (convkit threw: "error_type",
// "error_message") or "harness_error" (the case itself is malformed, names an unknown op or sets
// a key the tool does not apply: a bug in the test, never a pass).
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "convkit/convkit.h"

namespace torch_diff {

using convkit::Tensor;
using Metadata = std::map<std::string, std::string>;

// A malformed case: a missing key, a value that does not parse. Not a convkit error.
class CaseError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Case {
public:
    Case(std::string name, Metadata metadata, convkit::TensorMap tensors);

    const std::string& name() const { return name_; }
    const Metadata& metadata() const { return metadata_; }
    const convkit::TensorMap& tensors() const { return tensors_; }

    // Every accessor marks the key as read: keys the op never read mean the harness asked for
    // something the tool does not apply (unused_keys()), which is reported, not ignored.
    bool has(const std::string& key) const;
    const std::string& text(const std::string& key) const;  // CaseError if missing
    std::string text_or(const std::string& key, const std::string& fallback) const;
    std::int64_t integer(const std::string& key) const;
    std::int64_t integer_or(const std::string& key, std::int64_t fallback) const;
    double number(const std::string& key) const;
    double number_or(const std::string& key, double fallback) const;
    bool flag(const std::string& key, bool fallback) const;  // "true" / "false"
    std::vector<std::int64_t> integers(const std::string& key) const;  // "2,1" -> {2, 1}

    std::vector<std::string> unused_keys() const;

    bool has_tensor(const std::string& name) const { return tensors_.count(name) != 0; }
    // The tensor; if "requires_grad" lists it, it becomes a leaf whose gradient is reported.
    Tensor input(const std::string& name);
    Tensor optional_input(const std::string& name);  // undefined if absent

    // Tensors whose gradients the result reports, in the order they were registered.
    void add_differentiable(const std::string& name, const Tensor& tensor);
    const std::vector<std::pair<std::string, Tensor>>& differentiable() const { return differentiable_; }

private:
    std::string name_;
    Metadata metadata_;
    convkit::TensorMap tensors_;
    std::vector<std::string> requires_grad_;
    mutable std::set<std::string> read_keys_;
    std::vector<std::pair<std::string, Tensor>> differentiable_;
};

// What an op produced. The driver runs output.backward(grad_output) unless the op did its own
// backward passes (an optimizer's steps), then reports the gradients and `extras` as they are.
struct Run {
    Tensor output;
    convkit::TensorMap extras;
    bool backward_done = false;
};

using OpFunction = std::function<Run(Case&)>;
using OpTable = std::map<std::string, OpFunction>;

// Parses "2,1" into {2, 1}; a single value may stand for every dim.
std::vector<std::int64_t> parse_integers(const std::string& key, const std::string& text);
// `values` with one entry broadcast to `rank` entries; CaseError for any other count.
std::vector<std::int64_t> per_dim(const std::string& key, std::vector<std::int64_t> values, int rank);

// Geometry from the keys under `prefix` ("" for a functional op, "module.0." for a layer):
// stride, padding (integers or "same"), dilation, groups, padding_mode, output_padding;
// kernel_size, stride (default: the kernel), padding, dilation, ceil_mode, count_include_pad.
convkit::ConvParams conv_params_from(const Case& c, const std::string& prefix, int rank);
convkit::PoolParams pool_params_from(const Case& c, const std::string& prefix, int rank);

// The convkit module described under "module.", in float64, in the mode "module.training" asks
// for, holding the case's "state.<name>" tensors; its parameters are reported as differentiable
// ("grad.state.<name>"). Defined in torch_modules.cpp.
std::shared_ptr<convkit::nn::Module> prepared_module(Case& c);

// Each family adds its ops to the table.
void register_conv_pool_ops(OpTable& table);
void register_module_ops(OpTable& table);
void register_norm_shape_ops(OpTable& table);
void register_optim_ops(OpTable& table);
void register_elementwise_ops(OpTable& table);
void register_softmax_loss_ops(OpTable& table);

}  // namespace torch_diff
