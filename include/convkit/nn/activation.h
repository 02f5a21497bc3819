#pragma once
// Activation layers (no parameters): ReLU, LeakyReLU, Sigmoid, Tanh, GELU.
#include "convkit/nn/module.h"
#include "convkit/ops/activation.h"

namespace convkit::nn {

class ReLU : public Module {
public:
    Tensor forward(const Tensor& input) override { return relu(input); }
    std::string type_name() const override { return "ReLU"; }
};

class LeakyReLU : public Module {
public:
    explicit LeakyReLU(double negative_slope = 0.01) : negative_slope_(negative_slope) {}
    Tensor forward(const Tensor& input) override { return leaky_relu(input, negative_slope_); }
    std::string type_name() const override { return "LeakyReLU"; }
    std::string extra_repr() const override;

private:
    double negative_slope_;
};

class Sigmoid : public Module {
public:
    Tensor forward(const Tensor& input) override { return sigmoid(input); }
    std::string type_name() const override { return "Sigmoid"; }
};

class Tanh : public Module {
public:
    Tensor forward(const Tensor& input) override { return tanh(input); }
    std::string type_name() const override { return "Tanh"; }
};

class GELU : public Module {
public:
    explicit GELU(GeluApproximation approximate = GeluApproximation::None) : approximate_(approximate) {}
    Tensor forward(const Tensor& input) override { return gelu(input, approximate_); }
    std::string type_name() const override { return "GELU"; }
    std::string extra_repr() const override;

private:
    GeluApproximation approximate_;
};

}  // namespace convkit::nn
