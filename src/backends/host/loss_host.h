#pragma once
// Host reference of the losses: loops straight from the definitions (ops/loss_math.h), in
// double, rounded once. The same entry points as kernels/loss.h.
#include <cstdint>

#include "convkit/dtype.h"
#include "convkit/ops/loss.h"
#include "backend_api/broadcast.h"
#include "backend_api/loss_math.h"

namespace convkit::detail {

// What a cross-entropy forward pass reports besides its output.
struct CrossEntropyStatus {
    std::int64_t first_invalid_row = -1;  // the first row whose target is out of range, or -1
    std::int64_t counted_rows = 0;        // rows whose target is not ignore_index
};

// out: the per-row losses (None) or the reduced scalar; row_lse: each row's log-sum-exp, which
// the backward pass reuses.
CrossEntropyStatus cross_entropy_forward_host(const CrossEntropyParams& p, Reduction reduction, DType dtype,
                                              const void* logits, const std::int64_t* targets, void* out,
                                              void* row_lse);
// grad_output is per row (per_row) or a scalar times `scale`.
void cross_entropy_backward_host(const CrossEntropyParams& p, DType dtype, const void* grad_output, bool per_row,
                                 double scale, const void* logits, const std::int64_t* targets, const void* row_lse,
                                 void* grad_logits);

// pos_weight may be null (weight 1); pos_weight_geometry broadcasts it (operand b) against the
// input (operand a). out: per element (None) or the reduced scalar.
void pointwise_loss_forward_host(PointwiseLoss loss, Reduction reduction, const BroadcastGeometry& pos_weight_geometry,
                                 DType dtype, const void* input, const void* target, const void* pos_weight,
                                 void* out);
// Either gradient pointer may be null (not needed).
void pointwise_loss_backward_host(PointwiseLoss loss, const BroadcastGeometry& pos_weight_geometry, DType dtype,
                                  const void* grad_output, bool per_element, double scale, const void* input,
                                  const void* target, const void* pos_weight, void* grad_input, void* grad_target);

}  // namespace convkit::detail
