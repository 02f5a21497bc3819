#include "convkit/nn/upsample.h"

#include "convkit/ops/shape_ops.h"
#include "core/check.h"

namespace convkit::nn {

Upsample::Upsample(std::vector<std::int64_t> scale_factors) : scale_factors_(std::move(scale_factors)) {
    CONVKIT_REQUIRE(!scale_factors_.empty() && scale_factors_.size() <= 3, "Upsample",
                    "needs 1 to 3 scale factors, got ", scale_factors_.size());
}

Tensor Upsample::forward(const Tensor& input) { return upsample_nearest(input, scale_factors_); }

std::string Upsample::extra_repr() const { return "scale_factor=" + Shape(scale_factors_).to_string() + ", mode='nearest'"; }

}  // namespace convkit::nn
