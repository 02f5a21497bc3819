#pragma once
// Folding for inference: a BatchNorm in evaluation mode is an affine map per channel, so after a
// convolution it folds into that convolution's weight and bias, and the pair costs one
// convolution (whose epilogue can then carry the ReLU and a residual: Conv::forward_with).
//
//   model->eval();
//   auto folded = nn::fold_batch_norm(*conv, *bn);   // folded(x) == bn(conv(x))
//
// As PyTorch's torch.nn.utils.fusion.fuse_conv_bn_eval. The result is for inference: training it
// trains a convolution with a bias, not the pair.
#include <memory>

#include "convkit/nn/batch_norm.h"
#include "convkit/nn/conv.h"

namespace convkit::nn {

// The convolution computing bn(conv(x)) with bn's running statistics: per output channel k,
// s = weight_bn[k] / sqrt(running_var[k] + eps), w'[k] = s * w[k], b'[k] = s * (b[k] - running_mean[k])
// + bias_bn[k] (b = 0 without a conv bias; weight_bn = 1 and bias_bn = 0 without affine),
// computed in float64 and stored in the convolution's dtype, on its device. InvalidArgument when
// bn is in training mode or keeps no running statistics, when its features are not conv's output
// channels, or when conv is transposed.
std::shared_ptr<Conv> fold_batch_norm(const Conv& conv, const BatchNorm& bn);

// Passes its input on (PyTorch's nn.Identity): what a folded BatchNorm leaves in its place.
class Identity : public Module {
public:
    Tensor forward(const Tensor& input) override { return input; }
    std::string type_name() const override { return "Identity"; }
};

}  // namespace convkit::nn
