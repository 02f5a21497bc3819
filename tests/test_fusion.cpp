// Folding a BatchNorm into the convolution before it (nn::fold_batch_norm, convkit/nn/fusion.h)
// and the convolution layer's fused epilogue (Conv::forward_with): the folded layer gives
// bn(conv(x)) in evaluation mode, for every rank, with and without the conv's bias and the
// BatchNorm's affine parameters; what cannot fold is refused, naming why. A Sequential fuses a
// ReLU into the convolution or BatchNorm before it.
#include <gtest/gtest.h>

#include "convkit/convkit.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

struct FoldCase {
    const char* name;
    int rank;
    Shape input;
    std::int64_t out_channels;
    ConvParams params;
};

TEST(FoldBatchNorm, FoldedConvolutionGivesTheBatchNormOfTheConvolution) {
    CONVKIT_SEEDED_RNG(rng);
    const FoldCase cases[] = {
        {"conv1d strided", 1, Shape{2, 3, 17}, 5, ConvParams(1).set_stride(2).set_padding(1)},
        {"conv2d", 2, Shape{2, 4, 7, 6}, 6, ConvParams(2).set_padding(1)},
        {"conv2d groups", 2, Shape{1, 4, 5, 5}, 6, ConvParams(2).set_groups(2)},
        {"conv3d", 3, Shape{1, 2, 4, 4, 3}, 3, ConvParams(3).set_padding(1)},
    };
    for (const FoldCase& c : cases) {
        for (bool conv_bias : {false, true}) {
            for (bool affine : {false, true}) {
                SCOPED_TRACE(std::string(c.name) + (conv_bias ? " conv bias" : "") + (affine ? " affine" : ""));
                nn::init::manual_seed(rng());
                nn::Conv conv(c.rank, c.input[1], c.out_channels, 3, c.params, conv_bias, false);
                nn::BatchNorm bn(c.rank, c.out_channels, {.affine = affine});
                conv.to(DType::Float64);
                bn.to(DType::Float64);
                testing::randomize_batch_norms(bn, rng());
                conv.eval();
                bn.eval();
                const std::shared_ptr<nn::Conv> folded = nn::fold_batch_norm(conv, bn);
                EXPECT_TRUE(folded->bias().defined());
                EXPECT_TRUE(folded->weight().requires_grad() && folded->bias().requires_grad());
                EXPECT_EQ(folded->weight().dtype(), DType::Float64);
                const Tensor x = Tensor::normal(c.input, 0.0, 1.0, rng(), DType::Float64);
                const NoGradGuard no_grad;
                const Tensor expected = bn(conv(x));
                EXPECT_LT(testing::relative_error((*folded)(x), expected), testing::kFloat64Tolerance);
                // With the ReLU and a residual in the folded convolution's epilogue.
                const Tensor residual = Tensor::normal(expected.shape(), 0.0, 1.0, rng(), DType::Float64);
                EXPECT_LT(testing::relative_error(folded->forward_with(x, {residual, true}), relu(expected + residual)),
                          testing::kFloat64Tolerance);
            }
        }
    }
}

// A frozen convolution folds into a frozen one (freeze_backbone() then folding keeps it frozen).
TEST(FoldBatchNorm, FrozenStaysFrozen) {
    nn::Conv2d conv(2, 4, 3);
    for (Tensor parameter : conv.parameters()) parameter.set_requires_grad(false);
    nn::BatchNorm2d bn(4);
    bn.eval();
    const std::shared_ptr<nn::Conv> folded = nn::fold_batch_norm(conv, bn);
    EXPECT_FALSE(folded->weight().requires_grad());
    EXPECT_FALSE(folded->bias().requires_grad());
}

TEST(FoldBatchNorm, WhatCannotFoldIsRefusedNamingWhy) {
    nn::Conv2d conv(2, 4, 3);
    nn::BatchNorm2d bn(4);
    const auto message = [](auto&& call) {
        try {
            call();
        } catch (const InvalidArgument& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const std::string training = message([&] { (void)nn::fold_batch_norm(conv, bn); });
    EXPECT_NE(training.find("training mode"), std::string::npos) << training;
    bn.eval();
    nn::BatchNorm2d wrong_features(5);
    wrong_features.eval();
    const std::string features = message([&] { (void)nn::fold_batch_norm(conv, wrong_features); });
    EXPECT_NE(features.find("5 features"), std::string::npos) << features;
    EXPECT_NE(features.find("4 output channels"), std::string::npos) << features;
    nn::BatchNorm2d untracked(4, {.track_running_stats = false});
    untracked.eval();
    const std::string stats = message([&] { (void)nn::fold_batch_norm(conv, untracked); });
    EXPECT_NE(stats.find("running statistics"), std::string::npos) << stats;
    nn::ConvTranspose2d transposed(4, 4, 3);
    const std::string adjoint = message([&] { (void)nn::fold_batch_norm(transposed, bn); });
    EXPECT_NE(adjoint.find("transposed"), std::string::npos) << adjoint;
}

// The constructor from values copies them, draws no initialisation and checks the shapes.
TEST(FoldBatchNorm, ConvolutionFromValues) {
    const Tensor w = Tensor::uniform(Shape{6, 2, 3, 3}, -1, 1, 7), b = Tensor::uniform(Shape{6}, -1, 1, 8);
    nn::init::manual_seed(11);
    const std::uint64_t first = nn::init::next_seed();
    nn::init::manual_seed(11);
    const nn::Conv conv(w, b, ConvParams(2).set_groups(2), false);
    EXPECT_EQ(nn::init::next_seed(), first) << "the constructor drew a seed";
    EXPECT_TRUE(testing::exactly_equal(conv.weight(), w));
    EXPECT_NE(conv.weight().raw_data(), w.raw_data()) << "a copy";
    EXPECT_TRUE(testing::exactly_equal(conv.bias(), b));
    EXPECT_EQ(conv.extra_repr(), nn::Conv2d(4, 6, 3, ConvParams(2).set_groups(2)).extra_repr());
    EXPECT_THROW(nn::Conv(w, b, ConvParams(2).set_groups(4), false), InvalidArgument);  // 6 % 4
    EXPECT_THROW(nn::Conv(w, Tensor::zeros(Shape{5}), ConvParams(2), false), InvalidArgument);
    EXPECT_THROW(nn::Conv(w, b, ConvParams(1), false), InvalidArgument);
    EXPECT_THROW(nn::Conv(w, b.to(DType::Float64), ConvParams(2).set_groups(2), false), InvalidArgument);
    try {
        nn::Conv(Tensor(), b, ConvParams(2), false);
        ADD_FAILURE() << "an undefined weight was accepted";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("Conv2d"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("weight is undefined"), std::string::npos) << e.what();
    }
}

// A Sequential runs a convolution or a BatchNorm followed by a ReLU as one op (the convolution's
// epilogue, batch_norm_relu): the same outputs and gradients as calling each child in turn, the
// convolution's fused node in the graph, and the ReLUs still listed by trace().
TEST(SequentialFusion, ALayerFollowedByAReluRunsAsOneOp) {
    CONVKIT_SEEDED_RNG(rng);
    nn::init::manual_seed(rng());
    nn::Sequential model(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(2, 4, 3, ConvParams(2).set_padding(1)), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Conv2d>(4, 4, 3, ConvParams(2).set_padding(1), false),
        std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),
        std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(16, 3), std::make_shared<nn::ReLU>()});
    model.to(DType::Float64);
    testing::randomize_batch_norms(model, rng());
    const Tensor x = Tensor::normal(Shape{2, 2, 4, 4}, 0.0, 1.0, rng(), DType::Float64);
    const Tensor dy = Tensor::normal(Shape{2, 3}, 0.0, 1.0, rng(), DType::Float64);
    for (bool training : {true, false}) {
        SCOPED_TRACE(training ? "training" : "evaluation");
        model.train(training);
        const auto gradients = [&] {
            std::vector<Tensor> grads;
            for (const Tensor& p : model.parameters()) grads.push_back(p.grad().clone());
            return grads;
        };
        model.zero_grad();
        Tensor child_by_child = x;
        for (std::size_t i = 0; i < model.size(); ++i) child_by_child = (*model[i])(child_by_child);
        child_by_child.backward(dy);
        const std::vector<Tensor> expected = gradients();
        model.zero_grad();
        const Tensor fused = model(x);
        fused.backward(dy);
        const std::vector<Tensor> got = gradients();
        EXPECT_LT(testing::relative_error(fused, child_by_child), testing::kFloat64Tolerance);
        ASSERT_EQ(got.size(), expected.size());
        for (std::size_t i = 0; i < got.size(); ++i) {
            EXPECT_LT(testing::relative_error(got[i], expected[i]), testing::kFloat64Tolerance) << "parameter " << i;
        }
    }
    nn::Sequential conv_relu(std::vector<std::shared_ptr<nn::Module>>{model[0], model[1]});
    EXPECT_EQ(conv_relu(x).grad_fn_name(), "conv2d") << "one node: the convolution with its ReLU";
    // A subclass that overrides forward() keeps its forward: only the library's own layers fuse.
    struct ScaledConv : nn::Conv2d {
        ScaledConv() : nn::Conv2d(2, 4, 3, ConvParams(2).set_padding(1)) { to(DType::Float64); }
        Tensor forward(const Tensor& input) override { return nn::Conv2d::forward(input) * 2.0; }
    };
    auto scaled = std::make_shared<ScaledConv>();
    nn::Sequential scaled_relu(std::vector<std::shared_ptr<nn::Module>>{scaled, std::make_shared<nn::ReLU>()});
    EXPECT_LT(testing::relative_error(scaled_relu(x), relu((*scaled)(x))), testing::kFloat64Tolerance);
    struct ClampedRelu : nn::ReLU {
        Tensor forward(const Tensor& input) override { return clamp(input, 0.0, 0.5); }
    };
    nn::Sequential conv_clamped(std::vector<std::shared_ptr<nn::Module>>{model[0], std::make_shared<ClampedRelu>()});
    EXPECT_LT(testing::relative_error(conv_clamped(x), clamp((*model[0])(x), 0.0, 0.5)), testing::kFloat64Tolerance);
    std::vector<std::string> traced;
    for (const nn::LayerCall& call : nn::trace(model, Shape{2, 2, 4, 4}, DType::Float64)) {
        if (call.depth == 1) traced.push_back(call.module->type_name());
    }
    EXPECT_EQ(traced, (std::vector<std::string>{"Conv2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d",
                                                "Flatten", "Linear", "ReLU"}));
}

}  // namespace
}  // namespace convkit
