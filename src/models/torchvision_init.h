#pragma once
// torchvision's initialisation of its classification models, shared by models::ResNet and
// models::Vgg: Kaiming normal with fan_out for convolutions (the gradient's variance is what a
// ReLU network must keep) and zero conv biases, ones and zeros for BatchNorm, and for linear
// layers N(0, 0.01) where the model asks for it (VGG; ResNet keeps PyTorch's default for fc).
#include <cmath>

#include "convkit/nn.h"

namespace convkit::models::detail {

enum class LinearInit { PyTorchDefault, Normal001 };

inline void torchvision_initialise(nn::Module& model, LinearInit linear) {
    for (auto& [name, module] : model.named_modules()) {
        if (auto* c = dynamic_cast<nn::Conv*>(module)) {
            Tensor weight = c->weight();
            const double fan_out = static_cast<double>(nn::init::fan_in_and_fan_out(weight).second);
            nn::init::normal_(weight, 0.0, std::sqrt(2.0 / fan_out));
            Tensor bias = c->bias();
            if (bias.defined()) nn::init::constant_(bias, 0.0);
        } else if (auto* l = dynamic_cast<nn::Linear*>(module); l != nullptr && linear == LinearInit::Normal001) {
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

}  // namespace convkit::models::detail
