#include "convkit/nn/flatten.h"

#include "convkit/ops/shape_ops.h"

namespace convkit::nn {

Tensor Flatten::forward(const Tensor& input) { return flatten(input, start_dim_, end_dim_); }

}  // namespace convkit::nn
