#pragma once
// What the optimizer tests share (tests/test_optim.cpp, tests/test_optim_state.cpp): a random
// parameter and the factory type the tests run every optimizer through.
#include <functional>
#include <memory>
#include <vector>

#include "convkit/convkit.h"

namespace convkit::testing {

// A parameter of `shape`, uniform in [-1, 1], that takes gradients.
inline Tensor parameter(const Shape& shape, std::uint64_t seed, DType dtype = DType::Float64) {
    return Tensor::uniform(shape, -1, 1, seed, dtype).set_requires_grad();
}

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(const std::vector<Tensor>&)>;

}  // namespace convkit::testing
