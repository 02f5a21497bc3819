#pragma once
// The one entry point behind every unary elementwise op and activation: checks, device
// dispatch and autograd recording, written once for the whole UnaryOp table.
#include "convkit/tensor.h"
#include "backend_api/unary_math.h"

namespace convkit::detail {

// op(t) elementwise into a new tensor; recorded for autograd, whose backward reads t or the
// result as unary_gradient_source(op) says.
Tensor apply_unary(UnaryOp op, const Tensor& t, UnaryScalars scalars = {});

// op's gradient dy * op'(...) without recording, given what unary_gradient_source(op) says it
// reads (the input or the output; for ops that read neither, anything); dy is brought to the
// saved tensor's memory format. For ops that fuse an activation (a convolution's ReLU epilogue).
Tensor unary_backward_raw(UnaryOp op, const Tensor& dy, const Tensor& saved, UnaryScalars scalars = {});

}  // namespace convkit::detail
