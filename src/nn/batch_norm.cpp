#include "convkit/nn/batch_norm.h"

#include <sstream>

#include "convkit/autograd.h"
#include "convkit/ops/norm.h"
#include "core/check.h"
#include "cuda/graph_capture.h"

namespace convkit::nn {

BatchNorm::BatchNorm(int spatial_rank, std::int64_t num_features, const BatchNormOptions& options)
    : spatial_rank_(spatial_rank), num_features_(num_features), options_(options) {
    const std::string layer = type_name();
    CONVKIT_REQUIRE(num_features >= 1, layer, "num_features must be positive, got ", num_features);
    CONVKIT_REQUIRE(options.eps > 0, layer, "eps must be positive, got ", options.eps);
    CONVKIT_REQUIRE(!options.momentum || (*options.momentum >= 0 && *options.momentum <= 1), layer,
                    "momentum must be in [0, 1], got ", options.momentum.value_or(0));
    if (options.affine) {
        weight_ = &register_parameter("weight", Tensor::full(Shape{num_features}, 1.0));
        bias_ = &register_parameter("bias", Tensor::zeros(Shape{num_features}));
    }
    if (options.track_running_stats) {
        running_mean_ = &register_buffer("running_mean", Tensor::zeros(Shape{num_features}));
        running_var_ = &register_buffer("running_var", Tensor::full(Shape{num_features}, 1.0));
        num_batches_tracked_ = &register_buffer("num_batches_tracked", Tensor::zeros(Shape{}, DType::Int64));
    }
}

std::int64_t BatchNorm::count_batch() {
    if (batches_tracked_ < 0) {
        batches_tracked_ = static_cast<std::int64_t>(num_batches_tracked_->to(Device::host()).item(0));
    }
    ++batches_tracked_;
    NoGradGuard no_grad;
    num_batches_tracked_->fill_(static_cast<double>(batches_tracked_));
    return batches_tracked_;
}

Tensor BatchNorm::forward(const Tensor& input) { return normalize(input, false); }

Tensor BatchNorm::forward_relu(const Tensor& input) {
    return recorded_call(input, [this](const Tensor& x) { return normalize(x, true); });
}

Tensor BatchNorm::normalize(const Tensor& input, bool relu) {
    const std::string layer = type_name();
    CONVKIT_REQUIRE(input.defined(), layer, "the input is undefined");
    const bool rank_ok = spatial_rank_ == 1 ? (input.rank() == 2 || input.rank() == 3) : input.rank() == spatial_rank_ + 2;
    CONVKIT_REQUIRE(rank_ok, layer, "expects ", spatial_rank_ == 1 ? "[N, C] or [N, C, L]" : spatial_rank_ == 2
                                                                        ? "[N, C, H, W]"
                                                                        : "[N, C, D, H, W]",
                    " input, got shape ", input.shape().to_string());
    double momentum = options_.momentum.value_or(0.0);
    detail::GraphCapture* capture =
        input.device().is_cuda() ? detail::graph_capture_underway(input.device().index) : nullptr;
    if (capture != nullptr && is_training() && num_batches_tracked_ != nullptr) {
        // The count is a host value: a replay's fill would write the capture's. It is counted by
        // a hook before each replay instead; the momentum 1/count of momentum=None would be fixed.
        if (!options_.momentum) {
            detail::refuse_in_graph_capture(input.device().index, layer + " with momentum=None",
                                            "its momentum 1 / num_batches_tracked changes at every step");
        }
        if (batches_tracked_ < 0) {
            detail::refuse_in_graph_capture(input.device().index, layer,
                                            "num_batches_tracked is not counted yet; run an eager step first");
        }
        capture->before_each_replay([this] { count_batch(); });
    } else if (is_training() && num_batches_tracked_ != nullptr) {
        const std::int64_t batches = count_batch();
        if (!options_.momentum) momentum = 1.0 / static_cast<double>(batches);
    }
    Tensor none;
    Tensor& running_mean = running_mean_ ? *running_mean_ : none;
    Tensor& running_var = running_var_ ? *running_var_ : none;
    const auto op = relu ? batch_norm_relu : batch_norm;
    return op(input, weight(), bias(), running_mean, running_var, is_training(), momentum, options_.eps);
}

std::string BatchNorm::extra_repr() const {
    std::ostringstream out;
    out << num_features_ << ", eps=" << options_.eps << ", momentum=";
    if (options_.momentum) {
        out << *options_.momentum;
    } else {
        out << "None";
    }
    out << ", affine=" << (options_.affine ? "True" : "False")
        << ", track_running_stats=" << (options_.track_running_stats ? "True" : "False");
    return out.str();
}

}  // namespace convkit::nn
