#pragma once
// Launchers for the reduction kernels (kernels/reduce.cu); plain C++ for host callers. Each
// launcher picks its kernel by shape: a two-pass grid reduction when there is one output, blocks
// over chunks of long rows (sums; max: a block a row), a thread per output for short ones. Every
// choice depends on the shape (and, where 16-byte packs apply, on whether the buffer is aligned
// to one) and reduces in a fixed order, so results are the same run to run (and on any GPU). Sums
// accumulate in double whatever the dtype.
#include <cstdint>

#include "backend_api/broadcast.h"
#include "backend_api/reduce_math.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// out[j] = scale * (sum of the input elements that reduce to j), rounded once to the dtype
// (bfloat16 and float16 too). With scale 1 it is also the gradient of a broadcast
// (sum_to_shape).
void sum_dims(const detail::ReduceToShapeGeometry& g, DType dtype, const void* x, double scale, void* out,
              Stream stream);
// values[j] (when not null) and indices[j]: the first maximum of row j (NaN counts as maximal).
// Every row must be non-empty (g.size > 0).
void max_dim(const detail::DimReduceGeometry& g, DType dtype, const void* x, void* values, std::int64_t* indices,
             Stream stream);
// dx[i] = dy[row] where i is the maximum `indices` names for its row, else 0 (all of dx).
void max_backward(const detail::DimReduceGeometry& g, DType dtype, const void* dy, const std::int64_t* indices,
                  void* dx, Stream stream);

CONVKIT_KERNELS_END
