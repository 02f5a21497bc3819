#pragma once
#include <cstdint>

#include "convkit/nn/module.h"

namespace convkit::nn {

// Zeroes each element with probability p in training mode and scales the rest by 1 / (1 - p);
// the identity in evaluation mode. Each training call draws a new mask; the masks follow from
// the seed taken at construction (init::manual_seed makes a run reproducible).
class Dropout : public Module {
public:
    explicit Dropout(double p = 0.5);
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "Dropout"; }
    std::string extra_repr() const override;

private:
    double p_;
    std::uint64_t seed_;
    std::uint64_t calls_ = 0;
};

}  // namespace convkit::nn
