// BatchNorm, Dropout, activations and Upsample layers, and gradient checks of composite
// modules: a conv-BN-ReLU-pool block, a residual block and a U-Net-style skip concatenation.
#include <gtest/gtest.h>

#include "convkit/convkit.h"
#include "test_util.h"

namespace convkit {
namespace {
using namespace convkit::testing;

class ConvBnReluPool : public nn::Module {
public:
    ConvBnReluPool(std::int64_t in, std::int64_t out)
        : conv_(register_module("conv", std::make_shared<nn::Conv2d>(in, out, 3, ConvParams(2).set_padding(1)))),
          bn_(register_module("bn", std::make_shared<nn::BatchNorm2d>(out))),
          pool_(register_module("pool", std::make_shared<nn::MaxPool2d>(2))) {}
    Tensor forward(const Tensor& x) override { return (*pool_)(relu((*bn_)((*conv_)(x)))); }
    std::string type_name() const override { return "ConvBnReluPool"; }

private:
    std::shared_ptr<nn::Conv2d> conv_;
    std::shared_ptr<nn::BatchNorm2d> bn_;
    std::shared_ptr<nn::MaxPool2d> pool_;
};

// y = relu(x + conv(relu(bn(conv(x))))): the block of a ResNet.
class ResidualBlock : public nn::Module {
public:
    explicit ResidualBlock(std::int64_t channels)
        : conv1_(register_module("conv1", std::make_shared<nn::Conv2d>(channels, channels, 3,
                                                                         ConvParams(2).set_padding(1), false))),
          bn1_(register_module("bn1", std::make_shared<nn::BatchNorm2d>(channels))),
          conv2_(register_module("conv2", std::make_shared<nn::Conv2d>(channels, channels, 3,
                                                                         ConvParams(2).set_padding(1)))) {}
    Tensor forward(const Tensor& x) override { return relu(x + (*conv2_)(relu((*bn1_)((*conv1_)(x))))); }
    std::string type_name() const override { return "ResidualBlock"; }

private:
    std::shared_ptr<nn::Conv2d> conv1_;
    std::shared_ptr<nn::BatchNorm2d> bn1_;
    std::shared_ptr<nn::Conv2d> conv2_;
};

// One U-Net level: encode, pool, decode with a transposed convolution, concatenate the skip.
class TinyUNet : public nn::Module {
public:
    TinyUNet()
        : encode_(register_module("encode", std::make_shared<nn::Conv2d>(1, 2, 3, ConvParams(2).set_padding(1)))),
          down_(register_module("down", std::make_shared<nn::MaxPool2d>(2))),
          bottleneck_(register_module("bottleneck", std::make_shared<nn::Conv2d>(2, 3, 1))),
          up_(register_module("up", std::make_shared<nn::ConvTranspose2d>(3, 2, 2, ConvParams(2).set_stride(2)))),
          head_(register_module("head", std::make_shared<nn::Conv2d>(4, 2, 1))) {}
    Tensor forward(const Tensor& x) override {
        const Tensor skip = tanh((*encode_)(x));
        const Tensor deep = tanh((*bottleneck_)((*down_)(skip)));
        return (*head_)(concat({skip, (*up_)(deep)}, 1));
    }
    std::string type_name() const override { return "TinyUNet"; }

private:
    std::shared_ptr<nn::Conv2d> encode_;
    std::shared_ptr<nn::MaxPool2d> down_;
    std::shared_ptr<nn::Conv2d> bottleneck_;
    std::shared_ptr<nn::ConvTranspose2d> up_;
    std::shared_ptr<nn::Conv2d> head_;
};

Tensor random64(const Shape& shape, std::uint64_t seed) { return Tensor::uniform(shape, -1, 1, seed, DType::Float64); }

TEST(CompositeModules, ConvBnReluPoolBlockGradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    ConvBnReluPool block(2, 3);
    block.to(DType::Float64);
    EXPECT_LT(module_gradcheck_error(block, random64(Shape{2, 2, 6, 6}, rng()), rng()), 1e-6);
    const auto names = block.state_dict();
    EXPECT_TRUE(names.count("bn.running_mean") && names.count("bn.num_batches_tracked") && names.count("conv.bias"));
}

TEST(CompositeModules, ResidualBlockGradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    ResidualBlock block(2);
    block.to(DType::Float64);
    EXPECT_LT(module_gradcheck_error(block, random64(Shape{2, 2, 5, 5}, rng()), rng()), 1e-6);
}

TEST(CompositeModules, UNetSkipConcatenationGradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    TinyUNet net;
    net.to(DType::Float64);
    EXPECT_EQ(net(random64(Shape{1, 1, 6, 6}, rng())).shape(), (Shape{1, 2, 6, 6}));
    EXPECT_LT(module_gradcheck_error(net, random64(Shape{2, 1, 6, 6}, rng()), rng()), 1e-6);
}

TEST(BatchNormLayer, TracksRunningStatisticsInTrainingAndUsesThemInEval) {
    nn::BatchNorm2d bn(2, {.momentum = 0.5});
    bn.to(DType::Float64);
    // Channel 0 holds 1..4, channel 1 holds 10 everywhere: means 2.5 and 10, unbiased vars 5/3 and 0.
    const Tensor x = Tensor::from_values(Shape{1, 2, 2, 2}, {1, 2, 3, 4, 10, 10, 10, 10}, DType::Float64);
    bn(x);
    EXPECT_EQ(bn.running_mean().to_vector(), (std::vector<double>{1.25, 5}));
    EXPECT_NEAR(bn.running_var().item(0), 0.5 + 0.5 * 5.0 / 3.0, 1e-15);
    EXPECT_EQ(bn.running_var().item(1), 0.5);
    EXPECT_EQ(bn.state_dict().at("num_batches_tracked").item(0), 1.0);
    bn.eval();
    const Tensor y = bn(x);  // (x - running_mean) / sqrt(running_var + eps)
    EXPECT_NEAR(y.item(0), (1 - 1.25) / std::sqrt(0.5 + 0.5 * 5.0 / 3.0 + 1e-5), 1e-12);
    EXPECT_EQ(bn.state_dict().at("num_batches_tracked").item(0), 1.0);  // eval does not count
}

TEST(BatchNormLayer, MomentumNoneIsACumulativeAverageThatSurvivesALoad) {
    nn::BatchNorm1d bn(1, {.momentum = std::nullopt});
    bn.to(DType::Float64);
    for (double v : {2.0, 4.0}) bn(Tensor::from_values(Shape{2, 1}, {v - 1, v + 1}, DType::Float64));
    EXPECT_DOUBLE_EQ(bn.running_mean().item(0), 3.0);  // the mean of the batch means 2 and 4
    nn::BatchNorm1d restored(1, {.momentum = std::nullopt});
    restored.to(DType::Float64);
    restored.load_state_dict(bn.state_dict());
    restored(Tensor::from_values(Shape{2, 1}, {8, 10}, DType::Float64));  // third batch: weight 1/3
    EXPECT_DOUBLE_EQ(restored.running_mean().item(0), 3.0 + (9.0 - 3.0) / 3.0);
}

TEST(BatchNormLayer, RejectsInputOfTheWrongRank) {
    nn::BatchNorm2d bn(3);
    try {
        bn(Tensor::zeros(Shape{2, 3, 4}));
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("BatchNorm2d: expects [N, C, H, W] input, got shape [2, 3, 4]"),
                  std::string::npos)
            << e.what();
    }
    nn::BatchNorm2d no_stats(3, {.affine = false, .track_running_stats = false});
    EXPECT_TRUE(no_stats.state_dict().empty());
}

TEST(DropoutLayer, DropsInTrainingOnlyWithFreshMasksPerCall) {
    nn::Dropout drop(0.5);
    const Tensor x = Tensor::full(Shape{1000}, 1.0);
    const auto a = drop(x).to_vector();
    const auto b = drop(x).to_vector();
    int zeros = 0;
    for (double v : a) {
        EXPECT_TRUE(v == 0.0 || v == 2.0);
        zeros += v == 0.0;
    }
    EXPECT_GT(zeros, 400);
    EXPECT_LT(zeros, 600);
    EXPECT_NE(a, b);
    drop.eval();
    EXPECT_TRUE(exactly_equal(drop(x), x));
    EXPECT_THROW(nn::Dropout(1.5), InvalidArgument);
}

TEST(ActivationLayers, ApplyTheirFunctions) {
    const Tensor x = Tensor::from_values(Shape{3}, {-2, 0.5, 3}, DType::Float64);
    EXPECT_EQ(nn::ReLU()(x).to_vector(), (std::vector<double>{0, 0.5, 3}));
    EXPECT_EQ(nn::LeakyReLU(0.1)(x).item(0), -0.2);
    EXPECT_NEAR(nn::Sigmoid()(x).item(1), 1 / (1 + std::exp(-0.5)), 1e-15);
    EXPECT_NEAR(nn::Tanh()(x).item(2), std::tanh(3.0), 1e-15);
    EXPECT_NEAR(nn::GELU()(x).item(2), 3 * 0.5 * (1 + std::erf(3 / std::sqrt(2.0))), 1e-15);
    EXPECT_EQ(nn::Upsample({2})(Tensor::zeros(Shape{1, 1, 3})).shape(), (Shape{1, 1, 6}));
}

}  // namespace
}  // namespace convkit

namespace convkit {
namespace {

// The LibTorch-style loss objects give exactly their functions' results, options included.
TEST(LossModules, EqualTheirFunctions) {
    const Tensor logits = Tensor::normal(Shape{6, 4}, 0.0, 1.0, 11, DType::Float64);
    const Tensor targets = Tensor::from_vector(Shape{6}, std::vector<std::int64_t>{0, 3, 1, -100, 2, 3});
    const nn::CrossEntropyLoss criterion({.label_smoothing = 0.2, .reduction = Reduction::Sum});
    EXPECT_EQ(criterion(logits, targets).item(0), cross_entropy(logits, targets, 0.2, Reduction::Sum).item(0));
    EXPECT_EQ(nn::CrossEntropyLoss()(logits, targets).item(0), cross_entropy(logits, targets).item(0));
    const Tensor other = Tensor::normal(Shape{6, 4}, 0.0, 1.0, 12, DType::Float64);
    EXPECT_EQ(nn::MSELoss(Reduction::Sum)(logits, other).item(0), mse_loss(logits, other, Reduction::Sum).item(0));
    const Tensor probabilities = Tensor::uniform(Shape{6, 4}, 0.0, 1.0, 13, DType::Float64);
    const Tensor pos_weight = Tensor::full(Shape{4}, 2.0, DType::Float64);
    EXPECT_EQ(nn::BCEWithLogitsLoss({.pos_weight = pos_weight})(logits, probabilities).item(0),
              binary_cross_entropy_with_logits(logits, probabilities, Reduction::Mean, pos_weight).item(0));
}

TEST(AdaptivePoolLayers, PyTorchNamesCheckTheirRank) {
    nn::AdaptiveAvgPool2d pool(3);
    EXPECT_EQ(pool.type_name(), "AdaptiveAvgPool2d");
    EXPECT_EQ(pool(Tensor::zeros(Shape{2, 5, 7, 9})).shape(), (Shape{2, 5, 3, 3}));
    EXPECT_EQ(nn::AdaptiveAvgPool1d(4)(Tensor::zeros(Shape{1, 2, 10})).shape(), (Shape{1, 2, 4}));
    EXPECT_EQ(nn::AdaptiveAvgPool3d({1, 2, 3})(Tensor::zeros(Shape{1, 2, 4, 4, 4})).shape(), (Shape{1, 2, 1, 2, 3}));
    try {
        nn::AdaptiveAvgPool2d({1, 2, 3});
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("AdaptiveAvgPool2d: output_size needs 2 values, got 3"), std::string::npos)
            << e.what();
    }
}

}  // namespace
}  // namespace convkit
