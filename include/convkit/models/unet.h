#pragma once
// U-Net (Ronneberger, Fischer and Brox, 2015) of configurable depth and width: an encoder of
// double convolutions (3x3 convolution, BatchNorm, ReLU, twice) with 2x2 max pooling between
// them, a bottleneck, and a decoder that doubles the size back at each level — with a 2x2
// stride-2 transposed convolution, or nearest upsampling followed by a 1x1 convolution — and
// concatenates the encoder's map of that size along channels before its double convolution.
// A 1x1 convolution gives the class scores per pixel.
//
// Module names (the state dict): encoders.<level>.<i> (level 0 at full resolution),
// bottleneck.<i>, then ups.<j>[.<i>] and decoders.<j>.<i> in the order they run, j = 0 the
// deepest level; head. A PyTorch twin with nn.ModuleList
// and nn.Sequential of the same layout has the same state dict (tests/python).
#include <cstdint>
#include <memory>

#include "convkit/nn.h"

namespace convkit::models {

enum class UNetDecoder { TransposedConv, Upsample };

struct UNetOptions {
    std::int64_t in_channels = 1;
    std::int64_t num_classes = 2;
    std::int64_t width = 64;  // channels of level 0, doubled at every level down
    int depth = 4;            // poolings; the input's height and width must be multiples of 2^depth
    UNetDecoder decoder = UNetDecoder::TransposedConv;
};

class UNet : public nn::Module {
public:
    explicit UNet(const UNetOptions& options = {});
    // [N, in_channels, H, W] -> [N, num_classes, H, W].
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "UNet"; }
    const UNetOptions& options() const { return options_; }

private:
    UNetOptions options_;
    std::shared_ptr<nn::Sequential> encoders_, ups_, decoders_;  // lists, called one by one
    std::shared_ptr<nn::Sequential> bottleneck_;
    std::shared_ptr<nn::MaxPool2d> pool_;
    std::shared_ptr<nn::Conv2d> head_;
};

// The double convolution of each U-Net level (no convolution bias: BatchNorm supplies it).
std::shared_ptr<nn::Sequential> double_conv(std::int64_t in_channels, std::int64_t out_channels);

}  // namespace convkit::models
