#pragma once
// A module's parameters and buffers in a safetensors file, under the names of its state_dict
// (PyTorch's names: `model.load_state_dict(safetensors.torch.load_file(path))` reads it in
// Python for the same architecture). Writes are atomic; see docs/checkpoints.md.
#include <map>
#include <string>

#include "convkit/nn/module.h"

namespace convkit::nn {

void save(const Module& module, const std::string& path, const std::map<std::string, std::string>& metadata = {});

// Loads into the module's existing tensors (see Module::load_state_dict). A file that does not
// fit the module (missing or unexpected tensor, wrong shape) is an InvalidArgument naming the
// file and the tensor, and leaves the module unchanged.
void load(Module& module, const std::string& path, bool strict = true,
          std::map<std::string, std::string>* metadata = nullptr);

}  // namespace convkit::nn
