#include "convkit/nn/checkpoint.h"

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

}  // namespace convkit::nn
