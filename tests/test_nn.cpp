// The Module base, containers, conv and pooling layers, initialisation, state dicts, summary().
#include <gtest/gtest.h>

#include <cmath>
#include <iomanip>
#include <sstream>

#include "convkit/convkit.h"
#include "temp_dir.h"

#include "test_util.h"

namespace convkit {
namespace {
using namespace convkit::testing;

std::shared_ptr<nn::Sequential> small_cnn() {
    return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(1, 4, 3, ConvParams(2).set_padding(1)),
        std::make_shared<nn::MaxPool2d>(2),
        std::make_shared<nn::Conv2d>(4, 6, nn::KernelSize{3, 1}, ConvParams(2), false),
        std::make_shared<nn::AdaptiveAvgPool>(std::vector<std::int64_t>{2, 2}),
        std::make_shared<nn::Flatten>(),
    });
}

Tensor scalar_loss(const Tensor& y) {
    return sum_to_shape(y * y, Shape{});
}

TEST(Module, SequentialNamesParametersAsPyTorchDoes) {
    auto model = small_cnn();
    std::vector<std::string> names;
    for (const auto& [name, p] : model->named_parameters()) names.push_back(name + p.shape().to_string());
    EXPECT_EQ(names, (std::vector<std::string>{"0.weight[4, 1, 3, 3]", "0.bias[4]", "2.weight[6, 4, 3, 1]"}));
    EXPECT_EQ(model->parameter_count(), 4 * 9 + 4 + 6 * 4 * 3);
    for (const Tensor& p : model->parameters()) EXPECT_TRUE(p.requires_grad());
    EXPECT_EQ(model->named_modules().size(), 5u);
    EXPECT_NE(model->to_string().find("(2): Conv2d(4, 6, kernel_size=[3, 1]"), std::string::npos) << model->to_string();
}

TEST(Module, ConvolutionInitialisationFollowsPyTorchBounds) {
    nn::init::manual_seed(7);
    nn::Conv2d conv(8, 16, 3);
    const double bound = 1.0 / std::sqrt(8.0 * 9.0);  // kaiming_uniform(a = sqrt(5)) = 1 / sqrt(fan_in)
    double sum_squares = 0;
    for (double w : conv.weight().to_vector()) {
        EXPECT_LE(std::abs(w), bound);
        sum_squares += w * w;
    }
    // Uniform on [-b, b] has variance b^2 / 3; 1152 draws pin the mean square within a few %.
    EXPECT_NEAR(sum_squares / static_cast<double>(conv.weight().numel()), bound * bound / 3, 0.15 * bound * bound / 3);
    for (double b : conv.bias().to_vector()) EXPECT_LE(std::abs(b), bound);
    // Transposed: the weight is [in, out / groups, k...] and PyTorch takes fan_in from size(1).
    nn::ConvTranspose2d up(8, 4, 2, ConvParams(2).set_stride(2));
    EXPECT_EQ(up.weight().shape(), (Shape{8, 4, 2, 2}));
    for (double w : up.weight().to_vector()) EXPECT_LE(std::abs(w), 1.0 / std::sqrt(16.0));
}

TEST(Module, ManualSeedMakesConstructionReproducible) {
    nn::init::manual_seed(42);
    auto a = small_cnn();
    nn::init::manual_seed(42);
    auto b = small_cnn();
    const auto sa = a->state_dict();
    const auto sb = b->state_dict();
    for (const auto& [name, t] : sa) EXPECT_TRUE(exactly_equal(t, sb.at(name))) << name;
    auto c = small_cnn();
    EXPECT_FALSE(exactly_equal(c->state_dict().at("0.weight"), sa.at("0.weight")));
}

TEST(Module, BackwardReachesEveryParameterAndZeroGradClears) {
    auto model = small_cnn();
    Tensor loss = scalar_loss((*model)(Tensor::uniform(Shape{2, 1, 8, 8}, -1, 1, fresh_seed())));
    EXPECT_EQ(loss.rank(), 0);
    loss.backward();
    for (const auto& [name, p] : model->named_parameters()) {
        ASSERT_TRUE(p.grad().defined()) << name;
        EXPECT_GT(norm(p.grad()), 0) << name;
    }
    model->zero_grad();
    for (const Tensor& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Module, ParameterGradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    auto model = small_cnn();
    model->to(DType::Float64);
    EXPECT_LT(module_gradcheck_error(*model, Tensor::uniform(Shape{2, 1, 6, 6}, -1, 1, rng(), DType::Float64), rng()),
              1e-6);
}

// to(bfloat16/float16) rounds every floating parameter and buffer once (BatchNorm's running
// statistics too; its int64 batch count stays int64), keeps parameters leaves that require grad,
// and the model then runs and trains in that dtype.
TEST(Module, ToSixteenBitConvertsParametersAndFloatingBuffers) {
    for (DType d : {DType::BFloat16, DType::Float16}) {
        SCOPED_TRACE(dtype_name(d));
        auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Conv2d>(1, 4, 3, ConvParams(2).set_padding(1)), std::make_shared<nn::BatchNorm2d>(4),
            std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4 * 4 * 4, 3)});
        const auto before = model->state_dict();
        model->to(d);
        for (const auto& [name, t] : model->state_dict()) {
            SCOPED_TRACE(name);
            const Tensor& original = before.at(name);
            if (!is_floating_point(original.dtype())) {
                EXPECT_EQ(t.dtype(), original.dtype());
                continue;
            }
            EXPECT_EQ(t.dtype(), d);
            EXPECT_TRUE(exactly_equal(t, original.to(d)));
        }
        for (const Tensor& p : model->parameters()) {
            EXPECT_TRUE(p.is_leaf());
            EXPECT_TRUE(p.requires_grad());
        }
        const Tensor y = (*model)(Tensor::uniform(Shape{2, 1, 4, 4}, -1, 1, 7, d));
        EXPECT_EQ(y.dtype(), d);
        sum(y).backward();
        for (const Tensor& p : model->parameters()) EXPECT_EQ(p.grad().dtype(), d);
        // The running statistics were updated (in float32) and stored back in the module's dtype.
        const Tensor running_mean = model->state_dict().at("1.running_mean");
        EXPECT_EQ(running_mean.dtype(), d);
        EXPECT_FALSE(exactly_equal(running_mean, before.at("1.running_mean").to(d)));
    }
}

TEST(Module, StateDictRoundTripGivesIdenticalOutputs) {
    auto a = small_cnn();
    auto b = small_cnn();
    const Tensor x = Tensor::uniform(Shape{1, 1, 8, 8}, -1, 1, fresh_seed());
    EXPECT_FALSE(exactly_equal((*a)(x), (*b)(x)));
    const auto before = b->parameters();  // optimizer-style handles
    b->load_state_dict(a->state_dict());
    EXPECT_TRUE(exactly_equal((*a)(x), (*b)(x)));
    EXPECT_TRUE(exactly_equal(before[0], a->parameters()[0]));  // loaded in place
}

TEST(Module, LoadingAMismatchedStateNamesTheTensorAndChangesNothing) {
    auto model = small_cnn();
    const auto original = model->state_dict().at("0.bias").clone();
    auto state = model->state_dict();
    state["0.bias"] = Tensor::zeros(Shape{4});
    state["2.weight"] = Tensor::zeros(Shape{6, 4, 3, 3});
    try {
        model->load_state_dict(state);
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("'2.weight' has shape [6, 4, 3, 3] in the state but [6, 4, 3, 1]"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(exactly_equal(model->state_dict().at("0.bias"), original));

    auto missing = model->state_dict();
    missing.erase("0.bias");
    missing["extra"] = Tensor::zeros(Shape{1});
    try {
        model->load_state_dict(missing);
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("missing from the state: '0.bias'"), std::string::npos) << e.what();
    }
    missing.erase("extra");
    model->load_state_dict(missing, /*strict=*/false);  // a partial load is allowed when asked for
}

TEST(Module, CheckpointRoundTripGivesIdenticalOutputsAndMismatchesNameTheTensor) {
    TempDir dir;
    const std::string path = dir.path() + "/model.safetensors";
    auto a = small_cnn();
    nn::save(*a, path, {{"epoch", "3"}});
    auto b = small_cnn();
    std::map<std::string, std::string> metadata;
    nn::load(*b, path, true, &metadata);
    EXPECT_EQ(metadata.at("epoch"), "3");
    const Tensor x = Tensor::uniform(Shape{2, 1, 8, 8}, -1, 1, fresh_seed());
    EXPECT_TRUE(exactly_equal((*a)(x), (*b)(x)));

    auto other = std::make_shared<nn::Sequential>(
        std::vector<std::shared_ptr<nn::Module>>{std::make_shared<nn::Conv2d>(1, 5, 3, ConvParams(2).set_padding(1))});
    try {
        nn::load(*other, path);
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(path), std::string::npos) << message;
        EXPECT_NE(message.find("'0.weight' has shape [4, 1, 3, 3] in the state but [5, 1, 3, 3]"), std::string::npos)
            << message;
    }
}

// Steps of Adam on a fixed regression task: the conv net maps x to a fixed target.
void train_steps(nn::Module& model, optim::Optimizer& optimizer, optim::LRScheduler& schedule, int steps) {
    for (int step = 0; step < steps; ++step) {
        const Tensor x = Tensor::uniform(Shape{4, 1, 8, 8}, -1, 1, 1000 + static_cast<std::uint64_t>(step));
        const Tensor target = Tensor::uniform(Shape{4, 24}, -1, 1, 2000 + static_cast<std::uint64_t>(step));
        optimizer.zero_grad();
        mse_loss(model(x), target).backward();
        optimizer.step();
        schedule.step();
    }
}

TEST(Module, ResumingFromATrainingCheckpointContinuesExactly) {
    TempDir dir;
    const std::string path = dir.path() + "/train.safetensors";
    nn::init::manual_seed(11);
    auto model = small_cnn();
    optim::Adam adam(model->parameters(), {.lr = 1e-2});
    optim::StepLR schedule(adam, 2, 0.5);
    train_steps(*model, adam, schedule, 3);
    nn::save_training_checkpoint(path, *model, adam, &schedule, {{"step", "3"}});
    train_steps(*model, adam, schedule, 4);

    nn::init::manual_seed(99);  // different initial weights: the checkpoint must overwrite them
    auto resumed = small_cnn();
    optim::Adam resumed_adam(resumed->parameters(), {.lr = 1e-2});
    optim::StepLR resumed_schedule(resumed_adam, 2, 0.5);
    std::map<std::string, std::string> metadata;
    nn::load_training_checkpoint(path, *resumed, resumed_adam, &resumed_schedule, &metadata);
    EXPECT_EQ(metadata.at("step"), "3");
    train_steps(*resumed, resumed_adam, resumed_schedule, 4);
    for (const auto& [name, t] : model->state_dict())
        EXPECT_TRUE(exactly_equal(t, resumed->state_dict().at(name))) << name;
    EXPECT_EQ(resumed_adam.learning_rate(), adam.learning_rate());
}

TEST(Module, ATrainingCheckpointOfAnotherModelChangesNothing) {
    TempDir dir;
    const std::string path = dir.path() + "/train.safetensors";
    auto model = small_cnn();
    optim::SGD sgd(model->parameters(), {.lr = 0.1, .momentum = 0.9});
    nn::save_training_checkpoint(path, *model, sgd);

    auto other = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(1, 4, 3, ConvParams(2).set_padding(1)), std::make_shared<nn::MaxPool2d>(2),
        std::make_shared<nn::Conv2d>(4, 6, 3)});
    optim::SGD other_sgd(other->parameters(), {.lr = 0.1, .momentum = 0.9});
    const auto before = other->state_dict().at("0.weight").clone();
    EXPECT_THROW(nn::load_training_checkpoint(path, *other, other_sgd), InvalidArgument);
    EXPECT_TRUE(exactly_equal(other->state_dict().at("0.weight"), before));
}

TEST(Module, TrainEvalReachesChildrenAndDtypeConversionKeepsParameters) {
    auto model = small_cnn();
    model->eval();
    for (const auto& [name, m] : model->named_modules()) EXPECT_FALSE(m->is_training()) << name;
    model->train();
    EXPECT_TRUE((*model)[2]->is_training());
    model->to(DType::Float64);
    for (const Tensor& p : model->parameters()) {
        EXPECT_EQ(p.dtype(), DType::Float64);
        EXPECT_TRUE(p.requires_grad());
        EXPECT_TRUE(p.is_leaf());
    }
    EXPECT_EQ((*model)(Tensor::zeros(Shape{1, 1, 8, 8}, DType::Float64)).dtype(), DType::Float64);
}

TEST(Module, SummaryListsEveryLayerWithShapesAndCounts) {
    auto model = small_cnn();
    const std::string text = nn::summary(*model, Shape{3, 1, 8, 8});
    EXPECT_NE(text.find("0 (Conv2d)"), std::string::npos) << text;
    EXPECT_NE(text.find("[3, 4, 8, 8]"), std::string::npos) << text;
    EXPECT_NE(text.find("[3, 4, 4, 4]"), std::string::npos) << text;  // after the max pool
    EXPECT_NE(text.find("[3, 6, 2, 2]"), std::string::npos) << text;
    EXPECT_NE(text.find("[3, 24]"), std::string::npos) << text;
    EXPECT_NE(text.find("Total params: 112"), std::string::npos) << text;
    EXPECT_TRUE(model->is_training());  // restored
}

// FLOPs: 2 x outputs x weights per output channel for convolutions (inputs for transposed ones),
// 2 x outputs x in_features for linear layers; activation memory: every leaf layer's output.
TEST(Module, SummaryCountsFlopsAndActivationMemory) {
    auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(2, 4, 3, ConvParams(2).set_padding(1)),          // [5, 4, 6, 6]
        std::make_shared<nn::ConvTranspose2d>(4, 2, 2, ConvParams(2).set_stride(2)),  // [5, 2, 12, 12]
        std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(2 * 12 * 12, 3)});
    const std::int64_t conv = 2 * (5 * 4 * 6 * 6) * (2 * 3 * 3);
    const std::int64_t transposed = 2 * (5 * 4 * 6 * 6) * (2 * 2 * 2);
    const std::int64_t linear = 2 * (5 * 3) * (2 * 12 * 12);
    EXPECT_EQ(model->flops(Shape{}, Shape{}), 0);  // a container's own: its children count
    const auto& layers = *model;
    EXPECT_EQ(layers[0]->flops(Shape{5, 2, 6, 6}, Shape{5, 4, 6, 6}), conv);
    EXPECT_EQ(layers[1]->flops(Shape{5, 4, 6, 6}, Shape{5, 2, 12, 12}), transposed);
    EXPECT_EQ(layers[4]->flops(Shape{5, 288}, Shape{5, 3}), linear);
    model->to(DType::Float64);
    const std::string text = nn::summary(*model, Shape{5, 2, 6, 6}, DType::Float64);
    std::ostringstream gflops;
    gflops << std::fixed << std::setprecision(3) << static_cast<double>(conv + transposed + linear) / 1e9;
    EXPECT_NE(text.find("Forward GFLOPs: " + gflops.str()), std::string::npos) << text;
    const std::int64_t bytes = 8 * (5 * 4 * 6 * 6 + 3 * 5 * 2 * 12 * 12 + 5 * 3);  // float64; ReLU, Flatten too
    std::ostringstream mib;
    mib << std::fixed << std::setprecision(2) << static_cast<double>(bytes) / (1 << 20);
    EXPECT_NE(text.find("Activation memory: " + mib.str() + " MiB"), std::string::npos) << text;
}

TEST(Module, BadLayerArgumentsNameTheLayer) {
    auto expect_message = [](auto make, const std::string& part) {
        try {
            make();
            FAIL() << "expected InvalidArgument containing " << part;
        } catch (const InvalidArgument& e) {
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        }
    };
    expect_message([] { nn::Conv2d(3, 8, 3, ConvParams(2).set_groups(2)); },
                   "Conv2d: groups 2 must divide in_channels 3");
    expect_message([] { nn::Conv2d(3, 8, nn::KernelSize{3, 3, 3}); }, "Conv2d: kernel size needs 1 or 2 values");
    expect_message([] { nn::Conv1d(3, 8, 3, ConvParams(2)); }, "Conv1d: params.spatial_rank is 2");
    expect_message([] { nn::MaxPool2d(PoolParams(3, 2)); }, "MaxPool2d: params.spatial_rank is 3");
    expect_message([] { nn::Flatten(3)(Tensor::zeros(Shape{2, 3})); }, "flatten: start_dim 3 is out of range");
}

TEST(Module, FlattenMergesTheRequestedDims) {
    const Tensor x = Tensor::zeros(Shape{2, 3, 4, 5});
    EXPECT_EQ(nn::Flatten()(x).shape(), (Shape{2, 60}));
    EXPECT_EQ(nn::Flatten(0)(x).shape(), (Shape{120}));
    EXPECT_EQ(nn::Flatten(1, 2)(x).shape(), (Shape{2, 12, 5}));
    EXPECT_EQ(nn::Flatten(-2)(x).shape(), (Shape{2, 3, 20}));
}

}  // namespace
}  // namespace convkit
