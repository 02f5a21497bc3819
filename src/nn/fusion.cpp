#include "convkit/nn/fusion.h"

#include <cmath>
#include <vector>

#include "core/check.h"

namespace convkit::nn {

namespace {
// `t`'s values in float64 on the host, or `fill` repeated `count` times where t is undefined.
std::vector<double> values_or(const Tensor& t, std::int64_t count, double fill) {
    return t.defined() ? t.to_vector() : std::vector<double>(static_cast<std::size_t>(count), fill);
}
}  // namespace

std::shared_ptr<Conv> fold_batch_norm(const Conv& conv, const BatchNorm& bn) {
    constexpr const char* op = "fold_batch_norm";
    CONVKIT_REQUIRE(!conv.transposed(), op, "the convolution is transposed (", conv.type_name(),
                    "); only a convolution's output channels fold a BatchNorm");
    CONVKIT_REQUIRE(!bn.is_training(), op, bn.type_name(),
                    " is in training mode, which normalises with the batch's statistics; folding uses the running "
                    "ones (call eval() first)");
    CONVKIT_REQUIRE(bn.running_mean().defined() && bn.running_var().defined(), op, bn.type_name(),
                    " keeps no running statistics (track_running_stats = false)");
    const Tensor& weight = conv.weight();
    const std::int64_t channels = weight.shape()[0];
    CONVKIT_REQUIRE(bn.num_features() == channels, op, bn.type_name(), " has ", bn.num_features(),
                    " features but the convolution ", channels, " output channels");

    const std::vector<double> mean = bn.running_mean().to_vector(), var = bn.running_var().to_vector();
    const std::vector<double> gamma = values_or(bn.weight(), channels, 1.0), beta = values_or(bn.bias(), channels, 0.0);
    const std::vector<double> conv_bias = values_or(conv.bias(), channels, 0.0);
    std::vector<double> folded_weight = weight.to_vector();  // [C_out, ...]: each channel's weights contiguous
    std::vector<double> folded_bias(static_cast<std::size_t>(channels));
    const std::size_t per_channel = folded_weight.size() / static_cast<std::size_t>(channels);
    for (std::size_t k = 0; k < static_cast<std::size_t>(channels); ++k) {
        const double scale = gamma[k] / std::sqrt(var[k] + bn.options().eps);
        for (std::size_t i = 0; i < per_channel; ++i) folded_weight[k * per_channel + i] *= scale;
        folded_bias[k] = scale * (conv_bias[k] - mean[k]) + beta[k];
    }
    const auto stored = [&](const Shape& shape, const std::vector<double>& values) {
        return Tensor::from_vector(shape, values).to(weight.dtype()).to(weight.device());
    };
    auto folded = std::make_shared<Conv>(stored(weight.shape(), folded_weight), stored(Shape{channels}, folded_bias),
                                         conv.params(), false);
    folded->train(conv.is_training());
    // Trainable as the convolution was (a frozen backbone stays frozen), as PyTorch's fuse_conv_bn_eval.
    for (Tensor parameter : folded->parameters()) parameter.set_requires_grad(weight.requires_grad());
    return folded;
}

}  // namespace convkit::nn
