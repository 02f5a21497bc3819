// Tensor's autograd members: the state lives in detail::AutogradMeta, the graph in engine.cpp.
#include "autograd/graph.h"
#include "core/check.h"

namespace convkit {

bool Tensor::requires_grad() const { return autograd_ && autograd_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool requires_grad) {
    CONVKIT_REQUIRE(defined(), "Tensor::set_requires_grad", "the tensor is undefined");
    CONVKIT_REQUIRE(is_leaf(), "Tensor::set_requires_grad", "only leaf tensors can be switched; this one is the ",
                    "output of ", grad_fn_name(), " (use detach() to make a new leaf)");
    CONVKIT_REQUIRE(!requires_grad || is_floating_point(dtype_), "Tensor::set_requires_grad",
                    "only floating-point tensors can require grad, this one is ", dtype_name(dtype_));
    autograd_->requires_grad = requires_grad;
    return *this;
}

bool Tensor::is_leaf() const { return !autograd_ || !autograd_->grad_fn; }

Tensor Tensor::grad() const { return autograd_ ? autograd_->grad : Tensor(); }

void Tensor::set_grad(const Tensor& grad) {
    CONVKIT_REQUIRE(defined(), "Tensor::set_grad", "the tensor is undefined");
    if (grad.defined()) {
        CONVKIT_REQUIRE(grad.shape() == shape_ && grad.dtype() == dtype_ && grad.device() == device(),
                        "Tensor::set_grad", "the gradient is ", grad.shape().to_string(), " ",
                        dtype_name(grad.dtype()), " on ", grad.device().to_string(), " but the tensor is ",
                        shape_.to_string(), " ", dtype_name(dtype_), " on ", device().to_string());
    }
    autograd_->grad = grad.defined() ? grad.detach() : Tensor();
}

void Tensor::clear_grad() {
    if (autograd_) autograd_->grad = Tensor();
}

void Tensor::backward() const { autograd::run_backward(*this, Tensor(), false); }

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
    autograd::run_backward(*this, gradient, retain_graph);
}

Tensor Tensor::detach() const {
    CONVKIT_REQUIRE(defined(), "Tensor::detach", "the tensor is undefined");
    return Tensor(storage_, shape_, dtype_, format_);
}

std::string Tensor::grad_fn_name() const { return autograd_ && autograd_->grad_fn ? autograd_->grad_fn->name() : ""; }

void Tensor::check_in_place_write(const char* op) const {
    CONVKIT_REQUIRE(defined(), op, "the tensor is undefined");
    CONVKIT_REQUIRE(!(requires_grad() && grad_mode_enabled()), op, "the tensor of shape ", shape_.to_string(),
                    " requires grad, so it cannot be changed in place while gradients are recorded ",
                    "(wrap the change in a NoGradGuard, as optimizers and initialisers do)");
    storage_->bump_version();
}

}  // namespace convkit
