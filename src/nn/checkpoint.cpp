#include "convkit/nn/checkpoint.h"

#include <optional>

#include "convkit/io/safetensors.h"

namespace convkit::nn {

void save(const Module& module, const std::string& path, const std::map<std::string, std::string>& metadata) {
    save_safetensors(path, module.state_dict(), metadata);
}

void load(Module& module, const std::string& path, bool strict, std::map<std::string, std::string>* metadata) {
    const TensorMap state = load_safetensors(path, metadata);
    try {
        module.load_state_dict(state, strict);
    } catch (const InvalidArgument& e) {
        throw InvalidArgument("nn::load: " + path + ": " + e.what());
    }
}

namespace {
void add_prefixed(TensorMap& into, const std::string& prefix, const std::map<std::string, Tensor>& from) {
    for (const auto& [name, t] : from) into[prefix + name] = t;
}

// The entries of `all` under `prefix`, with the prefix removed.
TensorMap with_prefix(const TensorMap& all, const std::string& prefix) {
    TensorMap part;
    for (const auto& [name, t] : all) {
        if (name.compare(0, prefix.size(), prefix) == 0) part[name.substr(prefix.size())] = t;
    }
    return part;
}

void save_checkpoint(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                     const optim::LRScheduler* scheduler, const optim::GradScaler* scaler,
                     const std::map<std::string, std::string>& metadata) {
    TensorMap all;
    add_prefixed(all, "model.", model.state_dict());
    add_prefixed(all, "optimizer.", optimizer.state_dict());
    if (scheduler != nullptr) add_prefixed(all, "scheduler.", scheduler->state_dict());
    if (scaler != nullptr) add_prefixed(all, "scaler.", scaler->state_dict());
    save_safetensors(path, all, metadata);
}

void load_checkpoint(const std::string& path, Module& model, optim::Optimizer& optimizer, optim::LRScheduler* scheduler,
                     optim::GradScaler* scaler, std::map<std::string, std::string>* metadata) {
    const TensorMap all = load_safetensors(path, metadata);
    for (const auto& [name, t] : all) {
        const bool known = name.rfind("model.", 0) == 0 || name.rfind("optimizer.", 0) == 0 ||
                           (scheduler != nullptr && name.rfind("scheduler.", 0) == 0) ||
                           (scaler != nullptr && name.rfind("scaler.", 0) == 0);
        if (!known) throw InvalidArgument("load_training_checkpoint: " + path + ": unexpected tensor '" + name + "'");
    }
    // Each part's load checks everything before writing; snapshots undo the parts loaded before
    // a later one fails, so a bad file changes nothing. The scheduler loads last, so it needs none.
    const TensorMap model_before = model.state_dict();
    TensorMap model_snapshot;
    for (const auto& [name, t] : model_before) model_snapshot[name] = t.clone();
    const auto optimizer_snapshot = optimizer.state_dict();
    std::map<std::string, Tensor> optimizer_copy;
    for (const auto& [name, t] : optimizer_snapshot) optimizer_copy[name] = t.clone();
    // A copy of the scaler (a few numbers): restoring it cannot throw, even for a state that its
    // load_state_dict would refuse (a scale that underflowed to 0 after a thousand overflows).
    const std::optional<optim::GradScaler> scaler_before =
        scaler != nullptr ? std::optional<optim::GradScaler>(*scaler) : std::nullopt;
    try {
        model.load_state_dict(with_prefix(all, "model."));
        optimizer.load_state_dict(with_prefix(all, "optimizer."));
        if (scaler != nullptr) scaler->load_state_dict(with_prefix(all, "scaler."));
        if (scheduler != nullptr) scheduler->load_state_dict(with_prefix(all, "scheduler."));
    } catch (const Error& e) {
        model.load_state_dict(model_snapshot);
        optimizer.load_state_dict(optimizer_copy);
        if (scaler != nullptr) *scaler = *scaler_before;
        throw InvalidArgument("load_training_checkpoint: " + path + ": " + e.what());
    }
}
}  // namespace

void save_training_checkpoint(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                              const optim::LRScheduler* scheduler, const std::map<std::string, std::string>& metadata) {
    save_checkpoint(path, model, optimizer, scheduler, nullptr, metadata);
}

void save_training_checkpoint(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                              const optim::LRScheduler* scheduler, const optim::GradScaler& scaler,
                              const std::map<std::string, std::string>& metadata) {
    save_checkpoint(path, model, optimizer, scheduler, &scaler, metadata);
}

void load_training_checkpoint(const std::string& path, Module& model, optim::Optimizer& optimizer,
                              optim::LRScheduler* scheduler, std::map<std::string, std::string>* metadata) {
    load_checkpoint(path, model, optimizer, scheduler, nullptr, metadata);
}

void load_training_checkpoint(const std::string& path, Module& model, optim::Optimizer& optimizer,
                              optim::LRScheduler* scheduler, optim::GradScaler& scaler,
                              std::map<std::string, std::string>* metadata) {
    load_checkpoint(path, model, optimizer, scheduler, &scaler, metadata);
}

}  // namespace convkit::nn
