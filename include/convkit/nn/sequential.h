#pragma once
#include <memory>
#include <vector>

#include "convkit/nn/module.h"

namespace convkit::nn {

// Runs its children in order; they are named "0", "1", ... as in PyTorch's nn.Sequential. A
// convolution or BatchNorm followed by an nn::ReLU runs with it as one op (Conv::forward_with's
// epilogue, BatchNorm::forward_relu: fused on CUDA), with the same results and gradients as the
// two calls; summary() and trace() still list the ReLU.
class Sequential : public Module {
public:
    Sequential() = default;
    explicit Sequential(std::vector<std::shared_ptr<Module>> modules);

    Sequential& push_back(std::shared_ptr<Module> module);
    std::size_t size() const { return modules_.size(); }
    const std::shared_ptr<Module>& operator[](std::size_t index) const;

    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "Sequential"; }

private:
    std::vector<std::shared_ptr<Module>> modules_;
};

}  // namespace convkit::nn
