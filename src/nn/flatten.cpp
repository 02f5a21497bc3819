#include "convkit/nn/flatten.h"

#include "core/check.h"

namespace convkit::nn {

Tensor Flatten::forward(const Tensor& input) {
    CONVKIT_REQUIRE(input.defined(), "Flatten", "the input is undefined");
    const int rank = std::max(input.rank(), 1);
    const int start = start_dim_ < 0 ? start_dim_ + rank : start_dim_;
    const int end = end_dim_ < 0 ? end_dim_ + rank : end_dim_;
    CONVKIT_REQUIRE(start >= 0 && end < rank && start <= end, "Flatten", "dims ", start_dim_, "..", end_dim_,
                    " do not fit a tensor of shape ", input.shape().to_string());
    std::vector<std::int64_t> dims;
    std::int64_t merged = 1;
    for (int d = 0; d < input.rank(); ++d) {
        if (d < start || d > end) {
            if (d == end + 1) dims.push_back(merged);
            dims.push_back(input.size(d));
        } else {
            merged *= input.size(d);
        }
    }
    if (end == input.rank() - 1 || input.rank() == 0) dims.push_back(merged);
    return input.reshape(Shape(dims));
}

}  // namespace convkit::nn
