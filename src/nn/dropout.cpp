#include "convkit/nn/dropout.h"

#include <sstream>

#include "convkit/nn/init.h"
#include "convkit/ops/dropout.h"
#include "core/check.h"
#include "core/random.h"

namespace convkit::nn {

Dropout::Dropout(double p) : p_(p), seed_(init::next_seed()) {
    CONVKIT_REQUIRE(p >= 0 && p <= 1, "Dropout", "p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& input) {
    if (!is_training() || p_ == 0) return input;
    return dropout(input, p_, true, detail::mix64(seed_ + ++calls_));
}

std::string Dropout::extra_repr() const {
    std::ostringstream out;
    out << "p=" << p_;
    return out.str();
}

}  // namespace convkit::nn
