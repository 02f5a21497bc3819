#include "convkit/nn/linear.h"

#include <cmath>
#include <sstream>

#include "convkit/nn/init.h"
#include "convkit/ops/linear.h"
#include "core/check.h"

namespace convkit::nn {

namespace {
Shape checked_weight_shape(std::int64_t in_features, std::int64_t out_features) {
    CONVKIT_REQUIRE(in_features >= 1 && out_features >= 1, "Linear", "feature counts must be positive, got in ",
                    in_features, ", out ", out_features);
    return Shape{out_features, in_features};
}
}  // namespace

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias)
    : in_features_(in_features),
      out_features_(out_features),
      weight_(register_parameter("weight", Tensor::empty(checked_weight_shape(in_features, out_features)))) {
    // PyTorch's reset_parameters, as for convolutions: kaiming_uniform(a = sqrt(5)), i.e. bounds
    // of 1 / sqrt(in_features) for the weight and the bias alike.
    init::kaiming_uniform_(weight_, std::sqrt(5.0));
    if (bias) {
        bias_ = &register_parameter("bias", Tensor::empty(Shape{out_features}));
        const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
        init::uniform_(*bias_, -bound, bound);
    }
}

Tensor Linear::forward(const Tensor& input) {
    return linear(input, weight_, bias());
}

std::int64_t Linear::flops(const Shape&, const Shape& output) const {
    return 2 * output.numel() * weight_.shape()[1];  // one multiply-add per input feature
}

std::string Linear::extra_repr() const {
    std::ostringstream out;
    out << "in_features=" << in_features_ << ", out_features=" << out_features_
        << ", bias=" << (bias_ ? "True" : "False");
    return out.str();
}

}  // namespace convkit::nn
