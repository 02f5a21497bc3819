#pragma once
// Dropout whose seed the kernels read from device memory: for a step captured in a CUDA graph
// (nn::Dropout under CapturedStep), where a hook writes each replay's seed there first.
#include <memory>

#include "convkit/tensor.h"

namespace convkit::detail {

// dropout(t, p, true, *seed_on_device) on a CUDA tensor; `seed_on_device` is a uint64 in device
// memory of t's device, read when the kernels run (forward and backward).
Tensor dropout_with_device_seed(const Tensor& t, double p, std::shared_ptr<void> seed_on_device);

}  // namespace convkit::detail
