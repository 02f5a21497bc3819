#pragma once
#include <string>

#include "convkit/nn/module.h"

namespace convkit::nn {

// A table of every module the model calls on a zero input of `input_shape` (batch included):
// its dotted name, type, output shape and own parameter count, indented by nesting; then the
// total and trainable parameter counts. Runs in evaluation mode without gradients and restores
// the model's mode afterwards.
std::string summary(Module& model, const Shape& input_shape, DType dtype = DType::Float32,
                    Device device = Device::host());

}  // namespace convkit::nn
