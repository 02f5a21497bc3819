#pragma once
// Launchers of the batch-normalization kernels (kernels/batch_norm.cu); plain C++ for host
// callers. The same entry points as the host backend (backends/host/batch_norm_host.h); the
// arithmetic is ops/batch_norm_math.h. Per-channel statistics and sums are double arrays
// [channels] whatever the data's dtype; data arrays (x, y, weight, bias, gradients) are of `dtype`,
// any float dtype (bfloat16/float16 computed in float32), in the layout the geometry names
// (contiguous or channels-last). weight and bias may be null (no affine parameters: weight 1,
// bias 0). The reductions take scratch from the caching allocator on `stream`.
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/batch_norm_math.h"

CONVKIT_KERNELS_BEGIN

// Per channel, the mean and the biased variance of x over the batch and spatial positions: one
// pass, sums of (x - shift) and its square with the channel's first value as the shift,
// accumulated in double over chunks of the channel, the chunks then added in a fixed order
// (deterministic). Also writes the updated running statistics where `running.updated_mean` is
// not null.
void batch_norm_statistics(const detail::BatchNormGeometry& g, DType dtype, const void* x, double* mean, double* var,
                           const detail::RunningStatistics& running, Stream stream);

// y = (x - mean) / sqrt(var + eps) * weight + bias, or relu(y) with `relu`.
// The backward passes with relu.enabled take dy through that ReLU, recomputing y from x.
void batch_norm_forward(const detail::BatchNormGeometry& g, DType dtype, const void* x, const double* mean,
                        const double* var, const void* weight, const void* bias, double eps, void* y, Stream stream, bool relu = false);

// Per channel, sum(dy) and sum(dy * x_hat) (the gradients of bias and weight), accumulated in
// double as the statistics are.
void batch_norm_backward_reduce(const detail::BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                                const double* mean, const double* var, double eps, double* sum_dy, double* sum_dy_x_hat,
                                Stream stream, const detail::FusedRelu& relu = {});

// dx from dy and the per-channel sums (read only when batch_statistics), one thread per element.
void batch_norm_backward_input(const detail::BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                               const double* mean, const double* var, const void* weight, const double* sum_dy,
                               const double* sum_dy_x_hat, double eps, bool batch_statistics, void* grad_input,
                               Stream stream, const detail::FusedRelu& relu = {});

CONVKIT_KERNELS_END
