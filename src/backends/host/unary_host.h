#pragma once
// Host implementations of the unary elementwise ops and activations; the same entry points as
// kernels/unary.h.
#include <cstdint>

#include "convkit/dtype.h"
#include "backend_api/unary_math.h"

namespace convkit::detail {

void unary_forward_host(UnaryOp op, UnaryScalars scalars, DType dtype, const void* x, void* y, std::int64_t count);
void unary_backward_host(UnaryOp op, UnaryScalars scalars, DType dtype, const void* dy, const void* saved, void* dx,
                         std::int64_t count);

}  // namespace convkit::detail
