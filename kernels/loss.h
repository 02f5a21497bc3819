#pragma once
// Launchers of the loss kernels (kernels/loss.cu); plain C++ for host callers. The same entry
// points as the host reference (backends/host/loss_host.h), plus a stream.
//
// Reductions: each block sums its threads' losses (in double, block_sum's fixed tree), then one
// block sums the blocks' partial sums in order and divides for Mean. The grid depends only on
// the problem size, so a result is the same on every run.
#include <cstdint>

#include "backends/host/loss_host.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// Targets are checked inside the kernel: an out-of-range one marks the first such row in a
// device flag, which is copied back with the count of rows once per call (so this waits for
// the kernels to finish).
detail::CrossEntropyStatus cross_entropy_forward(const detail::CrossEntropyParams& p, Reduction reduction, DType dtype,
                                                 const void* logits, const std::int64_t* targets, void* out,
                                                 void* row_lse, Stream stream);
void cross_entropy_backward(const detail::CrossEntropyParams& p, DType dtype, const void* grad_output, bool per_row,
                            double scale, const void* logits, const std::int64_t* targets, const void* row_lse,
                            void* grad_logits, Stream stream);

void pointwise_loss_forward(detail::PointwiseLoss loss, Reduction reduction,
                            const detail::BroadcastGeometry& pos_weight_geometry, DType dtype, const void* input,
                            const void* target, const void* pos_weight, void* out, Stream stream);
void pointwise_loss_backward(detail::PointwiseLoss loss, const detail::BroadcastGeometry& pos_weight_geometry,
                             DType dtype, const void* grad_output, bool per_element, double scale, const void* input,
                             const void* target, const void* pos_weight, void* grad_input, void* grad_target,
                             Stream stream);

CONVKIT_KERNELS_END
