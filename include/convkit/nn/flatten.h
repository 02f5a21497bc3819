#pragma once
#include "convkit/nn/module.h"

namespace convkit::nn {

// Merges dims start_dim..end_dim into one (PyTorch's nn.Flatten: by default [N, ...] -> [N, rest]).
class Flatten : public Module {
public:
    explicit Flatten(int start_dim = 1, int end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "Flatten"; }

private:
    int start_dim_;
    int end_dim_;
};

}  // namespace convkit::nn
