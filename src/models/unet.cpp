#include "convkit/models/unet.h"

#include "convkit/ops/shape_ops.h"
#include "core/check.h"

namespace convkit::models {

std::shared_ptr<nn::Sequential> double_conv(std::int64_t in_channels, std::int64_t out_channels) {
    const ConvParams same = ConvParams(2).set_padding(1);
    return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(in_channels, out_channels, 3, same, false),
        std::make_shared<nn::BatchNorm2d>(out_channels), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Conv2d>(out_channels, out_channels, 3, same, false),
        std::make_shared<nn::BatchNorm2d>(out_channels), std::make_shared<nn::ReLU>()});
}

namespace {
// Doubles the size and halves the channels: a learned 2x2 stride-2 transposed convolution (each
// pixel paints its own 2x2 block), or nearest upsampling then a 1x1 convolution (no
// checkerboard pattern, fewer parameters).
std::shared_ptr<nn::Module> up(UNetDecoder decoder, std::int64_t in_channels, std::int64_t out_channels) {
    if (decoder == UNetDecoder::TransposedConv) {
        return std::make_shared<nn::ConvTranspose2d>(in_channels, out_channels, 2, ConvParams(2).set_stride(2));
    }
    return std::make_shared<nn::Sequential>(
        std::vector<std::shared_ptr<nn::Module>>{std::make_shared<nn::Upsample>(std::vector<std::int64_t>{2, 2}),
                                                 std::make_shared<nn::Conv2d>(in_channels, out_channels, 1)});
}
}  // namespace

UNet::UNet(const UNetOptions& options) : options_(options) {
    CONVKIT_REQUIRE(options.in_channels > 0 && options.num_classes > 0 && options.width > 0, "UNet", "in_channels ",
                    options.in_channels, ", num_classes ", options.num_classes, " and width ", options.width,
                    " must be positive");
    CONVKIT_REQUIRE(options.depth >= 1 && options.depth <= 8, "UNet", "depth must be in [1, 8], got ", options.depth);
    encoders_ = register_module("encoders", std::make_shared<nn::Sequential>());
    std::int64_t channels = options.in_channels;
    for (int level = 0; level < options.depth; ++level) {
        encoders_->push_back(double_conv(channels, options.width << level));
        channels = options.width << level;
    }
    pool_ = register_module("pool", std::make_shared<nn::MaxPool2d>(2));
    bottleneck_ = register_module("bottleneck", double_conv(channels, 2 * channels));
    channels *= 2;
    ups_ = register_module("ups", std::make_shared<nn::Sequential>());
    decoders_ = register_module("decoders", std::make_shared<nn::Sequential>());
    // Listed from the deepest level up, the order they run in.
    for (int level = options.depth - 1; level >= 0; --level) {
        const std::int64_t level_channels = options.width << level;
        ups_->push_back(up(options.decoder, channels, level_channels));
        decoders_->push_back(double_conv(2 * level_channels, level_channels));  // after the concatenation
        channels = level_channels;
    }
    head_ = register_module("head", std::make_shared<nn::Conv2d>(channels, options.num_classes, 1));
}

Tensor UNet::forward(const Tensor& input) {
    const std::int64_t multiple = std::int64_t{1} << options_.depth;
    CONVKIT_REQUIRE(input.rank() == 4 && input.shape()[2] % multiple == 0 && input.shape()[3] % multiple == 0, "UNet",
                    "input must be [N, C, H, W] with H and W multiples of 2^depth = ", multiple, ", got ",
                    input.shape().to_string());
    std::vector<Tensor> skips;
    Tensor x = input;
    for (std::size_t level = 0; level < encoders_->size(); ++level) {
        x = (*(*encoders_)[level])(x);
        skips.push_back(x);
        x = (*pool_)(x);
    }
    x = (*bottleneck_)(x);
    for (std::size_t i = 0; i < ups_->size(); ++i) {
        const Tensor upsampled = (*(*ups_)[i])(x);
        x = (*(*decoders_)[i])(concat({upsampled, skips[skips.size() - 1 - i]}, 1));
    }
    return (*head_)(x);
}

}  // namespace convkit::models
