#pragma once
// The one entry point behind every unary elementwise op and activation: checks, device
// dispatch and autograd recording, written once for the whole UnaryOp table.
#include "convkit/tensor.h"
#include "backend_api/unary_math.h"

namespace convkit::detail {

// op(t) elementwise into a new tensor; recorded for autograd, whose backward reads t or the
// result as unary_gradient_source(op) says.
Tensor apply_unary(UnaryOp op, const Tensor& t, UnaryScalars scalars = {});

}  // namespace convkit::detail
