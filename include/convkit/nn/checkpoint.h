#pragma once
// A module's parameters and buffers in a safetensors file, under the names of its state_dict
// (PyTorch's names: `model.load_state_dict(safetensors.torch.load_file(path))` reads it in
// Python for the same architecture). Writes are atomic; see docs/checkpoints.md.
#include <map>
#include <string>

#include "convkit/nn/module.h"
#include "convkit/optim/grad_scaler.h"
#include "convkit/optim/optimizer.h"
#include "convkit/optim/scheduler.h"

namespace convkit::nn {

void save(const Module& module, const std::string& path, const std::map<std::string, std::string>& metadata = {});

// Loads into the module's existing tensors (see Module::load_state_dict). A file that does not
// fit the module (missing or unexpected tensor, wrong shape) is an InvalidArgument naming the
// file and the tensor, and leaves the module unchanged.
void load(Module& module, const std::string& path, bool strict = true,
          std::map<std::string, std::string>* metadata = nullptr);

// A training checkpoint: the model's state under "model.<name>", the optimizer's under
// "optimizer.<key>" and, when given, the schedule's under "scheduler.<key>", plus `metadata`
// (epoch, metrics...), in one atomically written file. Resuming from it continues training
// exactly where it stopped.
void save_training_checkpoint(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                              const optim::LRScheduler* scheduler = nullptr,
                              const std::map<std::string, std::string>& metadata = {});
// Everything is checked before anything is written: on an error the model, optimizer and
// schedule are as they were.
void load_training_checkpoint(const std::string& path, Module& model, optim::Optimizer& optimizer,
                              optim::LRScheduler* scheduler = nullptr,
                              std::map<std::string, std::string>* metadata = nullptr);

// The same with a float16 run's loss scaler (optim/grad_scaler.h) under "scaler.<key>", so the
// resumed run continues from the saved scale and counts instead of restarting at init_scale.
// `scheduler` may be null. Loading needs the "scaler." keys (a checkpoint saved without a scaler
// is refused by this overload, one with a scaler by the overloads above: unexpected tensors) and
// leaves the model, optimizer, scaler and schedule as they were on an error.
void save_training_checkpoint(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                              const optim::LRScheduler* scheduler, const optim::GradScaler& scaler,
                              const std::map<std::string, std::string>& metadata = {});
void load_training_checkpoint(const std::string& path, Module& model, optim::Optimizer& optimizer,
                              optim::LRScheduler* scheduler, optim::GradScaler& scaler,
                              std::map<std::string, std::string>* metadata = nullptr);

}  // namespace convkit::nn
