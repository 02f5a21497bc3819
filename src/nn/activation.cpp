#include "convkit/nn/activation.h"

#include <sstream>

namespace convkit::nn {

std::string LeakyReLU::extra_repr() const {
    std::ostringstream out;
    out << "negative_slope=" << negative_slope_;
    return out.str();
}

std::string GELU::extra_repr() const { return approximate_ == GeluApproximation::Tanh ? "approximate='tanh'" : ""; }

}  // namespace convkit::nn
