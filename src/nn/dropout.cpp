#include "convkit/nn/dropout.h"

#include <sstream>

#include "convkit/nn/init.h"
#include "convkit/ops/dropout.h"
#include "core/check.h"
#include "core/random.h"
#include "cuda/cuda_memory.h"
#include "cuda/graph_capture.h"
#include "ops/dropout_with_device_seed.h"

namespace convkit::nn {

Dropout::Dropout(double p) : p_(p), seed_(init::next_seed()) {
    CONVKIT_REQUIRE(p >= 0 && p <= 1, "Dropout", "p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& input) {
    if (!is_training() || p_ == 0) return input;
    detail::GraphCapture* capture =
        input.device().is_cuda() ? detail::graph_capture_underway(input.device().index) : nullptr;
    if (capture == nullptr) return dropout(input, p_, true, detail::mix64(seed_ + ++calls_));
    // In a captured step the seed lives in device memory that no other work of the graph uses,
    // and each replay first writes the seed this call would draw eagerly: the same masks.
    const int device = input.device().index;
    std::shared_ptr<void> seed = detail::allocate_cuda_unshared(sizeof(std::uint64_t), current_stream(device));
    capture->before_each_replay([this, seed, device] {
        const std::uint64_t next = detail::mix64(seed_ + ++calls_);
        detail::copy_from_host_async(seed.get(), Device::cuda(device), &next, sizeof(next));
    });
    return detail::dropout_with_device_seed(input, p_, std::move(seed));
}

std::string Dropout::extra_repr() const {
    std::ostringstream out;
    out << "p=" << p_;
    return out.str();
}

}  // namespace convkit::nn
