#include "convkit/models/vgg.h"

#include <cmath>

#include "convkit/ops/shape_ops.h"
#include "core/check.h"

namespace convkit::models {

namespace {
// torchvision's initialisation: Kaiming normal (fan_out) for convolutions with zero bias, N(0,
// 0.01) for linear layers, ones and zeros for BatchNorm.
void initialise(nn::Module& model) {
    for (auto& [name, module] : model.named_modules()) {
        if (auto* c = dynamic_cast<nn::Conv*>(module)) {
            Tensor weight = c->weight();
            const double fan_out = static_cast<double>(nn::init::fan_in_and_fan_out(weight).second);
            nn::init::normal_(weight, 0.0, std::sqrt(2.0 / fan_out));
            Tensor bias = c->bias();
            if (bias.defined()) nn::init::constant_(bias, 0.0);
        } else if (auto* l = dynamic_cast<nn::Linear*>(module)) {
            Tensor weight = l->weight(), bias = l->bias();
            nn::init::normal_(weight, 0.0, 0.01);
            if (bias.defined()) nn::init::constant_(bias, 0.0);
        } else if (auto* b = dynamic_cast<nn::BatchNorm*>(module)) {
            Tensor weight = b->weight(), bias = b->bias();
            if (weight.defined()) nn::init::constant_(weight, 1.0);
            if (bias.defined()) nn::init::constant_(bias, 0.0);
        }
    }
}
}  // namespace

Vgg::Vgg(const std::vector<std::int64_t>& layers, const VggOptions& options) {
    CONVKIT_REQUIRE(options.num_classes > 0 && options.in_channels > 0 && options.hidden > 0 && options.pool_size > 0,
                    "VGG", "num_classes ", options.num_classes, ", in_channels ", options.in_channels, ", hidden ",
                    options.hidden, " and pool_size ", options.pool_size, " must be positive");
    features_ = register_module("features", std::make_shared<nn::Sequential>());
    std::int64_t channels = options.in_channels;
    int convolutions = 0;
    for (std::int64_t width : layers) {
        CONVKIT_REQUIRE(width >= 0, "VGG", "a layer width must be positive (0: max pooling), got ", width);
        if (width == 0) {
            features_->push_back(std::make_shared<nn::MaxPool2d>(2));
            continue;
        }
        features_->push_back(std::make_shared<nn::Conv2d>(channels, width, 3, ConvParams(2).set_padding(1)));
        features_->push_back(std::make_shared<nn::BatchNorm2d>(width));
        features_->push_back(std::make_shared<nn::ReLU>());
        channels = width;
        ++convolutions;
    }
    CONVKIT_REQUIRE(convolutions > 0, "VGG", "needs at least one convolution, got ", layers.size(), " layers");
    avgpool_ = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool>(
                                              std::vector<std::int64_t>{options.pool_size, options.pool_size}));
    const std::int64_t flat = channels * options.pool_size * options.pool_size;
    classifier_ =
        register_module("classifier", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                                          std::make_shared<nn::Linear>(flat, options.hidden),
                                          std::make_shared<nn::ReLU>(), std::make_shared<nn::Dropout>(options.dropout),
                                          std::make_shared<nn::Linear>(options.hidden, options.hidden),
                                          std::make_shared<nn::ReLU>(), std::make_shared<nn::Dropout>(options.dropout),
                                          std::make_shared<nn::Linear>(options.hidden, options.num_classes)}));
    initialise(*this);
}

Tensor Vgg::forward(const Tensor& input) {
    return (*classifier_)(flatten((*avgpool_)((*features_)(input)), 1));
}

std::shared_ptr<Vgg> vgg(const std::vector<std::int64_t>& layers, const VggOptions& options) {
    return std::make_shared<Vgg>(layers, options);
}
std::shared_ptr<Vgg> vgg11_bn(const VggOptions& options) {
    return vgg({64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}, options);
}
std::shared_ptr<Vgg> vgg16_bn(const VggOptions& options) {
    return vgg({64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0}, options);
}

}  // namespace convkit::models
