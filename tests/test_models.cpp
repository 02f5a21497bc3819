// The model zoo (docs/models.md): torchvision's parameter counts and state-dict names, output
// shapes, the blocks' gradients against central differences, transfer-learning helpers, and
// strict loading that names what does not fit and changes nothing. The values against PyTorch
// and torchvision are compared by tests/python/test_torchvision_models.py.
#include <set>

#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

struct Expected {
    const char* name;
    std::shared_ptr<nn::Module> (*make)();
    std::int64_t parameters;  // torchvision 0.14's count with 1000 classes
    std::size_t state_entries;
};

const Expected kTorchvision[] = {
    {"resnet18", [] { return std::shared_ptr<nn::Module>(models::resnet18()); }, 11689512, 122},
    {"resnet34", [] { return std::shared_ptr<nn::Module>(models::resnet34()); }, 21797672, 218},
    {"resnet50", [] { return std::shared_ptr<nn::Module>(models::resnet50()); }, 25557032, 320},
    {"vgg11_bn", [] { return std::shared_ptr<nn::Module>(models::vgg11_bn()); }, 132868840, 62},
    {"vgg16_bn", [] { return std::shared_ptr<nn::Module>(models::vgg16_bn()); }, 138365992, 97},
};

TEST(Models, ParameterCountsAndStateDictSizesAreTorchvisions) {
    for (const Expected& e : kTorchvision) {
        SCOPED_TRACE(e.name);
        const auto model = e.make();
        EXPECT_EQ(model->parameter_count(), e.parameters);
        EXPECT_EQ(model->state_dict().size(), e.state_entries);
    }
}

TEST(Models, StateDictNamesFollowTorchvision) {
    const nn::StateDict resnet = models::resnet50()->state_dict();
    for (const char* key : {"conv1.weight", "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.conv3.weight",
                            "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias", "layer2.0.conv2.weight",
                            "layer4.2.bn3.weight", "fc.weight", "fc.bias"}) {
        EXPECT_EQ(resnet.count(key), 1u) << key;
    }
    EXPECT_EQ(resnet.at("layer2.0.conv2.weight").shape(), (Shape{128, 128, 3, 3}));  // v1.5: stride in the 3x3
    EXPECT_EQ(resnet.at("layer2.0.downsample.0.weight").shape(), (Shape{512, 256, 1, 1}));
    EXPECT_EQ(resnet.at("bn1.num_batches_tracked").dtype(), DType::Int64);
    EXPECT_EQ(models::resnet18()->state_dict().count("layer1.0.downsample.0.weight"), 0u);  // no projection needed
    const nn::StateDict vgg = models::vgg11_bn()->state_dict();
    for (const char* key : {"features.0.weight", "features.0.bias", "features.1.running_mean", "features.4.weight",
                            "classifier.0.weight", "classifier.3.bias", "classifier.6.weight"}) {
        EXPECT_EQ(vgg.count(key), 1u) << key;
    }
    EXPECT_EQ(vgg.at("classifier.0.weight").shape(), (Shape{4096, 512 * 7 * 7}));
}

TEST(Models, OutputShapes) {
    NoGradGuard no_grad;
    auto resnet = models::resnet18({.num_classes = 7});
    resnet->eval();
    EXPECT_EQ((*resnet)(Tensor::zeros(Shape{2, 3, 32, 32})).shape(), (Shape{2, 7}));
    EXPECT_EQ(resnet->features(Tensor::zeros(Shape{2, 3, 40, 48})).shape(), (Shape{2, 512}));
    auto gray = models::resnet50({.num_classes = 3, .in_channels = 1});
    gray->eval();
    EXPECT_EQ((*gray)(Tensor::zeros(Shape{1, 1, 32, 32})).shape(), (Shape{1, 3}));
    auto vgg = models::vgg({8, 0, 16, 0}, {.num_classes = 5, .hidden = 12, .pool_size = 2});
    vgg->eval();
    EXPECT_EQ((*vgg)(Tensor::zeros(Shape{3, 3, 16, 16})).shape(), (Shape{3, 5}));
    for (auto decoder : {models::UNetDecoder::TransposedConv, models::UNetDecoder::Upsample}) {
        auto unet = std::make_shared<models::UNet>(
            models::UNetOptions{.in_channels = 2, .num_classes = 4, .width = 4, .depth = 3, .decoder = decoder});
        unet->eval();
        EXPECT_EQ((*unet)(Tensor::zeros(Shape{2, 2, 16, 24})).shape(), (Shape{2, 4, 16, 24}));
    }
}

TEST(Models, UNetLayoutAndSizeErrors) {
    models::UNet unet({.in_channels = 1, .num_classes = 2, .width = 4, .depth = 2});
    const nn::StateDict state = unet.state_dict();
    EXPECT_EQ(state.at("encoders.0.0.weight").shape(), (Shape{4, 1, 3, 3}));
    EXPECT_EQ(state.at("encoders.1.3.weight").shape(), (Shape{8, 8, 3, 3}));
    EXPECT_EQ(state.at("bottleneck.0.weight").shape(), (Shape{16, 8, 3, 3}));
    EXPECT_EQ(state.at("ups.0.weight").shape(), (Shape{16, 8, 2, 2}));         // deepest first
    EXPECT_EQ(state.at("decoders.0.0.weight").shape(), (Shape{8, 16, 3, 3}));  // after the concatenation
    EXPECT_EQ(state.at("ups.1.weight").shape(), (Shape{8, 4, 2, 2}));
    EXPECT_EQ(state.at("head.weight").shape(), (Shape{2, 4, 1, 1}));
    try {
        (void)unet(Tensor::zeros(Shape{1, 1, 10, 12}));
        FAIL() << "expected an error";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("multiples of 2^depth = 4"), std::string::npos) << e.what();
    }
    EXPECT_THROW(models::UNet({.depth = 0}), InvalidArgument);
    EXPECT_THROW(models::vgg({0, 0}), InvalidArgument);
    EXPECT_THROW(models::resnet18({.num_classes = 0}), InvalidArgument);
}

// The residual blocks and the U-Net's skips are where a wiring mistake would hide: their
// gradients against central differences in float64 (module_gradcheck_error leaves out the rare
// entries whose step crossed a ReLU's kink). The weights come from this test's seed, whatever
// tests ran before it in the process, so a failure replays.
TEST(Models, BlockGradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    nn::init::manual_seed(rng());
    const Tensor x = Tensor::normal(Shape{2, 8, 6, 6}, 0.0, 1.0, rng(), DType::Float64);
    models::BasicBlock basic(8, 8, 1);
    basic.to(DType::Float64);
    EXPECT_LT(testing::module_gradcheck_error(basic, x, rng()), 1e-6);
    models::BasicBlock strided(8, 16, 2);
    strided.to(DType::Float64);
    EXPECT_LT(testing::module_gradcheck_error(strided, x, rng()), 1e-6);
    models::Bottleneck bottleneck(8, 4, 2);
    bottleneck.to(DType::Float64);
    EXPECT_LT(testing::module_gradcheck_error(bottleneck, x, rng()), 1e-6);
    models::UNet unet(
        {.in_channels = 2, .num_classes = 3, .width = 2, .depth = 1, .decoder = models::UNetDecoder::Upsample});
    unet.to(DType::Float64);
    EXPECT_LT(testing::module_gradcheck_error(unet, Tensor::normal(Shape{1, 2, 4, 4}, 0.0, 1.0, rng(), DType::Float64),
                                              rng()),
              1e-6);
}

// Folded for inference, the ResNets give the same outputs (float64), with the BatchNorms gone
// from the state dict and biases on the convolutions in their place; the blocks too.
TEST(Models, FoldedBatchNormsGiveTheSameOutputs) {
    CONVKIT_SEEDED_RNG(rng);
    nn::init::manual_seed(rng());
    auto model = models::resnet18({.num_classes = 10});
    model->to(DType::Float64);
    testing::randomize_batch_norms(*model, rng());
    EXPECT_THROW(model->fold_batch_norms(), InvalidArgument) << "training mode";
    model->eval();
    const Tensor x = Tensor::normal(Shape{2, 3, 32, 32}, 0.0, 1.0, rng(), DType::Float64);
    const NoGradGuard no_grad;
    const Tensor expected = (*model)(x);
    model->fold_batch_norms();
    EXPECT_LT(testing::relative_error((*model)(x), expected), testing::kFloat64Tolerance);
    const nn::StateDict state = model->state_dict();
    for (const char* gone :
         {"bn1.weight", "bn1.running_mean", "layer1.0.bn2.bias", "layer2.0.downsample.1.running_var"}) {
        EXPECT_EQ(state.count(gone), 0U) << gone;
    }
    for (const char* added : {"conv1.bias", "layer1.0.conv2.bias", "layer2.0.downsample.0.bias"}) {
        EXPECT_EQ(state.count(added), 1U) << added;
    }
    model->fold_batch_norms();  // a second time: nothing left to fold
    EXPECT_LT(testing::relative_error((*model)(x), expected), testing::kFloat64Tolerance);

    models::Bottleneck bottleneck(8, 4, 2);
    bottleneck.to(DType::Float64);
    testing::randomize_batch_norms(bottleneck, rng());
    bottleneck.eval();
    const Tensor y = Tensor::normal(Shape{2, 8, 7, 7}, 0.0, 1.0, rng(), DType::Float64);
    const Tensor bottleneck_expected = bottleneck(y);
    bottleneck.fold_batch_norms();
    EXPECT_LT(testing::relative_error(bottleneck(y), bottleneck_expected), testing::kFloat64Tolerance);
    EXPECT_THROW(bottleneck.last_norm(), InvalidArgument);

    // All or nothing per block: a BatchNorm that refuses (back in training mode) leaves the block
    // unfolded, its first BatchNorm included.
    models::BasicBlock block(8, 8, 1);
    block.eval();
    block.last_norm().train();
    EXPECT_THROW(block.fold_batch_norms(), InvalidArgument);
    EXPECT_EQ(block.state_dict().count("bn1.running_mean"), 1U);
    EXPECT_EQ(block.state_dict().count("conv1.bias"), 0U);
    EXPECT_NO_THROW(block.last_norm());
}

TEST(Models, TransferLearningHelpers) {
    auto model = models::resnet18({.num_classes = 1000});
    model->reset_classifier(5);
    EXPECT_EQ(model->fc().weight().shape(), (Shape{5, 512}));
    EXPECT_EQ(model->state_dict().at("fc.weight").shape(), (Shape{5, 512}));  // the new fc, under its old name
    model->freeze_backbone();
    std::set<std::string> trainable;
    for (const auto& [name, parameter] : model->named_parameters()) {
        if (parameter.requires_grad()) trainable.insert(name);
    }
    EXPECT_EQ(trainable, (std::set<std::string>{"fc.weight", "fc.bias"}));
    EXPECT_EQ(model->parameter_count(/*trainable_only=*/true), 5 * 512 + 5);
    EXPECT_THROW(model->reset_classifier(0), InvalidArgument);
}

std::string load_error(nn::Module& model, const nn::StateDict& state) {
    try {
        model.load_state_dict(state);
    } catch (const InvalidArgument& e) {
        return e.what();
    }
    return "no error";
}

// A state dict that does not fit is refused with the key named, and the model keeps its values.
TEST(Models, StrictLoadingNamesTheProblemAndChangesNothing) {
    auto model = models::resnet18({.num_classes = 4});
    nn::StateDict before;  // copies: state_dict() shares the model's storage
    for (const auto& [name, tensor] : model->state_dict()) before[name] = tensor.clone();
    // A well-formed state with other values (integers stay integers).
    auto cloned = [&] {
        nn::StateDict copy;
        for (const auto& [name, tensor] : before) {
            copy[name] = is_floating_point(tensor.dtype()) ? add_scalar(tensor, 0.5) : tensor.clone();
        }
        return copy;
    };
    nn::StateDict missing = cloned();
    missing.erase("layer3.1.bn2.running_var");
    nn::StateDict extra = cloned();
    extra["layer5.0.conv1.weight"] = Tensor::zeros(Shape{1});
    nn::StateDict wrong_shape = cloned();
    wrong_shape["fc.weight"] = Tensor::zeros(Shape{10, 512});
    nn::StateDict wrong_dtype = cloned();
    wrong_dtype["bn1.num_batches_tracked"] = Tensor::zeros(Shape{}, DType::Float32);
    EXPECT_NE(load_error(*model, missing).find("missing from the state: 'layer3.1.bn2.running_var'"),
              std::string::npos);
    EXPECT_NE(load_error(*model, extra).find("not in the model: 'layer5.0.conv1.weight'"), std::string::npos);
    const std::string shape_error = load_error(*model, wrong_shape);
    EXPECT_NE(shape_error.find("'fc.weight' has shape [10, 512] in the state but [4, 512] in the model"),
              std::string::npos)
        << shape_error;
    const std::string dtype_error = load_error(*model, wrong_dtype);
    EXPECT_NE(dtype_error.find("'bn1.num_batches_tracked' has dtype float32 in the state but int64 in the model"),
              std::string::npos)
        << dtype_error;
    for (const auto& [name, tensor] : model->state_dict()) {
        EXPECT_TRUE(testing::exactly_equal(tensor, before.at(name))) << name << " changed by a refused load";
    }
    model->load_state_dict(cloned());  // the well-formed one loads
    EXPECT_TRUE(testing::exactly_equal(model->state_dict().at("fc.bias"), add_scalar(before.at("fc.bias"), 0.5)));
}

}  // namespace
}  // namespace convkit
