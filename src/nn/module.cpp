#include "convkit/nn/module.h"

#include <algorithm>
#include <functional>
#include <set>
#include <sstream>

#include "convkit/autograd.h"
#include "core/check.h"
#include "nn/summary_recorder.h"

namespace convkit::nn {

Tensor Module::operator()(const Tensor& input) {
    return recorded_call(input, [this](const Tensor& x) { return forward(x); });
}

std::size_t Module::enter_summary(const Tensor& input) {
    detail::SummaryRecorder* recorder = detail::active_summary_recorder();
    return recorder == nullptr ? 0 : recorder->enter(this, input.shape(), input.dtype());
}

void Module::leave_summary(std::size_t entry, const Tensor& output) {
    detail::SummaryRecorder* recorder = detail::active_summary_recorder();
    if (recorder != nullptr) recorder->leave(entry, output.shape());
}

std::string Module::to_string() const {
    std::ostringstream out;
    out << type_name() << "(" << extra_repr() << ")";
    for (const auto& [name, module] : named_modules()) {
        const auto depth = static_cast<std::size_t>(std::count(name.begin(), name.end(), '.') + 1);
        out << "\n" << std::string(2 * depth, ' ') << "(" << name.substr(name.rfind('.') + 1) << "): "
            << module->type_name() << "(" << module->extra_repr() << ")";
    }
    return out.str();
}

template <typename Visit>
void Module::visit_tensors(const std::string& prefix, bool recurse, bool parameters, Visit&& visit) const {
    for (const auto& slot : parameters ? parameters_ : buffers_) visit(prefix + slot->name, *slot);
    if (!recurse) return;
    for (const auto& [name, child] : children_) child->visit_tensors(prefix + name + ".", true, parameters, visit);
}

std::vector<Tensor> Module::parameters(bool recurse) const {
    std::vector<Tensor> result;
    visit_tensors("", recurse, true, [&](const std::string&, const Slot& slot) { result.push_back(slot.tensor); });
    return result;
}

NamedTensors Module::named_parameters(bool recurse) const {
    NamedTensors result;
    visit_tensors("", recurse, true,
                  [&](const std::string& name, const Slot& slot) { result.emplace_back(name, slot.tensor); });
    return result;
}

NamedTensors Module::named_buffers(bool recurse) const {
    NamedTensors result;
    visit_tensors("", recurse, false,
                  [&](const std::string& name, const Slot& slot) { result.emplace_back(name, slot.tensor); });
    return result;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const { return children_; }

std::vector<std::pair<std::string, Module*>> Module::named_modules() const {
    std::vector<std::pair<std::string, Module*>> result;
    for (const auto& [name, child] : children_) {
        result.emplace_back(name, child.get());
        for (auto& [sub_name, sub] : child->named_modules()) result.emplace_back(name + "." + sub_name, sub);
    }
    return result;
}

std::int64_t Module::parameter_count(bool trainable_only) const {
    std::int64_t count = 0;
    for (const Tensor& p : parameters()) {
        if (!trainable_only || p.requires_grad()) count += p.numel();
    }
    return count;
}

void Module::train(bool on) {
    training_ = on;
    for (auto& [name, child] : children_) child->train(on);
}

namespace {
// A tensor replaced by its converted copy keeps its role: a parameter stays a leaf that
// requires grad (the copy is made without recording, so it is a new leaf).
Tensor converted(const Tensor& t, const std::function<Tensor(const Tensor&)>& convert) {
    NoGradGuard no_grad;
    Tensor result = convert(t).detach();
    if (t.requires_grad()) result.set_requires_grad();
    return result;
}
}  // namespace

void Module::to(Device device) {
    auto move = [device](const Tensor& t) { return t.to(device); };
    for (auto& slot : parameters_) slot->tensor = converted(slot->tensor, move);
    for (auto& slot : buffers_) slot->tensor = converted(slot->tensor, move);
    for (auto& [name, child] : children_) child->to(device);
}

void Module::to(DType dtype) {
    CONVKIT_REQUIRE(is_floating_point(dtype), "Module::to", "modules convert to floating types only, got ",
                    dtype_name(dtype));
    auto convert = [dtype](const Tensor& t) { return is_floating_point(t.dtype()) ? t.to(dtype) : t; };
    for (auto& slot : parameters_) slot->tensor = converted(slot->tensor, convert);
    for (auto& slot : buffers_) slot->tensor = converted(slot->tensor, convert);
    for (auto& [name, child] : children_) child->to(dtype);
}

void Module::zero_grad() {
    for (Tensor& p : parameters()) p.clear_grad();
}

StateDict Module::state_dict() const {
    StateDict state;
    for (auto& [name, t] : named_parameters()) state[name] = t.detach();
    for (auto& [name, t] : named_buffers()) state[name] = t.detach();
    return state;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
    NamedTensors targets = named_parameters();
    for (auto& entry : named_buffers()) targets.push_back(entry);
    std::vector<std::string> missing;
    std::set<std::string> known;
    for (const auto& [name, target] : targets) {
        known.insert(name);
        const auto it = state.find(name);
        if (it == state.end()) {
            missing.push_back(name);
            continue;
        }
        CONVKIT_REQUIRE(it->second.shape() == target.shape(), "load_state_dict", "tensor '", name, "' has shape ",
                        it->second.shape().to_string(), " in the state but ", target.shape().to_string(),
                        " in the model");
        // Float widths convert (as PyTorch's copy_ does); an integer tensor where a float one belongs,
        // or the reverse, is a different tensor under the same name.
        CONVKIT_REQUIRE(is_floating_point(it->second.dtype()) == is_floating_point(target.dtype()), "load_state_dict",
                        "tensor '", name, "' has dtype ", dtype_name(it->second.dtype()), " in the state but ",
                        dtype_name(target.dtype()), " in the model");
    }
    std::vector<std::string> unexpected;
    for (const auto& [name, t] : state) {
        if (!known.count(name)) unexpected.push_back(name);
    }
    auto joined = [](const std::vector<std::string>& names) {
        std::string text;
        for (const auto& n : names) text += (text.empty() ? "'" : ", '") + n + "'";
        return text;
    };
    CONVKIT_REQUIRE(!strict || missing.empty(), "load_state_dict", "missing from the state: ", joined(missing));
    CONVKIT_REQUIRE(!strict || unexpected.empty(), "load_state_dict", "not in the model: ", joined(unexpected));
    // All checks pass before anything is written: a failed load leaves the model as it was.
    NoGradGuard no_grad;
    for (auto& [name, target] : targets) {
        const auto it = state.find(name);
        if (it == state.end()) continue;
        target.copy_(it->second.to(target.dtype()).to(target.device()));
    }
    state_loaded();
    for (auto& [name, module] : named_modules()) module->state_loaded();
}

std::int64_t Module::flops(const Shape&, const Shape&) const { return 0; }

Tensor& Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
    CONVKIT_REQUIRE(!name.empty() && name.find('.') == std::string::npos, "Module::register_parameter",
                    "a name must be non-empty and contain no '.', got '", name, "'");
    CONVKIT_REQUIRE(tensor.defined(), "Module::register_parameter", "parameter '", name, "' is undefined");
    if (tensor.defined() && requires_grad) tensor.set_requires_grad();
    parameters_.push_back(std::make_unique<Slot>(Slot{name, std::move(tensor)}));
    return parameters_.back()->tensor;
}

Tensor& Module::register_buffer(const std::string& name, Tensor tensor) {
    CONVKIT_REQUIRE(!name.empty() && name.find('.') == std::string::npos, "Module::register_buffer",
                    "a name must be non-empty and contain no '.', got '", name, "'");
    CONVKIT_REQUIRE(tensor.defined(), "Module::register_buffer", "buffer '", name, "' is undefined");
    buffers_.push_back(std::make_unique<Slot>(Slot{name, std::move(tensor)}));
    return buffers_.back()->tensor;
}

void Module::register_child(const std::string& name, std::shared_ptr<Module> module) {
    CONVKIT_REQUIRE(module != nullptr, "Module::register_module", "module '", name, "' is null");
    CONVKIT_REQUIRE(!name.empty() && name.find('.') == std::string::npos, "Module::register_module",
                    "a name must be non-empty and contain no '.', got '", name, "'");
    children_.emplace_back(name, std::move(module));
}

void Module::replace_child(const std::string& name, std::shared_ptr<Module> module) {
    CONVKIT_REQUIRE(module != nullptr, "Module::replace_child", "module '", name, "' is null");
    for (auto& [child_name, child] : children_) {
        if (child_name == name) {
            child = std::move(module);
            return;
        }
    }
    CONVKIT_REQUIRE(false, "Module::replace_child", "there is no child module '", name, "'");
}

}  // namespace convkit::nn
