#pragma once
// Convolution layers: Conv1d/2d/3d and ConvTranspose1d/2d/3d. Weight layouts, initialisation and
// state_dict names ("weight", "bias") follow PyTorch.
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "convkit/conv_params.h"
#include "convkit/nn/module.h"
#include "convkit/ops/conv.h"

namespace convkit::nn {

// One kernel size for every spatial dim (3) or one per dim ({3, 5}).
struct KernelSize {
    KernelSize(std::int64_t size) : sizes{size} {}  // NOLINT: implicit by design, as in PyTorch
    KernelSize(std::initializer_list<std::int64_t> per_dim) : sizes(per_dim) {}
    std::vector<std::int64_t> sizes;
};

class Conv : public Module {
public:
    // params.spatial_rank must equal spatial_rank; params.groups must divide both channel counts.
    Conv(int spatial_rank, std::int64_t in_channels, std::int64_t out_channels, const KernelSize& kernel,
         const ConvParams& params, bool bias, bool transposed);
    // A layer with these values (copied; no initialisation drawn): weight [C_out, C_in / groups,
    // kernel...] (transposed: [C_in, C_out / groups, kernel...]), bias [C_out] or undefined.
    Conv(const Tensor& weight, const Tensor& bias, const ConvParams& params, bool transposed);

    Tensor forward(const Tensor& input) override;
    // relu(forward(input) + residual), each part as `epilogue` asks, as one op: fused into the
    // convolution's output pass where the kernel can (cuda.igemm; convkit/ops/conv.h);
    // summary() records it as this layer's call.
    Tensor forward_with(const Tensor& input, const ConvEpilogue& epilogue);
    std::string type_name() const override;
    std::string extra_repr() const override;
    std::int64_t flops(const Shape& input, const Shape& output) const override;

    const Tensor& weight() const { return weight_; }
    const Tensor& bias() const { return bias_ ? *bias_ : no_bias_; }
    const ConvParams& params() const { return params_; }
    bool transposed() const { return transposed_; }

private:
    std::int64_t in_channels_;
    std::int64_t out_channels_;
    ConvParams params_;
    bool transposed_;
    Tensor& weight_;
    Tensor* bias_ = nullptr;
    Tensor no_bias_;
};

#define CONVKIT_CONV_LAYER(Name, rank, is_transposed)                                                            \
    class Name : public Conv {                                                                                  \
    public:                                                                                                     \
        Name(std::int64_t in_channels, std::int64_t out_channels, const KernelSize& kernel,                    \
             const ConvParams& params = ConvParams(rank), bool bias = true)                                     \
            : Conv(rank, in_channels, out_channels, kernel, params, bias, is_transposed) {}                     \
    };
CONVKIT_CONV_LAYER(Conv1d, 1, false)
CONVKIT_CONV_LAYER(Conv2d, 2, false)
CONVKIT_CONV_LAYER(Conv3d, 3, false)
CONVKIT_CONV_LAYER(ConvTranspose1d, 1, true)
CONVKIT_CONV_LAYER(ConvTranspose2d, 2, true)
CONVKIT_CONV_LAYER(ConvTranspose3d, 3, true)
#undef CONVKIT_CONV_LAYER

}  // namespace convkit::nn
