// The main job: a convolutional classifier of Fashion-MNIST (28x28 grayscale pictures of ten
// kinds of clothing), trained from scratch, with its test accuracy, confusion matrix, learned
// filters and a grid of predictions written to --out (docs/samples.md).
//
//   fashion_mnist [--device cuda|cpu] [--precision bf16|fp16|tf32|fp32] [--cuda-graph on|off]
//                 [--epochs N] [--out DIR] ...
//
// Two default configurations, chosen by the device: on a GPU the full model (width 32) for 15
// epochs with augmentation, in bfloat16, aiming at >= 92% test accuracy; on the CPU the same
// model for 4 epochs without augmentation, in float32, aiming at >= 90% within 5 minutes on two
// cores.
//
// Mixed precision (--precision bf16 or fp16): the model's parameters and activations are 16-bit,
// its images channels-last on a GPU (so the convolutions run on the tensor cores, cuda.igemm),
// the optimizer keeps float32 master weights and moments, and the loss is computed in float32
// from the logits widened once; fp16 adds dynamic loss scaling (optim::GradScaler). tf32 keeps
// float32 tensors and allows TF32 matrix math.
//
// On a GPU the training step is captured once as a CUDA graph and replayed (--cuda-graph, on by
// default there except with fp16, whose loss scaling reads the device every step): each full
// batch is copied into the graph's static inputs; the last, smaller batch of an epoch runs
// eagerly, so every image trains in both modes.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "common/confusion_plot.h"
#include "common/fashion_mnist_model.h"
#include "common/filter_grid.h"
#include "common/image_grid.h"
#include "common/metrics_json.h"
#include "common/png_writer.h"
#include "common/progress_bar.h"
#include "common/sample_cli.h"
#include "convkit/convkit.h"

namespace {
using namespace convkit;
using samples::Caption;
using samples::CaptionedImage;
using Clock = std::chrono::steady_clock;

constexpr std::int64_t kClasses = 10;
constexpr std::int64_t kEvaluationBatch = 500;
constexpr int kPredictionColumns = 8;
constexpr int kPredictionRows = 4;
constexpr int kPictureZoom = 2;  // pictures are drawn with 1-pixel text, then enlarged
constexpr int kImageZoom = 2;    // the 28x28 test images, before that
constexpr int kFilterZoom = 8;   // a 3x3 filter becomes 24x24, before that

// What the command line may override; the rest of a run's settings follow the device.
struct TrainingConfig {
    std::int64_t width = 0;  // first-stage channels (samples/common/fashion_mnist_model.h)
    std::int64_t epochs = 0;
    std::int64_t batch_size = 0;
    double max_lr = 0;  // the one-cycle schedule's peak
    double weight_decay = 0;
    bool augment = false;          // random crop (padding 2) and horizontal flip
    std::int64_t train_limit = 0;  // 0: every image
    std::int64_t test_limit = 0;
    std::string precision;  // bf16, fp16, tf32 or fp32
    bool cuda_graph = false;  // capture the training step once and replay it (CUDA only)
};

// Adam with a one-cycle schedule for both: robust to the batch size and needs no warm-up tuning.
// GPU: the full-width model, long enough for augmentation to pay off (>= 92% is the target; the
// same configuration run on the CPU reached 92.6%, docs/samples.md).
TrainingConfig gpu_defaults() {
    return {.width = 32,
            .epochs = 15,
            .batch_size = 128,
            .max_lr = 3e-3,
            .weight_decay = 5e-4,
            .augment = true,
            .precision = "bf16"};
}
// CPU: the full-width model for as many epochs as reach >= 90% within 5 minutes on two cores,
// data loading and testing included (docs/samples.md has the run). No augmentation: it pays
// off only over many epochs.
TrainingConfig cpu_defaults() {
    return {.width = 32,
            .epochs = 4,
            .batch_size = 128,
            .max_lr = 3e-3,
            .weight_decay = 0,
            .augment = false,
            .precision = "fp32"};
}

// The command line's overrides: unset ones take the device's default.
struct Overrides {
    std::optional<std::int64_t> width, epochs, batch_size, train_limit, test_limit;
    std::optional<double> max_lr, weight_decay;
    std::optional<bool> augment;
    std::optional<std::string> precision;
    std::optional<std::string> cuda_graph;  // on or off
};

TrainingConfig resolve(const Overrides& o, Device device) {
    TrainingConfig c = device.is_cuda() ? gpu_defaults() : cpu_defaults();
    c.width = o.width.value_or(c.width);
    c.epochs = o.epochs.value_or(c.epochs);
    c.batch_size = o.batch_size.value_or(c.batch_size);
    c.max_lr = o.max_lr.value_or(c.max_lr);
    c.weight_decay = o.weight_decay.value_or(c.weight_decay);
    c.augment = o.augment.value_or(c.augment);
    c.train_limit = o.train_limit.value_or(0);
    c.test_limit = o.test_limit.value_or(0);
    c.precision = o.precision.value_or(c.precision);
    // fp16 scales the loss by a factor that follows the gradients' overflow, read every step.
    const bool graph_by_default = device.is_cuda() && c.precision != "fp16";
    c.cuda_graph = o.cuda_graph ? *o.cuda_graph == "on" : graph_by_default;
    if (c.cuda_graph && !device.is_cuda()) throw InvalidArgument("--cuda-graph on needs --device cuda");
    if (c.cuda_graph && c.precision == "fp16") {
        throw InvalidArgument("--cuda-graph on cannot run with --precision fp16: loss scaling reads the device every step");
    }
    return c;
}

// How a precision runs: the dtype of the parameters and activations, the images' memory format,
// and the math mode of float32 products.
struct PrecisionPlan {
    DType dtype = DType::Float32;
    MemoryFormat format = MemoryFormat::Contiguous;
    MathMode math = MathMode::Strict;

    // A batch of float32 images as the model takes them.
    Tensor inputs(const Tensor& images) const { return images.to(dtype).to(format); }
    // float16 gradients need loss scaling to stay in range; the others pass through it.
    bool scales_loss() const { return dtype == DType::Float16; }
};

PrecisionPlan plan_for(const std::string& precision, Device device) {
    if (precision == "tf32") return {.math = MathMode::AllowTF32};
    if (precision == "fp32") return {};
    const DType dtype = precision == "bf16" ? DType::BFloat16 : DType::Float16;
    return {.dtype = dtype, .format = device.is_cuda() ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous};
}

// The first `limit` examples (all for 0): the files are already in random order.
std::shared_ptr<const data::Dataset> first_examples(const data::ImageClassificationSet& set, std::int64_t limit) {
    auto all = std::make_shared<data::TensorDataset>(set.images, set.labels);
    if (limit <= 0 || limit >= all->size()) return all;
    std::vector<std::int64_t> indices(static_cast<std::size_t>(limit));
    std::iota(indices.begin(), indices.end(), 0);
    return std::make_shared<data::SubsetDataset>(all, std::move(indices));
}

double scalar(const Tensor& t) {
    return t.to(Device::host()).item(0);
}

struct EpochResult {
    double loss = 0;
    double accuracy = 0;
    double images_per_second = 0;
};

// The model's logits for a batch, widened to float32 (recorded: the gradient flows back in the
// model's dtype) so that the loss and the metrics compute in float32 whatever the precision.
Tensor logits_of(nn::Module& model, const PrecisionPlan& plan, const Tensor& images) {
    return model(plan.inputs(images)).to(DType::Float32);
}

// One training step on a batch; its loss and correct count stay on the device.
struct StepOutputs {
    Tensor loss, correct;
};
StepOutputs training_step(nn::Module& model, const PrecisionPlan& plan, const Tensor& images, const Tensor& targets,
                          optim::Optimizer& optimizer, optim::GradScaler& scaler) {
    optimizer.zero_grad();
    const Tensor logits = logits_of(model, plan, images);
    const Tensor loss = cross_entropy(logits, targets);
    scaler.scale(loss).backward();
    scaler.step(optimizer);
    return {loss.detach(), correct_predictions(logits.detach(), targets)};
}

// The training step as a CUDA graph (--cuda-graph on): captured at the first full batch (whose
// step is the warm-up), then replayed for each full batch copied into the static inputs. The
// step's loss and count are copied into static outputs, which every replay rewrites.
struct GraphedStep {
    Tensor images, targets, loss, correct;
    std::unique_ptr<CapturedStep> graph;

    StepOutputs run(nn::Module& model, const PrecisionPlan& plan, const data::Batch& batch,
                    optim::Optimizer& optimizer, optim::GradScaler& scaler) {
        if (graph == nullptr) {
            images = batch.inputs.clone();
            targets = batch.targets.clone();
            loss = Tensor::empty(Shape{}, DType::Float32, images.device());
            correct = Tensor::empty(Shape{}, DType::Int64, images.device());
            graph = std::make_unique<CapturedStep>([this, &model, &plan, &optimizer, &scaler] {
                const StepOutputs out = training_step(model, plan, images, targets, optimizer, scaler);
                loss.copy_(out.loss);
                correct.copy_(out.correct);
            });
        } else {
            images.copy_(batch.inputs);
            targets.copy_(batch.targets);
            graph->replay();
        }
        return {loss, correct};
    }
};

EpochResult train_epoch(nn::Module& model, const PrecisionPlan& plan, data::DataLoader& loader,
                        optim::Optimizer& optimizer, optim::GradScaler& scaler, optim::LRScheduler& schedule,
                        GraphedStep* graphed, std::int64_t epoch, std::int64_t epochs) {
    model.train();
    samples::ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs),
                             loader.batches_per_epoch());
    for (const data::Batch& batch : loader.epoch(epoch)) {
        // A graph's shapes are fixed: the last, smaller batch of an epoch runs eagerly.
        const bool full_batch = batch.targets.size(0) == loader.options().batch_size;
        const StepOutputs out = graphed != nullptr && full_batch
                                    ? graphed->run(model, plan, batch, optimizer, scaler)
                                    : training_step(model, plan, batch.inputs, batch.targets, optimizer, scaler);
        schedule.step();
        // Counted on the device and read only when the bar is drawn: the step does not wait for it.
        bar.step(batch.targets.size(0), out.loss, out.correct);
    }
    bar.finish();
    return {bar.mean_loss(), bar.accuracy(), bar.images_per_second()};
}

struct Evaluation {
    double loss = 0;
    double accuracy = 0;
    std::vector<std::int64_t> predictions;  // per test image, in order
};

Evaluation evaluate(nn::Module& model, const PrecisionPlan& plan, data::DataLoader& loader) {
    model.eval();
    NoGradGuard no_grad;
    samples::ProgressBar bar("test", loader.batches_per_epoch());
    Evaluation result;
    for (const data::Batch& batch : loader.epoch(0)) {
        const Tensor logits = logits_of(model, plan, batch.inputs);
        const Tensor predicted = predicted_classes(logits);
        std::int64_t correct = 0;
        const std::vector<double> classes = predicted.to_vector();
        const std::vector<double> targets = batch.targets.to_vector();
        for (std::size_t i = 0; i < classes.size(); ++i) {
            result.predictions.push_back(static_cast<std::int64_t>(classes[i]));
            correct += classes[i] == targets[i] ? 1 : 0;
        }
        bar.step(batch.targets.size(0), scalar(cross_entropy(logits, batch.targets)), correct);
    }
    bar.finish();
    result.loss = bar.mean_loss();
    result.accuracy = bar.accuracy();
    return result;
}

// The first test images with their predicted class (green when right, red when wrong) and,
// under it, the true class in gray.
samples::Image predictions_picture(const Tensor& images, const Tensor& labels,
                                   const std::vector<std::int64_t>& predicted) {
    const auto& names = data::fashion_mnist_class_names();
    const auto count =
        std::min<std::int64_t>(kPredictionColumns * kPredictionRows, static_cast<std::int64_t>(predicted.size()));
    std::vector<CaptionedImage> cells;
    for (std::int64_t i = 0; i < count; ++i) {
        const auto truth = static_cast<std::size_t>(labels.item(i));
        const auto guess = static_cast<std::size_t>(predicted[static_cast<std::size_t>(i)]);
        const Tensor image = slice(images, 0, i, i + 1).reshape(Shape{images.size(2), images.size(3)});
        cells.push_back({samples::image_from_tensor(image).enlarged(kImageZoom),
                         {Caption{names[guess], guess == truth ? samples::kGreen : samples::kRed},
                          Caption{names[truth], samples::kGray}}});
    }
    return samples::with_title(samples::captioned_image_grid(cells, kPredictionColumns),
                               "predicted (green: right, red: wrong) / true class");
}

const nn::Conv2d& first_convolution(nn::Module& model) {
    for (const auto& [name, module] : model.named_modules())
        if (const auto* conv = dynamic_cast<const nn::Conv2d*>(module)) return *conv;
    throw InvalidArgument("fashion_mnist: the model has no Conv2d layer");
}

// confusion_matrix.png, filters.png and predictions.png in `out`.
void write_pictures(const std::filesystem::path& out, nn::Module& model, const Tensor& confusion,
                    const data::ImageClassificationSet& test_set, const std::vector<std::int64_t>& predictions) {
    samples::write_png(
        (out / "confusion_matrix.png").string(),
        samples::confusion_matrix_image(confusion, data::fashion_mnist_class_names()).enlarged(kPictureZoom));
    const Tensor filters = first_convolution(model).weight().to(DType::Float32);
    const std::string title = "conv1: " + std::to_string(filters.size(0)) + " learned " +
                              std::to_string(filters.size(2)) + "x" + std::to_string(filters.size(3)) + " filters";
    samples::write_png(
        (out / "filters.png").string(),
        samples::with_title(samples::filter_grid_image(filters, kFilterZoom), title).enlarged(kPictureZoom));
    samples::write_png((out / "predictions.png").string(),
                       predictions_picture(test_set.images, test_set.labels, predictions).enlarged(kPictureZoom));
}

nlohmann::json config_json(const TrainingConfig& config, std::int64_t train_images, std::int64_t test_images) {
    return {{"width", config.width},
            {"epochs", config.epochs},
            {"batch_size", config.batch_size},
            {"optimizer", "Adam"},
            {"schedule", "one-cycle"},
            {"max_lr", config.max_lr},
            {"weight_decay", config.weight_decay},
            {"augment", config.augment},
            {"precision", config.precision},
            {"cuda_graph", config.cuda_graph},
            {"train_images", train_images},
            {"test_images", test_images}};
}

// An int64 [R, C] tensor as R lists of C numbers.
std::vector<std::vector<std::int64_t>> matrix_rows(const Tensor& matrix) {
    const std::vector<double> values = matrix.to_vector();
    std::vector<std::vector<std::int64_t>> rows(static_cast<std::size_t>(matrix.size(0)));
    for (std::size_t i = 0; i < values.size(); ++i)
        rows[i / static_cast<std::size_t>(matrix.size(1))].push_back(static_cast<std::int64_t>(values[i]));
    return rows;
}

std::string format_seconds(double seconds) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.0f s", seconds);
    return text;
}

int train(const samples::SampleOptions& common, const Overrides& overrides) {
    const auto start = Clock::now();
    const Device device = samples::sample_device(common);
    const TrainingConfig config = resolve(overrides, device);
    const PrecisionPlan plan = plan_for(config.precision, device);
    set_default_math_mode(plan.math);
    samples::create_out_dir(common);
    const std::string backend = backend_name(device.is_cuda() ? default_backend() : default_host_backend());

    const data::ImageClassificationSet train_set = data::load_fashion_mnist(common.data_dir, data::Split::Train);
    const data::ImageClassificationSet test_set = data::load_fashion_mnist(common.data_dir, data::Split::Test);
    const auto train_data = first_examples(train_set, config.train_limit);
    const auto test_data = first_examples(test_set, config.test_limit);

    data::DataLoaderOptions train_options{
        .batch_size = config.batch_size, .shuffle = true, .seed = common.seed, .device = device};
    if (config.augment)
        train_options.transform = data::compose({data::random_crop(28, 28, 2), data::random_horizontal_flip()});
    data::DataLoader train_loader(train_data, train_options);
    data::DataLoader test_loader(test_data, {.batch_size = kEvaluationBatch, .device = device});

    nn::init::manual_seed(common.seed);
    auto model = samples::make_fashion_mnist_model(config.width);
    model->to(device);
    model->to(plan.dtype);  // 16-bit parameters get float32 master weights in the optimizer
    optim::Adam optimizer(model->parameters(), {.lr = config.max_lr, .weight_decay = config.weight_decay});
    optim::OneCycleLR schedule(optimizer, config.max_lr, config.epochs * train_loader.batches_per_epoch());
    optim::GradScaler scaler({.enabled = plan.scales_loss()});

    std::printf("fashion_mnist: %lld training and %lld test images from %s\n",
                static_cast<long long>(train_data->size()), static_cast<long long>(test_data->size()),
                common.data_dir.c_str());
    std::printf(
        "model: width %lld, %lld parameters; %lld epoch%s of %lld batches of %lld, Adam with one-cycle "
        "max lr %g, weight decay %g, augmentation %s; %s on %s (%s)%s\n",
        static_cast<long long>(config.width), static_cast<long long>(model->parameter_count()),
        static_cast<long long>(config.epochs), config.epochs == 1 ? "" : "s",
        static_cast<long long>(train_loader.batches_per_epoch()), static_cast<long long>(config.batch_size),
        config.max_lr, config.weight_decay, config.augment ? "crop+flip" : "off", config.precision.c_str(),
        common.device.c_str(), backend.c_str(), config.cuda_graph ? ", training step as a CUDA graph" : "");
    std::fflush(stdout);

    GraphedStep graphed;  // before the loop, after the model and optimizer: it must not outlive them
    nlohmann::json epochs_json = nlohmann::json::array();
    EpochResult last_train;
    Evaluation test;
    for (std::int64_t epoch = 0; epoch < config.epochs; ++epoch) {
        const auto epoch_start = Clock::now();
        last_train = train_epoch(*model, plan, train_loader, optimizer, scaler, schedule,
                                 config.cuda_graph ? &graphed : nullptr, epoch, config.epochs);
        test = evaluate(*model, plan, test_loader);
        const double seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
        std::printf("epoch %lld/%lld: train loss %.4f accuracy %.4f | test loss %.4f accuracy %.4f | %s\n",
                    static_cast<long long>(epoch + 1), static_cast<long long>(config.epochs), last_train.loss,
                    last_train.accuracy, test.loss, test.accuracy, format_seconds(seconds).c_str());
        std::fflush(stdout);
        epochs_json.push_back({{"epoch", epoch + 1},
                               {"train_loss", last_train.loss},
                               {"train_accuracy", last_train.accuracy},
                               {"train_images_per_second", last_train.images_per_second},
                               {"test_loss", test.loss},
                               {"test_accuracy", test.accuracy},
                               {"seconds", seconds}});
    }

    // The test loader does not shuffle, so the predictions line up with the files.
    const std::int64_t tested = static_cast<std::int64_t>(test.predictions.size());
    const Tensor confusion = confusion_matrix(Tensor::from_vector(Shape{tested}, test.predictions),
                                              slice(test_set.labels, 0, 0, tested), kClasses);
    const std::filesystem::path out(common.out_dir);
    nn::save(*model, (out / "model.safetensors").string(),
             {{"sample", "fashion_mnist"},
              {"width", std::to_string(config.width)},
              {"test_accuracy", std::to_string(test.accuracy)}});
    write_pictures(out, *model, confusion, test_set, test.predictions);

    nlohmann::json metrics = {
        {"sample", "fashion_mnist"}, {"device", common.device}, {"backend", backend}, {"seed", common.seed}};
    metrics["config"] = config_json(config, train_data->size(), test_data->size());
    metrics["parameters"] = model->parameter_count();
    metrics["epochs"] = epochs_json;
    metrics["train_loss"] = last_train.loss;
    metrics["train_accuracy"] = last_train.accuracy;
    metrics["test_loss"] = test.loss;
    metrics["test_accuracy"] = test.accuracy;
    metrics["class_names"] = data::fashion_mnist_class_names();
    metrics["confusion_matrix"] = matrix_rows(confusion);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    metrics["seconds"] = seconds;
    samples::write_metrics_json((out / "metrics.json").string(), metrics);

    std::printf("wrote metrics.json, model.safetensors, confusion_matrix.png, filters.png, predictions.png to %s\n",
                common.out_dir.c_str());
    std::printf(
        "fashion_mnist: test accuracy %.4f, test loss %.4f, train accuracy %.4f, %lld epoch%s on %s (%s) in %s\n",
        test.accuracy, test.loss, last_train.accuracy, static_cast<long long>(config.epochs),
        config.epochs == 1 ? "" : "s", common.device.c_str(), backend.c_str(), format_seconds(seconds).c_str());
    return 0;
}
}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Trains a CNN on Fashion-MNIST and writes its metrics, checkpoint and pictures to --out"};
    samples::SampleOptions common;
    samples::add_sample_options(app, common, "fashion-mnist-out", data::kDefaultFashionMnistDirectory);
    Overrides o;
    app.add_option("--epochs", o.epochs, "passes over the training images (default: 15 on cuda, 4 on cpu)")
        ->check(CLI::PositiveNumber);
    app.add_option("--train-limit", o.train_limit, "train on the first N images only (quick runs)")
        ->check(CLI::PositiveNumber);
    app.add_option("--test-limit", o.test_limit, "test on the first N images only")->check(CLI::PositiveNumber);
    app.add_option("--batch-size", o.batch_size, "images per step (default: 128)")
        ->check(CLI::PositiveNumber);
    app.add_option("--width", o.width, "channels of the first conv stage (default: 32)")
        ->check(CLI::PositiveNumber);
    app.add_option("--lr", o.max_lr, "peak learning rate of the one-cycle schedule (default 3e-3)")
        ->check(CLI::PositiveNumber);
    app.add_option("--weight-decay", o.weight_decay, "Adam's L2 weight decay (default: 5e-4 on cuda, 0 on cpu)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--precision", o.precision,
                   "bf16 or fp16 (16-bit model, float32 master weights), tf32 (float32, TF32 products) or fp32 "
                   "(default: bf16 on cuda, fp32 on cpu)")
        ->check(CLI::IsMember({"bf16", "fp16", "tf32", "fp32"}));
    app.add_option("--cuda-graph", o.cuda_graph,
                   "capture the training step as a CUDA graph and replay it (default: on for cuda, except with fp16)")
        ->check(CLI::IsMember({"on", "off"}));
    CLI::Option* augment = app.add_flag("--augment,!--no-augment", o.augment,
                                        "random crop (padding 2) and horizontal flip (default: on for cuda, off for cpu)");
    CLI11_PARSE(app, argc, argv);
    // CLI11 2.1 writes false into an optional flag with a negated name that was not given, which
    // turned the GPU's default augmentation off: neither name given leaves the device default.
    if (augment->count() == 0) o.augment.reset();
    return samples::run_sample("fashion_mnist", [&] { return train(common, o); });
}
