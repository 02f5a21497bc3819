#pragma once
// Launchers for the unary elementwise kernels and activations (kernels/unary.cu); plain C++ for
// host callers. The arithmetic is ops/unary_math.h, shared with the host backend.
#include <cstdint>

#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/unary_math.h"

CONVKIT_KERNELS_BEGIN

// y[i] = op(x[i]) for i < count.
void unary_forward(detail::UnaryOp op, detail::UnaryScalars scalars, DType dtype, const void* x, void* y,
                   std::int64_t count, Stream stream);
// dx[i] = the gradient of op at element i from dy[i] and saved[i] (the op's input or output, as
// detail::unary_gradient_source says; any tensor of the same size where it reads nothing).
void unary_backward(detail::UnaryOp op, detail::UnaryScalars scalars, DType dtype, const void* dy, const void* saved,
                    void* dx, std::int64_t count, Stream stream);

CONVKIT_KERNELS_END
