#pragma once
// The Fashion-MNIST classifier of the main sample, shared with the host throughput benchmark:
// two conv-BN-ReLU-pool stages (28x28 -> 14x14 -> 7x7) and a two-layer classifier head.
// `width` is the first stage's channel count (the second has twice as many): 32 for the GPU
// default, smaller for quick runs on a laptop's CPU.
#include <cstdint>
#include <memory>

#include "convkit/nn.h"

namespace convkit::samples {

std::shared_ptr<nn::Sequential> make_fashion_mnist_model(std::int64_t width = 32, double dropout = 0.25);

}  // namespace convkit::samples
