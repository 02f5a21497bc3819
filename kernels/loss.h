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
#include "cuda/deferred_errors.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// What a cross-entropy forward pass leaves in device memory (the caller's) instead of copying it
// back: the op layer defers the target check to the host's next wait (cuda/deferred_errors.h),
// and the backward pass divides by the count on the device.
struct CrossEntropyDeviceStatus {
    detail::DeviceErrorSlot invalid_target;  // the first row whose target is out of range, and that target
    double counted_rows;                     // rows whose target is not ignore_index
};

// Targets are checked inside the kernel, without a wait: see CrossEntropyDeviceStatus.
void cross_entropy_forward(const detail::CrossEntropyParams& p, Reduction reduction, DType dtype, const void* logits,
                           const std::int64_t* targets, void* out, void* row_lse, CrossEntropyDeviceStatus* status,
                           Stream stream);
// grad_output is per row (per_row) or a scalar times `scale`; with `counted_rows` (device memory,
// a forward pass's count) the scale is 1 / *counted_rows instead, the mean's.
void cross_entropy_backward(const detail::CrossEntropyParams& p, DType dtype, const void* grad_output, bool per_row,
                            double scale, const double* counted_rows, const void* logits, const std::int64_t* targets,
                            const void* row_lse, void* grad_logits, Stream stream);

void pointwise_loss_forward(detail::PointwiseLoss loss, Reduction reduction,
                            const detail::BroadcastGeometry& pos_weight_geometry, DType dtype, const void* input,
                            const void* target, const void* pos_weight, void* out, Stream stream);
void pointwise_loss_backward(detail::PointwiseLoss loss, const detail::BroadcastGeometry& pos_weight_geometry,
                             DType dtype, const void* grad_output, bool per_element, double scale, const void* input,
                             const void* target, const void* pos_weight, void* grad_input, void* grad_target,
                             Stream stream);

CONVKIT_KERNELS_END
