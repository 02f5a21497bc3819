#pragma once
// Host reference of softmax and log-softmax: a loop per row straight from the definition, in
// double, rounded once. The same entry points as kernels/softmax.h.
#include "convkit/dtype.h"
#include "backend_api/softmax_math.h"

namespace convkit::detail {

void softmax_forward_host(SoftmaxKind kind, const SoftmaxGeometry& g, DType dtype, const void* x, void* y);
void softmax_backward_host(SoftmaxKind kind, const SoftmaxGeometry& g, DType dtype, const void* dy, const void* y,
                           void* dx);

}  // namespace convkit::detail
