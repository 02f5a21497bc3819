#pragma once
// Batch normalization for the host-blas backend: the entry points of batch_norm_host.h (same
// array conventions), run in parallel (thread_pool.h) over channels (sums) or planes (per-element passes), the
// per-channel sums in double with several partial sums at once (a vectorised reduction), the
// per-element arithmetic in double rounded once, as the reference. Only the order of the
// additions differs from the reference, so results agree to a few units in the last place of
// double; tests/test_batch_norm_parallel.cpp checks them against it.
#include "convkit/dtype.h"
#include "backend_api/batch_norm_math.h"

namespace convkit::detail {

void batch_norm_statistics_parallel(const BatchNormGeometry& g, DType dtype, const void* x, double* mean,
                                    double* var, const RunningStatistics& running);

void batch_norm_forward_parallel(const BatchNormGeometry& g, DType dtype, const void* x, const double* mean,
                                 const double* var, const void* weight, const void* bias, double eps, void* y);

void batch_norm_backward_reduce_parallel(const BatchNormGeometry& g, DType dtype, const void* grad_output,
                                         const void* x, const double* mean, const double* var, double eps,
                                         double* sum_dy, double* sum_dy_x_hat);

void batch_norm_backward_input_parallel(const BatchNormGeometry& g, DType dtype, const void* grad_output,
                                        const void* x, const double* mean, const double* var, const void* weight,
                                        const double* sum_dy, const double* sum_dy_x_hat, double eps,
                                        bool batch_statistics, void* grad_input);

}  // namespace convkit::detail
