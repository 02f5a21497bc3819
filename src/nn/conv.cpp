#include "convkit/nn/conv.h"

#include <cmath>
#include <sstream>
#include <utility>

#include "convkit/nn/init.h"
#include "convkit/ops/conv.h"
#include "core/check.h"

namespace convkit::nn {

namespace {
std::string layer_name(int spatial_rank, bool transposed) {
    return (transposed ? "ConvTranspose" : "Conv") + std::to_string(spatial_rank) + "d";
}

// The weight shape: [out, in / groups, kernel...], or [in, out / groups, kernel...] transposed.
Shape weight_shape(int spatial_rank, std::int64_t in, std::int64_t out, const KernelSize& kernel,
                   const ConvParams& params, bool transposed) {
    const std::string op = layer_name(spatial_rank, transposed);
    CONVKIT_REQUIRE(params.spatial_rank == spatial_rank, op, "params.spatial_rank is ", params.spatial_rank,
                    " but the layer has ", spatial_rank, " spatial dims");
    CONVKIT_REQUIRE(in >= 1 && out >= 1, op, "channel counts must be positive, got in ", in, ", out ", out);
    CONVKIT_REQUIRE(params.groups >= 1 && in % params.groups == 0 && out % params.groups == 0, op, "groups ",
                    params.groups, " must divide in_channels ", in, " and out_channels ", out);
    const auto& k = kernel.sizes;
    CONVKIT_REQUIRE(k.size() == 1 || static_cast<int>(k.size()) == spatial_rank, op, "kernel size needs 1 or ",
                    spatial_rank, " values, got ", k.size());
    std::vector<std::int64_t> dims{transposed ? in : out, (transposed ? out : in) / params.groups};
    for (int d = 0; d < spatial_rank; ++d) {
        const std::int64_t size = k.size() == 1 ? k[0] : k[static_cast<std::size_t>(d)];
        CONVKIT_REQUIRE(size >= 1, op, "kernel sizes must be positive, got ", size);
        dims.push_back(size);
    }
    return Shape(dims);
}
// [in, out] channels of a layer with this weight.
std::pair<std::int64_t, std::int64_t> channels_of(const Tensor& weight, const ConvParams& params, bool transposed) {
    const std::int64_t first = weight.shape()[0], second = weight.shape()[1] * params.groups;
    return transposed ? std::pair{first, second} : std::pair{second, first};
}

// The values constructor's checks, made before any member is built from the values: `weight`.
const Tensor& checked_values(const Tensor& weight, const Tensor& bias, const ConvParams& params, bool transposed) {
    const std::string op = layer_name(params.spatial_rank, transposed);
    CONVKIT_REQUIRE(weight.defined(), op, "weight is undefined");
    CONVKIT_REQUIRE(weight.rank() == params.spatial_rank + 2, op, "weight must have ", params.spatial_rank + 2,
                    " dims for params.spatial_rank ", params.spatial_rank, ", got shape ", weight.shape().to_string());
    CONVKIT_REQUIRE(params.groups >= 1, op, "params.groups must be positive, got ", params.groups);
    const auto [in, out] = channels_of(weight, params, transposed);
    KernelSize kernel(1);
    kernel.sizes.assign(weight.shape().begin() + 2, weight.shape().end());
    (void)weight_shape(params.spatial_rank, in, out, kernel, params, transposed);  // the other constructor's checks
    if (bias.defined()) {
        CONVKIT_REQUIRE(bias.shape() == Shape{out}, op, "bias must be [", out, "], got ", bias.shape().to_string());
        CONVKIT_REQUIRE(bias.dtype() == weight.dtype() && bias.device() == weight.device(), op, "bias is ",
                        dtype_name(bias.dtype()), " on ", bias.device().to_string(), " but weight ",
                        dtype_name(weight.dtype()), " on ", weight.device().to_string());
    }
    return weight;
}
}  // namespace

Conv::Conv(int spatial_rank, std::int64_t in_channels, std::int64_t out_channels, const KernelSize& kernel,
           const ConvParams& params, bool bias, bool transposed)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      params_(params),
      transposed_(transposed),
      weight_(register_parameter(
          "weight", Tensor::empty(weight_shape(spatial_rank, in_channels, out_channels, kernel, params, transposed)))) {
    // PyTorch's reset_parameters: kaiming_uniform(a = sqrt(5)) for the weight, and the bias
    // uniform in +-1/sqrt(fan_in) with fan_in taken from the weight as stored.
    init::kaiming_uniform_(weight_, std::sqrt(5.0));
    if (bias) {
        bias_ = &register_parameter("bias", Tensor::empty(Shape{out_channels}));
        const double fan_in = static_cast<double>(init::fan_in_and_fan_out(weight_).first);
        const double bound = 1.0 / std::sqrt(fan_in);
        init::uniform_(*bias_, -bound, bound);
    }
}

Conv::Conv(const Tensor& weight, const Tensor& bias, const ConvParams& params, bool transposed)
    : in_channels_(channels_of(checked_values(weight, bias, params, transposed), params, transposed).first),
      out_channels_(channels_of(weight, params, transposed).second),
      params_(params),
      transposed_(transposed),
      weight_(register_parameter("weight", weight.detach().clone())) {
    if (bias.defined()) bias_ = &register_parameter("bias", bias.detach().clone());
}

Tensor Conv::forward(const Tensor& input) {
    return transposed_ ? conv_transpose_forward(input, weight_, bias(), params_)
                       : conv_forward(input, weight_, bias(), params_);
}

Tensor Conv::forward_with(const Tensor& input, const ConvEpilogue& epilogue) {
    return recorded_call(input, [&](const Tensor& x) {
        return transposed_ ? conv_transpose_forward(x, weight_, bias(), params_, epilogue)
                           : conv_forward(x, weight_, bias(), params_, epilogue);
    });
}

std::string Conv::type_name() const {
    return layer_name(params_.spatial_rank, transposed_);
}

std::int64_t Conv::flops(const Shape& input, const Shape& output) const {
    // Each output (forward) or input (transposed) element takes one multiply-add per weight of
    // its group: [C_out, C_in/groups, k...] holds that many per output channel.
    const std::int64_t per_channel = weight_.numel() / weight_.shape()[0];
    return 2 * (transposed_ ? input.numel() : output.numel()) * per_channel;
}

std::string Conv::extra_repr() const {
    std::ostringstream out;
    out << in_channels_ << ", " << out_channels_ << ", kernel_size="
        << Shape(std::vector<std::int64_t>(weight_.shape().begin() + 2, weight_.shape().end())).to_string() << ", "
        << params_.to_string() << (bias_ ? "" : ", bias=false");
    return out.str();
}

}  // namespace convkit::nn
