#pragma once
// Max, average, adaptive-average and global-average pooling, 1-D to 3-D, forward and backward.
// Input [N, C, (D,) (H,) W]; the spatial rank comes from the params (or the input's rank).
// Memory format (convkit/memory_format.h): inputs and gradients may be channels-last; every
// result has the format of the tensor it derives from (the output: the input's; grad_input:
// grad_output's). The host reference runs channels-last in place (so does host-blas's average
// pooling, which is the reference's); a variant that does not (host-blas max pooling, the CUDA
// ones) gets contiguous copies and the result is converted back, counted in layout_conversions().
#include <cstdint>
#include <vector>

#include "convkit/conv_params.h"
#include "convkit/tensor.h"

namespace convkit {

// Windows that lie partly in the padding take the max over their in-bounds elements. The
// gradient flows to the first maximum of each window in scan order; NaN propagates and, as in
// PyTorch, the last NaN of a window takes the gradient.
Tensor max_pool_forward(const Tensor& input, const PoolParams& params);
Tensor max_pool_backward(const Tensor& grad_output, const Tensor& input, const PoolParams& params);

// The divisor is the window size clipped to input + padding when count_include_pad is set,
// else the number of in-bounds elements (PyTorch's rule).
Tensor avg_pool_forward(const Tensor& input, const PoolParams& params);
Tensor avg_pool_backward(const Tensor& grad_output, const Shape& input_shape, const PoolParams& params);

// Output spatial sizes given; window i of a dim covers [floor(i * in / out), ceil((i + 1) * in / out)).
Tensor adaptive_avg_pool_forward(const Tensor& input, const std::vector<std::int64_t>& output_size);
Tensor adaptive_avg_pool_backward(const Tensor& grad_output, const Shape& input_shape);

// Mean over all spatial positions: [N, C, spatial...] -> [N, C, 1...].
Tensor global_avg_pool_forward(const Tensor& input);
Tensor global_avg_pool_backward(const Tensor& grad_output, const Shape& input_shape);

}  // namespace convkit
