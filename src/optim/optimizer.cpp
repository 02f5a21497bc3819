#include "convkit/optim/optimizer.h"

#include <cmath>
#include <set>

#include "core/check.h"

namespace convkit::optim {

Optimizer::Optimizer(std::string name, std::vector<Tensor> parameters, double lr)
    : name_(std::move(name)), parameters_(std::move(parameters)), lr_(0) {
    CONVKIT_REQUIRE(!parameters_.empty(), name_, "got an empty parameter list");
    std::set<const void*> seen;
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
        const Tensor& p = parameters_[i];
        CONVKIT_REQUIRE(p.defined(), name_, "parameter ", i, " is undefined");
        CONVKIT_REQUIRE(is_floating_point(p.dtype()), name_, "parameter ", i, " must be float32 or float64, got ",
                        dtype_name(p.dtype()));
        // The update loops instantiate float and double only: a 16-bit parameter would be skipped.
        if (is_reduced_precision(p.dtype())) {
            throw NotSupported(detail::concat(name_, ": parameter ", i, " is ", dtype_name(p.dtype()),
                                              "; the optimizers update float32 and float64 parameters only"));
        }
        CONVKIT_REQUIRE(p.is_leaf(), name_, "parameter ", i, " is not a leaf (it was computed by ", p.grad_fn_name(),
                        "); optimize the tensor it came from");
        CONVKIT_REQUIRE(p.device() == parameters_.front().device(), name_, "parameter ", i, " is on ",
                        p.device().to_string(), " but parameter 0 is on ", parameters_.front().device().to_string(),
                        "; one optimizer updates parameters of one device");
        // Two handles of one storage (a tensor and its reshape) would be updated twice per step.
        CONVKIT_REQUIRE(p.numel() == 0 || seen.insert(p.raw_data()).second, name_, "parameter ", i,
                        " shares its storage with an earlier parameter (the same tensor given twice)");
    }
    set_learning_rate(lr);
}

Optimizer::~Optimizer() = default;

void Optimizer::zero_grad() {
    for (Tensor& p : parameters_) p.clear_grad();
}

void Optimizer::set_learning_rate(double lr) {
    CONVKIT_REQUIRE(lr >= 0 && std::isfinite(lr), name_, "invalid learning rate ", lr, " (must be finite and >= 0)");
    lr_ = lr;
}

double Optimizer::cycle_momentum() const {
    throw InvalidArgument(name_ + ": has no momentum or beta1 to cycle");
}

void Optimizer::set_cycle_momentum(double /*value*/) {
    throw InvalidArgument(name_ + ": has no momentum or beta1 to cycle");
}

std::vector<std::size_t> Optimizer::parameters_with_grad() const {
    std::vector<std::size_t> indices;
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
        const Tensor& p = parameters_[i];
        const Tensor g = p.grad();
        if (!g.defined()) continue;
        CONVKIT_REQUIRE(g.shape() == p.shape() && g.dtype() == p.dtype() && g.device() == p.device(), name_,
                        "the grad of parameter ", i, " is ", dtype_name(g.dtype()), " ", g.shape().to_string(), " on ",
                        g.device().to_string(), " but the parameter is ", dtype_name(p.dtype()), " ",
                        p.shape().to_string(), " on ", p.device().to_string());
        indices.push_back(i);
    }
    return indices;
}

}  // namespace convkit::optim
