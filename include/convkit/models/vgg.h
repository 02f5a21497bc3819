#pragma once
// VGG with batch normalisation (Simonyan and Zisserman, 2014; torchvision's vgg11_bn, vgg16_bn),
// with torchvision's module names: features.<i> (convolution, BatchNorm, ReLU, max pooling in
// one Sequential), avgpool, classifier.0/.3/.6. A configuration is a list of convolution widths
// with 0 for a 2x2 max pooling, so VGG-style networks of any depth can be built; `hidden` and
// `pool_size` shrink the classifier for small images.
//
//   auto model = models::vgg11_bn({.num_classes = 10});              // torchvision's, 224x224
//   auto small = models::vgg({64, 0, 128, 0, 256, 256, 0}, {.num_classes = 10, .hidden = 256, .pool_size = 1});
#include <cstdint>
#include <memory>
#include <vector>

#include "convkit/nn.h"

namespace convkit::models {

struct VggOptions {
    std::int64_t num_classes = 1000;
    std::int64_t in_channels = 3;
    std::int64_t hidden = 4096;  // width of the classifier's two hidden layers
    std::int64_t pool_size = 7;  // the adaptive average pooling's output, pool_size x pool_size
    double dropout = 0.5;
};

class Vgg : public nn::Module {
public:
    // layers: convolution widths, 0 for a max pooling (torchvision's "M").
    Vgg(const std::vector<std::int64_t>& layers, const VggOptions& options);
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "VGG"; }

private:
    std::shared_ptr<nn::Sequential> features_;
    std::shared_ptr<nn::AdaptiveAvgPool> avgpool_;
    std::shared_ptr<nn::Sequential> classifier_;
};

std::shared_ptr<Vgg> vgg(const std::vector<std::int64_t>& layers, const VggOptions& options = {});
std::shared_ptr<Vgg> vgg11_bn(const VggOptions& options = {});  // torchvision's configuration "A"
std::shared_ptr<Vgg> vgg16_bn(const VggOptions& options = {});  // configuration "D"

}  // namespace convkit::models
