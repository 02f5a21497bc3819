#include "convkit/nn/sequential.h"

#include <typeinfo>

#include "convkit/nn/activation.h"
#include "convkit/nn/batch_norm.h"
#include "convkit/nn/conv.h"
#include "core/check.h"
#include "nn/summary_recorder.h"

namespace convkit::nn {

namespace {
// Whether `module` is exactly one of the library's layers in `Layers` (a user's subclass may
// override forward(), which the fused call would bypass).
template <typename... Layers>
bool is_exactly_one_of(const Module& module) {
    return ((typeid(module) == typeid(Layers)) || ...);
}

// module(x) followed by a ReLU as one op, where the module has one: a BatchNorm's
// batch_norm_relu (fused on CUDA) or a convolution's epilogue (fused on cuda.igemm). Undefined
// for other modules.
Tensor forward_with_relu(Module& module, const Tensor& x) {
    if (is_exactly_one_of<BatchNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d>(module)) {
        return static_cast<BatchNorm&>(module).forward_relu(x);
    }
    if (is_exactly_one_of<Conv, Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d>(module)) {
        return static_cast<Conv&>(module).forward_with(x, {.residual = Tensor(), .relu = true});
    }
    return Tensor();
}

// summary() lists the ReLU whose work the module before it did, as if it had run.
void record_fused_relu(const Module& relu_module, const Tensor& y) {
    if (detail::SummaryRecorder* recorder = detail::active_summary_recorder()) {
        recorder->leave(recorder->enter(&relu_module, y.shape(), y.dtype()), y.shape());
    }
}
}  // namespace

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
    for (auto& m : modules) push_back(std::move(m));
}

Sequential& Sequential::push_back(std::shared_ptr<Module> module) {
    register_child(std::to_string(modules_.size()), module);
    modules_.push_back(std::move(module));
    return *this;
}

const std::shared_ptr<Module>& Sequential::operator[](std::size_t index) const {
    CONVKIT_REQUIRE(index < modules_.size(), "Sequential", "index ", index, " is out of range for ", modules_.size(),
                    " modules");
    return modules_[index];
}

Tensor Sequential::forward(const Tensor& input) {
    Tensor x = input;
    for (std::size_t i = 0; i < modules_.size(); ++i) {
        const bool relu_next = i + 1 < modules_.size() && is_exactly_one_of<ReLU>(*modules_[i + 1]);
        if (relu_next) {
            if (Tensor fused = forward_with_relu(*modules_[i], x); fused.defined()) {
                x = std::move(fused);
                record_fused_relu(*modules_[++i], x);
                continue;
            }
        }
        x = (*modules_[i])(x);
    }
    return x;
}

}  // namespace convkit::nn
