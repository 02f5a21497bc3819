#include "common/fashion_mnist_model.h"

namespace convkit::samples {

std::shared_ptr<nn::Sequential> make_fashion_mnist_model(std::int64_t width, double dropout) {
    const ConvParams same = ConvParams(2).set_padding(1);
    // Conv -> BN -> ReLU -> MaxPool: each stage halves the image and doubles the features; a
    // convolution before BatchNorm needs no bias (BN's shift replaces it).
    auto stage = [&](std::int64_t in, std::int64_t out) {
        return std::vector<std::shared_ptr<nn::Module>>{std::make_shared<nn::Conv2d>(in, out, 3, same, false),
                                                        std::make_shared<nn::BatchNorm2d>(out),
                                                        std::make_shared<nn::ReLU>(),
                                                        std::make_shared<nn::MaxPool2d>(2)};
    };
    auto model = std::make_shared<nn::Sequential>();
    for (auto& m : stage(1, width)) model->push_back(m);
    for (auto& m : stage(width, 2 * width)) model->push_back(m);
    model->push_back(std::make_shared<nn::Flatten>());
    model->push_back(std::make_shared<nn::Linear>(2 * width * 7 * 7, 128));
    model->push_back(std::make_shared<nn::ReLU>());
    model->push_back(std::make_shared<nn::Dropout>(dropout));
    model->push_back(std::make_shared<nn::Linear>(128, 10));
    return model;
}

}  // namespace convkit::samples
