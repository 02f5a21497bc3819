#pragma once
// A fully connected layer y = x W^T + b: input [N, in_features], weight [out_features,
// in_features] (PyTorch's layout and names), bias [out_features]; PyTorch's initialisation.
#include <cstdint>

#include "convkit/nn/module.h"

namespace convkit::nn {

class Linear : public Module {
public:
    Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true);
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "Linear"; }
    std::string extra_repr() const override;
    std::int64_t flops(const Shape& input, const Shape& output) const override;

    const Tensor& weight() const { return weight_; }
    Tensor bias() const { return bias_ ? *bias_ : Tensor(); }

private:
    std::int64_t in_features_;
    std::int64_t out_features_;
    Tensor& weight_;
    Tensor* bias_ = nullptr;
};

}  // namespace convkit::nn
