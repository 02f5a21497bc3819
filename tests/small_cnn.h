#pragma once
// The small CNN of the CUDA step tests (conv, batch norm, ReLU, max pooling, linear) on 1x8x8
// images with 3 classes, and dropout before the linear layer when `dropout` > 0:
// test_cuda_step_sync.cpp and test_cuda_graph.cpp.
#include <memory>
#include <vector>

#include "convkit/convkit.h"

namespace convkit::testing {

inline std::shared_ptr<nn::Sequential> small_cnn(double dropout = 0) {
    const ConvParams same = ConvParams(2).set_padding(1);
    std::vector<std::shared_ptr<nn::Module>> layers{
        std::make_shared<nn::Conv2d>(1, 4, 3, same), std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>()};
    if (dropout > 0) layers.push_back(std::make_shared<nn::Dropout>(dropout));
    layers.push_back(std::make_shared<nn::Linear>(4 * 4 * 4, 3));
    return std::make_shared<nn::Sequential>(layers);
}

}  // namespace convkit::testing
