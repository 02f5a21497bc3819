#pragma once
// The host reference of batch normalization: loops straight from the definitions, everything in
// double, rounded once to the data's dtype. The same entry points as kernels/batch_norm.h (see
// there for the array conventions: double statistics and sums, nullable weight and bias).
#include "convkit/dtype.h"
#include "backend_api/batch_norm_math.h"

namespace convkit::detail {

// Per channel, the mean, then the biased variance as the mean squared deviation from it (two
// passes); updates the running statistics where `running.updated_mean` is not null.
void batch_norm_statistics_host(const BatchNormGeometry& g, DType dtype, const void* x, double* mean, double* var,
                                const RunningStatistics& running);

void batch_norm_forward_host(const BatchNormGeometry& g, DType dtype, const void* x, const double* mean,
                             const double* var, const void* weight, const void* bias, double eps, void* y);

void batch_norm_backward_reduce_host(const BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                                     const double* mean, const double* var, double eps, double* sum_dy,
                                     double* sum_dy_x_hat);

void batch_norm_backward_input_host(const BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                                    const double* mean, const double* var, const void* weight, const double* sum_dy,
                                    const double* sum_dy_x_hat, double eps, bool batch_statistics, void* grad_input);

}  // namespace convkit::detail
