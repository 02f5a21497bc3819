#pragma once
// Host implementations of the reductions (the reference): sums accumulate in double and round
// once. The same entry points as kernels/reduce.h.
#include <cstdint>

#include "convkit/dtype.h"
#include "backend_api/broadcast.h"
#include "backend_api/reduce_math.h"

namespace convkit::detail {

// out[j] = scale * (sum of the input elements that reduce to j).
void sum_dims_host(const ReduceToShapeGeometry& g, DType dtype, const void* x, double scale, void* out);
// values[j] (when not null) and indices[j]: the first maximum of row j (NaN counts as maximal).
void max_dim_host(const DimReduceGeometry& g, DType dtype, const void* x, void* values, std::int64_t* indices);
// dx[i] = dy[row] where i is the maximum `indices` names for its row, else 0 (all of dx).
void max_backward_host(const DimReduceGeometry& g, DType dtype, const void* dy, const std::int64_t* indices, void* dx);

}  // namespace convkit::detail
