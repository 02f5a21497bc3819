#pragma once
// Host implementations of the binary elementwise ops; the same entry points as kernels/binary.h
// (their gradient's sum is sum_dims_host, backends/host/reduce_host.h).
#include "convkit/dtype.h"
#include "backend_api/binary_math.h"
#include "backend_api/broadcast.h"

namespace convkit::detail {

void binary_elementwise_host(BinaryOp op, const BroadcastGeometry& g, DType dtype, const void* a, const void* b,
                             void* out);

}  // namespace convkit::detail
