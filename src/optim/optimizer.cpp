#include "convkit/optim/optimizer.h"

#include <cmath>
#include <set>

#include "convkit/autograd.h"
#include "convkit/ops/elementwise.h"
#include "core/check.h"
#include "cuda/graph_capture.h"
#include "optim/state_dict_support.h"

namespace convkit::optim {

Optimizer::Optimizer(std::string name, std::vector<Tensor> parameters, double lr)
    : name_(std::move(name)), parameters_(std::move(parameters)), lr_(0) {
    CONVKIT_REQUIRE(!parameters_.empty(), name_, "got an empty parameter list");
    std::set<const void*> seen;
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
        const Tensor& p = parameters_[i];
        CONVKIT_REQUIRE(p.defined(), name_, "parameter ", i, " is undefined");
        CONVKIT_REQUIRE(is_floating_point(p.dtype()), name_, "parameter ", i,
                        " must be float32, float64, bfloat16 or float16, got ", dtype_name(p.dtype()));
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
    master_weights_.resize(parameters_.size());
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

std::vector<Optimizer::UpdateOperands> Optimizer::update_operands(const std::vector<std::size_t>& active,
                                                                  const char* op) {
    std::vector<UpdateOperands> operands(parameters_.size());
    NoGradGuard no_grad;
    // The gradient as the update reads it: divided (a new tensor) only when a divisor is set.
    const auto divided = [&](const Tensor& grad) {
        return gradient_divisor_ == 1 ? grad : grad * (1 / gradient_divisor_);
    };
    for (const std::size_t i : active) {
        const Tensor& p = parameters_[i];
        if (!is_reduced_precision(p.dtype())) {
            operands[i] = {p, divided(p.grad())};
            continue;
        }
        // Lazily, as the other state: the master starts as the parameter's exact float32 value.
        if (!master_weights_[i].defined()) master_weights_[i] = p.detach().to(DType::Float32);
        master_weights_[i].mark_written_in_place(op);
        operands[i] = {master_weights_[i], divided(p.grad().to(DType::Float32))};
    }
    return operands;
}

void Optimizer::step_with_gradients_divided_by(double divisor) {
    CONVKIT_REQUIRE(divisor > 0 && std::isfinite(divisor), name_ + "::step_with_gradients_divided_by",
                    "divisor must be positive and finite, got ", divisor);
    gradient_divisor_ = divisor;
    try {
        step();
    } catch (...) {
        gradient_divisor_ = 1;
        throw;
    }
    gradient_divisor_ = 1;
}

detail::GraphCapture* Optimizer::graph_capture(const std::string& op, const std::vector<std::size_t>& active) const {
    if (!device().is_cuda()) return nullptr;
    detail::GraphCapture* capture = detail::graph_capture_underway(device().index);
    if (capture == nullptr) return nullptr;
    if (gradient_divisor_ != 1) {
        detail::refuse_in_graph_capture(device().index, op + " with its gradients divided (GradScaler)",
                                        detail::concat("the divisor ", gradient_divisor_,
                                                       " changes from step to step and would be fixed in the graph"));
    }
    for (const std::size_t i : active) {
        if (is_reduced_precision(parameters_[i].dtype()) && !master_weights_[i].defined()) {
            detail::refuse_in_graph_capture(
                device().index, detail::concat(op, " of parameter ", i),
                "its first step copies the 16-bit parameter into float32 master weights, which every replay would "
                "repeat; run an eager step first (CapturedStep's warm-up does)");
        }
    }
    return capture;
}

void Optimizer::write_back_master_weights(const std::vector<std::size_t>& active) {
    NoGradGuard no_grad;
    for (const std::size_t i : active) {
        Tensor& p = parameters_[i];
        if (is_reduced_precision(p.dtype())) p.copy_(master_weights_[i].to(p.dtype()));
    }
}

DType Optimizer::state_dtype(std::size_t index) const {
    return detail::optimizer_state_dtype(parameters_[index].dtype());
}

void Optimizer::add_master_weights(std::map<std::string, Tensor>& state) const {
    for (std::size_t i = 0; i < master_weights_.size(); ++i) {
        if (master_weights_[i].defined())
            state.emplace(detail::state_key(i, "master_weights"), master_weights_[i].detach());
    }
}

std::vector<Tensor> Optimizer::read_master_weights(detail::StateDictReader& reader) const {
    std::vector<Tensor> masters(parameters_.size());
    for (std::size_t i = 0; i < masters.size(); ++i) {
        if (is_reduced_precision(parameters_[i].dtype()) && reader.has_state(i)) {
            masters[i] = reader.buffer(i, "master_weights", parameters_[i]);
        }
    }
    return masters;
}

}  // namespace convkit::optim
