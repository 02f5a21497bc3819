#pragma once
#include <string>
#include <vector>

#include "convkit/nn/module.h"

namespace convkit::nn {

// One module call of a traced forward pass.
struct LayerCall {
    std::string name{};  // the dotted name ("layer1.0.conv1"); "(model)" for the model itself
    const Module* module = nullptr;
    int depth = 0;  // nesting in the call tree, 0 for the model
    Shape input;
    Shape output;
    DType dtype = DType::Float32;
};

// Every module call of one forward pass of `model` on a zero input of `input_shape`, in call
// order, with each call's input and output shapes (in evaluation mode without gradients; the
// model's mode is restored). summary() prints it; convkit-bench takes a model's layer shapes
// from it.
std::vector<LayerCall> trace(Module& model, const Shape& input_shape, DType dtype = DType::Float32,
                             Device device = Device::host());

// A table of every module the model calls on a zero input of `input_shape` (batch included):
// its dotted name, type, output shape and own parameter count, indented by nesting; then the
// total and trainable parameter counts. Runs in evaluation mode without gradients and restores
// the model's mode afterwards.
std::string summary(Module& model, const Shape& input_shape, DType dtype = DType::Float32,
                    Device device = Device::host());

}  // namespace convkit::nn
