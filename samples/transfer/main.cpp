// Sample 6: transfer learning. A network learns features on one set of classes, and those
// features are reused, frozen, for new classes of which only a few labelled examples exist.
//
//   1. pretrain the Fashion-MNIST network on classes 0-4 (T-shirt, trouser, pullover, dress, coat),
//      with every training image of those classes;
//   2. freeze its feature layers (the convolutions) and train only a new classifier head on
//      classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) with --labels-per-class examples each;
//   3. train the same network from scratch on those few labels alone, and compare.
//
// Why it works: the first convolution layers learn edges, textures and parts (a collar, a
// sole, a strap outline) that are useful for any clothing picture, not just for the classes
// they were trained on. With 100 labels per class, a from-scratch network must learn those
// features AND the decision from 500 images and overfits; the transferred network only has to
// learn the decision, on top of features learned from 30,000 images.
//
// Freezing means two things here: the feature parameters get requires_grad = false (autograd
// records nothing for them, the optimizer skips them, and the forward pass through them costs
// no backward), and the feature layers stay in eval mode, so BatchNorm keeps the statistics it
// learned in pretraining instead of re-estimating them from a handful of images.
//
//   transfer [--device cuda|cpu] [--seed N] [--out DIR] [--data-dir DIR] [--labels-per-class N] ...
//
// With --weights PATH the features come from a ResNet-18 pretrained elsewhere instead (a
// torchvision state dict in safetensors, e.g. from scripts/export-torchvision; docs/models.md):
// step 1 is skipped, and the backbone sees each 28x28 gray image as three equal channels,
// normalised with ImageNet's mean and standard deviation as torchvision's weights expect.
//
// Writes DIR/metrics.json and DIR/transfer.png (test images of the new classes with both
// models' answers). Two default configurations, chosen by the device: on a GPU the width-32
// network pretrained for 5 epochs; on the CPU the width-16 network pretrained for 1 epoch.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/fashion_mnist_model.h"
#include "common/image_grid.h"
#include "common/metrics_json.h"
#include "common/png_writer.h"
#include "common/progress_bar.h"
#include "common/sample_cli.h"
#include "convkit/convkit.h"

namespace {

using namespace convkit;
using namespace convkit::samples;
using Clock = std::chrono::steady_clock;

struct TrainingConfig {
    std::int64_t width = 0;  // first-stage channels (samples/common/fashion_mnist_model.h)
    std::int64_t pretrain_epochs = 0;
    std::int64_t labels_per_class = 100;
    std::int64_t finetune_epochs = 30;  // over the few labelled images, for both new models
    std::int64_t batch_size = 64;
    std::int64_t pretrain_limit = 0;  // images per old class (0: all 6000)
    std::int64_t test_limit = 0;      // test images per class (0: all 1000)
    std::string weights{};            // a ResNet-18 state dict to take the features from ("": pretrain here)
};
TrainingConfig gpu_defaults() {
    return {.width = 32, .pretrain_epochs = 5};
}
TrainingConfig cpu_defaults() {
    return {.width = 16, .pretrain_epochs = 1};
}

struct Overrides {
    std::optional<std::int64_t> width, pretrain_epochs, labels_per_class, finetune_epochs, batch_size, pretrain_limit,
        test_limit;
    std::string weights;
};
TrainingConfig resolve(const Overrides& o, Device device) {
    TrainingConfig c = device.is_cuda() ? gpu_defaults() : cpu_defaults();
    c.width = o.width.value_or(c.width);
    c.pretrain_epochs = o.pretrain_epochs.value_or(c.pretrain_epochs);
    c.labels_per_class = o.labels_per_class.value_or(c.labels_per_class);
    c.finetune_epochs = o.finetune_epochs.value_or(c.finetune_epochs);
    c.batch_size = o.batch_size.value_or(c.batch_size);
    c.pretrain_limit = o.pretrain_limit.value_or(0);
    c.test_limit = o.test_limit.value_or(0);
    c.weights = o.weights;
    return c;
}

// Images of classes [first, first + 5), relabelled 0..4, at most `per_class` of each (0: all),
// a random choice for the seed.
struct LabelledImages {
    Tensor images;  // [N, 1, 28, 28]
    Tensor labels;  // int64 [N], 0..4
};
LabelledImages take_classes(const data::ImageClassificationSet& set, std::int64_t first, std::int64_t per_class,
                            std::uint64_t seed) {
    const std::int64_t count = set.labels.size(0), pixels = 28 * 28;
    std::vector<std::int64_t> order(static_cast<std::size_t>(count));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(seed);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::int64_t> taken(5, 0), chosen;
    for (std::int64_t index : order) {
        const std::int64_t label = set.labels.data<std::int64_t>()[index] - first;
        if (label < 0 || label >= 5 || (per_class > 0 && taken[static_cast<std::size_t>(label)] >= per_class)) continue;
        ++taken[static_cast<std::size_t>(label)];
        chosen.push_back(index);
    }
    const auto n = static_cast<std::int64_t>(chosen.size());
    LabelledImages result{Tensor::empty(Shape{n, 1, 28, 28}), Tensor::empty(Shape{n}, DType::Int64)};
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t source = chosen[static_cast<std::size_t>(i)];
        std::copy_n(set.images.data<float>() + source * pixels, pixels, result.images.data<float>() + i * pixels);
        result.labels.data<std::int64_t>()[i] = set.labels.data<std::int64_t>()[source] - first;
    }
    return result;
}

// The network of sample 1 (common/fashion_mnist_model.h), cut in two: its convolution stages up
// to the flattened 7x7 maps are the features; the two linear layers are the head, made anew
// with 5 outputs for each task.
struct SplitNetwork {
    std::shared_ptr<nn::Module> features;
    std::shared_ptr<nn::Sequential> head;
};
constexpr std::size_t kFeatureLayers = 9;  // conv, bn, relu, pool, conv, bn, relu, pool, flatten

std::shared_ptr<nn::Sequential> new_head(std::int64_t width) {
    const auto full = make_fashion_mnist_model(width);
    auto head = std::make_shared<nn::Sequential>();
    for (std::size_t i = kFeatureLayers; i + 1 < full->size(); ++i) head->push_back((*full)[i]);
    head->push_back(std::make_shared<nn::Linear>(128, 5));  // 5 classes instead of 10
    return head;
}
SplitNetwork new_network(std::int64_t width) {
    const auto full = make_fashion_mnist_model(width);
    auto features = std::make_shared<nn::Sequential>();
    for (std::size_t i = 0; i < kFeatureLayers; ++i) features->push_back((*full)[i]);
    return {features, new_head(width)};
}

// A ResNet-18 pretrained elsewhere as the feature extractor of 28x28 gray images: the gray
// channel three times (the network was trained on colour), normalised as torchvision's ImageNet
// weights expect, then everything up to the pooled 512 features.
class ResNetFeatures : public nn::Module {
public:
    // The statistics are buffers, so they move with the module (to(device)) once, not per batch.
    explicit ResNetFeatures(std::shared_ptr<models::ResNet> resnet)
        : resnet_(register_module("resnet", std::move(resnet))),
          mean_(register_buffer("mean",
                                Tensor::from_vector(Shape{1, 3, 1, 1}, std::vector<float>{0.485f, 0.456f, 0.406f}))),
          stddev_(register_buffer(
              "stddev", Tensor::from_vector(Shape{1, 3, 1, 1}, std::vector<float>{0.229f, 0.224f, 0.225f}))) {}
    Tensor forward(const Tensor& gray) override {
        const Tensor rgb = concat({gray, gray, gray}, 1);
        return resnet_->features((rgb - mean_) / stddev_);
    }
    std::string type_name() const override { return "ResNetFeatures"; }
    std::int64_t feature_count() const { return resnet_->feature_count(); }

private:
    std::shared_ptr<models::ResNet> resnet_;
    Tensor& mean_;
    Tensor& stddev_;
};

// The ResNet-18 of `path` with as many classes as its fc has (strict load: every key, shape and
// dtype checked), frozen, as features, and a new 5-class head.
SplitNetwork pretrained_resnet_network(const std::string& path) {
    const TensorMap state = load_safetensors(path);
    const auto fc = state.find("fc.weight");
    if (fc == state.end() || fc->second.rank() != 2) {
        throw InvalidArgument("transfer: --weights " + path + " holds no ResNet-18 'fc.weight' [classes, 512]");
    }
    auto resnet = models::resnet18({.num_classes = fc->second.shape()[0]});
    nn::StateDict dict(state.begin(), state.end());
    resnet->load_state_dict(dict);
    resnet->freeze_backbone();
    for (Tensor& p : resnet->fc().parameters()) p.set_requires_grad(false);  // its fc is not used
    auto features = std::make_shared<ResNetFeatures>(resnet);
    auto head = std::make_shared<nn::Sequential>(
        std::vector<std::shared_ptr<nn::Module>>{std::make_shared<nn::Linear>(features->feature_count(), 5)});
    return {features, head};
}

std::vector<Tensor> trainable(const std::vector<std::shared_ptr<nn::Module>>& parts) {
    std::vector<Tensor> parameters;
    for (const auto& part : parts)
        for (const Tensor& p : part->parameters())
            if (p.requires_grad()) parameters.push_back(p);
    return parameters;
}

struct Result {
    double test_accuracy = 0;
    Tensor predicted;  // int64 [test images]
    double train_loss = 0;
    double train_accuracy = 0;
    double images_per_second = 0;
    std::int64_t trainable_parameters = 0;
};

// Trains `net` (only its head when the features are frozen) and tests it. One loop for all three
// trainings, so that they differ only in what is trainable.
Result train_and_test(const char* label, SplitNetwork& net, bool features_frozen, const LabelledImages& train_set,
                      const LabelledImages& test_set, std::int64_t epochs, const TrainingConfig& config,
                      std::uint64_t seed, Device device) {
    net.features->to(device);
    net.head->to(device);
    const std::vector<Tensor> parameters =
        features_frozen ? trainable({net.head}) : trainable({net.features, net.head});
    if (parameters.empty()) throw InvalidArgument(std::string(label) + ": nothing to train");
    Result result;
    for (const Tensor& p : parameters) result.trainable_parameters += p.numel();
    std::printf("%s: %lld trainable parameters, %lld training images, %lld epochs\n", label,
                static_cast<long long>(result.trainable_parameters), static_cast<long long>(train_set.labels.size(0)),
                static_cast<long long>(epochs));
    std::fflush(stdout);
    optim::Adam optimizer(parameters, {.lr = 1e-3});
    auto dataset = std::make_shared<data::TensorDataset>(train_set.images, train_set.labels);
    data::DataLoader loader(dataset,
                            {.batch_size = config.batch_size, .shuffle = true, .seed = seed, .device = device});
    ProgressBar bar(label, epochs * loader.batches_per_epoch());
    for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
        net.features->train(!features_frozen);  // frozen: BatchNorm keeps its pretrained statistics
        net.head->train();
        for (const data::Batch& batch : loader.epoch(epoch)) {
            // With frozen features nothing in this call requires grad: autograd records nothing,
            // and backward() stops at the head.
            const Tensor logits = (*net.head)((*net.features)(batch.inputs));
            const Tensor loss = cross_entropy(logits, batch.targets);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            const std::int64_t n = batch.targets.size(0);
            bar.step(n, loss.to(Device::host()).item(0),
                     std::llround(accuracy(logits.detach(), batch.targets) * static_cast<double>(n)));
        }
    }
    bar.finish();
    result.train_loss = bar.mean_loss();
    result.train_accuracy = bar.accuracy();
    result.images_per_second = bar.images_per_second();

    NoGradGuard no_grad;
    net.features->eval();
    net.head->eval();
    std::vector<Tensor> predicted;
    const std::int64_t count = test_set.labels.size(0);
    for (std::int64_t begin = 0; begin < count; begin += 500) {
        const std::int64_t end = std::min(count, begin + 500);
        predicted.push_back(
            predicted_classes((*net.head)((*net.features)(slice(test_set.images, 0, begin, end).to(device))))
                .to(Device::host()));
    }
    result.predicted = concat(predicted, 0);
    std::int64_t correct = 0;
    for (std::int64_t i = 0; i < count; ++i)
        correct += result.predicted.data<std::int64_t>()[i] == test_set.labels.data<std::int64_t>()[i] ? 1 : 0;
    result.test_accuracy = static_cast<double>(correct) / static_cast<double>(count);
    return result;
}

// Test images of the new classes with the answers of both models.
Image answers_picture(const LabelledImages& test, const Result& transferred, const Result& scratch,
                      std::int64_t count) {
    const auto& names = data::fashion_mnist_class_names();
    auto name = [&](std::int64_t label) { return names[static_cast<std::size_t>(label + 5)]; };
    std::vector<CaptionedImage> cells;
    for (std::int64_t i = 0; i < std::min(count, test.labels.size(0)); ++i) {
        const std::int64_t truth = test.labels.data<std::int64_t>()[i];
        const std::int64_t a = transferred.predicted.data<std::int64_t>()[i];
        const std::int64_t b = scratch.predicted.data<std::int64_t>()[i];
        cells.push_back({image_from_tensor(slice(test.images, 0, i, i + 1).reshape(Shape{28, 28})).enlarged(2),
                         {Caption{name(truth), kBlack}, Caption{"T: " + name(a), a == truth ? kGreen : kRed},
                          Caption{"S: " + name(b), b == truth ? kGreen : kRed}}});
    }
    return with_title(captioned_image_grid(cells, 8), "true class; T: frozen features + new head, S: from scratch");
}

nlohmann::json result_json(const Result& r) {
    return {{"trainable_parameters", r.trainable_parameters},
            {"train_loss", r.train_loss},
            {"train_accuracy", r.train_accuracy},
            {"train_images_per_second", r.images_per_second},
            {"test_accuracy", r.test_accuracy}};
}

int run(const SampleOptions& common, const Overrides& overrides) {
    const auto start = Clock::now();
    const Device device = sample_device(common);
    const TrainingConfig config = resolve(overrides, device);
    create_out_dir(common);
    const std::string backend = backend_name(device.is_cuda() ? default_backend() : default_host_backend());
    const auto train_all = data::load_fashion_mnist(common.data_dir, data::Split::Train);
    const auto test_all = data::load_fashion_mnist(common.data_dir, data::Split::Test);
    const LabelledImages old_train = take_classes(train_all, 0, config.pretrain_limit, common.seed);
    const LabelledImages old_test = take_classes(test_all, 0, config.test_limit, common.seed);
    const LabelledImages new_train = take_classes(train_all, 5, config.labels_per_class, common.seed);
    const LabelledImages new_test = take_classes(test_all, 5, config.test_limit, common.seed);
    const std::string backbone =
        config.weights.empty() ? "pretrained here on classes 0-4" : "ResNet-18 from " + config.weights;
    const std::string features_text =
        config.weights.empty() ? "classes 0-4: " + std::to_string(old_train.labels.size(0)) + " training images"
                               : "features: " + backbone;
    std::printf("transfer: width %lld; %s; classes 5-9: %lld labels per class, %lld test images; on %s (%s)\n",
                static_cast<long long>(config.width), features_text.c_str(),
                static_cast<long long>(config.labels_per_class), static_cast<long long>(new_test.labels.size(0)),
                device.to_string().c_str(), backend.c_str());
    nn::init::manual_seed(common.seed);

    // 1. Pretraining on the old classes: features and head both learn. With --weights the
    // features were learned elsewhere, on other pictures altogether.
    std::optional<Result> old;
    SplitNetwork transferred;
    if (config.weights.empty()) {
        SplitNetwork pretrained = new_network(config.width);
        old = train_and_test("pretrain 0-4", pretrained, false, old_train, old_test, config.pretrain_epochs, config,
                             common.seed, device);
        // 2. Transfer: keep the features, freeze them, and put a new, untrained head on top.
        for (Tensor& p : pretrained.features->parameters()) p.set_requires_grad(false);
        transferred = {pretrained.features, new_head(config.width)};
    } else {
        transferred = pretrained_resnet_network(config.weights);
    }
    const Result transfer = train_and_test("frozen + new head 5-9", transferred, true, new_train, new_test,
                                           config.finetune_epochs, config, common.seed, device);

    // 3. The baseline: the same architecture from random weights, on the same few labels.
    SplitNetwork fresh = new_network(config.width);
    const Result scratch = train_and_test("from scratch 5-9", fresh, false, new_train, new_test, config.finetune_epochs,
                                          config, common.seed, device);

    const std::filesystem::path out(common.out_dir);
    write_png((out / "transfer.png").string(), answers_picture(new_test, transfer, scratch, 16));
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    write_metrics_json((out / "metrics.json").string(),
                       {{"sample", "transfer"},
                        {"device", device.to_string()},
                        {"backend", backend},
                        {"seed", common.seed},
                        {"config",
                         {{"width", config.width},
                          {"features", backbone},
                          {"pretrain_epochs", config.pretrain_epochs},
                          {"pretrain_images", old_train.labels.size(0)},
                          {"labels_per_class", config.labels_per_class},
                          {"finetune_epochs", config.finetune_epochs},
                          {"batch_size", config.batch_size},
                          {"optimizer", "Adam"},
                          {"lr", 1e-3},
                          {"test_images", new_test.labels.size(0)}}},
                        {"pretrain", old ? result_json(*old) : nlohmann::json(nullptr)},
                        {"frozen_features", result_json(transfer)},
                        {"from_scratch", result_json(scratch)},
                        {"seconds", seconds}});
    const std::string pretrain_text =
        old ? "pretrained on classes 0-4: " + std::to_string(old->test_accuracy).substr(0, 6) : backbone;
    std::printf(
        "transfer: classes 5-9 with %lld labels each: frozen pretrained features %.4f, from scratch %.4f "
        "(%s), in %.0f s\n",
        static_cast<long long>(config.labels_per_class), transfer.test_accuracy, scratch.test_accuracy,
        pretrain_text.c_str(), seconds);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Transfer learning on Fashion-MNIST: frozen features for new classes with few labels"};
    SampleOptions common;
    add_sample_options(app, common, "transfer-out", data::kDefaultFashionMnistDirectory);
    Overrides o;
    app.add_option("--width", o.width, "channels of the first convolution stage (GPU 32, CPU 16)");
    app.add_option("--pretrain-epochs", o.pretrain_epochs, "epochs on classes 0-4 (GPU 5, CPU 1)");
    app.add_option("--labels-per-class", o.labels_per_class, "labelled images of each new class (100)");
    app.add_option("--finetune-epochs", o.finetune_epochs, "epochs over the few labels, for both models (30)");
    app.add_option("--batch-size", o.batch_size, "(64)");
    app.add_option("--pretrain-limit", o.pretrain_limit, "images per old class for pretraining (0: all)");
    app.add_option("--test-limit", o.test_limit, "test images per class (0: all)");
    app.add_option("--weights", o.weights,
                   "a ResNet-18 state dict (safetensors, torchvision's names; scripts/export-torchvision) to take "
                   "the frozen features from, instead of pretraining on classes 0-4")
        ->check(CLI::ExistingFile);
    CLI11_PARSE(app, argc, argv);
    return run_sample("transfer", [&] { return run(common, o); });
}
