#pragma once
#include <cstdint>
#include <vector>

#include "convkit/nn/module.h"

namespace convkit::nn {

// Nearest-neighbour upsampling by integer factors (one per spatial dim, or one for all).
class Upsample : public Module {
public:
    explicit Upsample(std::vector<std::int64_t> scale_factors);
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "Upsample"; }
    std::string extra_repr() const override;

private:
    std::vector<std::int64_t> scale_factors_;
};

}  // namespace convkit::nn
