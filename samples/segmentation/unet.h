#pragma once
// U-Net (Ronneberger, Fischer and Brox, 2015), scaled down for small images.
//
// Labelling every pixel needs two things at once: WHAT is here, which takes a wide view (a disk
// and a square agree pixel by pixel in their interiors; only the outline tells them apart), and
// exactly WHERE its edge is, which takes full resolution. The encoder buys the wide view by
// max-pooling: after three 2x2 poolings a 3x3 convolution sees a 32x32 window of the image. But
// pooling throws away position. The decoder brings the resolution back with transposed
// convolutions (learned 2x upsampling), and the skip connections hand it the encoder's feature
// maps of the same size, concatenated along channels, so the fine detail the pooling discarded
// is available again where the edges are drawn.
//
//   image 1xSxS
//   enc1  conv-bn-relu x2 ------------------------------------ skip --> concat -> dec1 -> 1x1 conv -> classes
//    | maxpool                                                              ^ up (transposed conv, x2)
//   enc2  (2w) ----------------------------------- skip --> concat -> dec2 --'
//    | maxpool                                               ^ up
//   enc3  (4w) ------------------- skip --> concat -> dec3 --'
//    | maxpool                              ^ up
//   bottleneck (8w) at S/8 -----------------'
#include <cstdint>
#include <memory>

#include "convkit/nn.h"
#include "convkit/ops/shape_ops.h"

namespace convkit::samples {

// Two 3x3 convolutions, each followed by BatchNorm and ReLU; padding 1 keeps the size, so
// encoder and decoder maps line up without cropping. No conv bias: BatchNorm's shift replaces it.
inline std::shared_ptr<nn::Sequential> double_conv(std::int64_t in_channels, std::int64_t out_channels) {
    const ConvParams same = ConvParams(2).set_padding(1);
    return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(in_channels, out_channels, 3, same, false),
        std::make_shared<nn::BatchNorm2d>(out_channels), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Conv2d>(out_channels, out_channels, 3, same, false),
        std::make_shared<nn::BatchNorm2d>(out_channels), std::make_shared<nn::ReLU>()});
}

class UNet : public nn::Module {
public:
    // width: channels of the first level (doubled at each level down); classes: output maps.
    UNet(std::int64_t in_channels, std::int64_t classes, std::int64_t width)
        : enc1_(register_module("enc1", double_conv(in_channels, width))),
          enc2_(register_module("enc2", double_conv(width, 2 * width))),
          enc3_(register_module("enc3", double_conv(2 * width, 4 * width))),
          pool_(register_module("pool", std::make_shared<nn::MaxPool2d>(2))),
          bottleneck_(register_module("bottleneck", double_conv(4 * width, 8 * width))),
          up3_(register_module("up3", upsample(8 * width, 4 * width))),
          dec3_(register_module("dec3", double_conv(8 * width, 4 * width))),
          up2_(register_module("up2", upsample(4 * width, 2 * width))),
          dec2_(register_module("dec2", double_conv(4 * width, 2 * width))),
          up1_(register_module("up1", upsample(2 * width, width))),
          dec1_(register_module("dec1", double_conv(2 * width, width))),
          head_(register_module("head", std::make_shared<nn::Conv2d>(width, classes, 1))) {}

    // [N, in_channels, S, S] -> class scores [N, classes, S, S]; S a multiple of 8.
    Tensor forward(const Tensor& image) override {
        const Tensor e1 = (*enc1_)(image);           // S
        const Tensor e2 = (*enc2_)((*pool_)(e1));    // S/2
        const Tensor e3 = (*enc3_)((*pool_)(e2));    // S/4
        const Tensor b = (*bottleneck_)((*pool_)(e3));  // S/8: the widest view, the coarsest map
        // Up one level, then join the encoder's map of that size: dim 1 is channels.
        const Tensor d3 = (*dec3_)(concat({(*up3_)(b), e3}, 1));
        const Tensor d2 = (*dec2_)(concat({(*up2_)(d3), e2}, 1));
        const Tensor d1 = (*dec1_)(concat({(*up1_)(d2), e1}, 1));
        return (*head_)(d1);  // a 1x1 convolution: a linear classifier at every pixel
    }
    std::string type_name() const override { return "UNet"; }

private:
    // A 2x2 transposed convolution with stride 2: each input pixel paints its own 2x2 block of
    // the output with learned weights, doubling the size (the learned inverse of 2x2 pooling).
    static std::shared_ptr<nn::ConvTranspose2d> upsample(std::int64_t in_channels, std::int64_t out_channels) {
        return std::make_shared<nn::ConvTranspose2d>(in_channels, out_channels, 2, ConvParams(2).set_stride(2));
    }

    std::shared_ptr<nn::Sequential> enc1_, enc2_, enc3_;
    std::shared_ptr<nn::MaxPool2d> pool_;
    std::shared_ptr<nn::Sequential> bottleneck_;
    std::shared_ptr<nn::ConvTranspose2d> up3_;
    std::shared_ptr<nn::Sequential> dec3_;
    std::shared_ptr<nn::ConvTranspose2d> up2_;
    std::shared_ptr<nn::Sequential> dec2_;
    std::shared_ptr<nn::ConvTranspose2d> up1_;
    std::shared_ptr<nn::Sequential> dec1_;
    std::shared_ptr<nn::Conv2d> head_;
};

}  // namespace convkit::samples
