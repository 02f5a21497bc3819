// Sample 2: semantic segmentation with a U-Net. Every pixel of a generated image is labelled
// background, disk, square or triangle; the model is trained with a per-pixel cross-entropy
// and judged by the mean intersection-over-union of the four classes on held-out images.
//
//   convkit_segmentation [--device cuda|cpu] [--seed N] [--out DIR] [--steps N] ...
//
// Writes DIR/metrics.json and DIR/segmentation_examples.png (input | truth | prediction).
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "convkit/convkit.h"
#include "segmentation/shapes.h"
#include "segmentation/unet.h"

using namespace convkit;
using namespace convkit::samples;

namespace {

struct Config {
    std::string device = cuda_is_available() ? "cuda" : "cpu";
    std::uint64_t seed = 1;
    std::string out = "segmentation_out";
    std::int64_t steps = 1200;
    std::int64_t batch_size = 16;
    double learning_rate = 3e-3;
    std::int64_t width = 16;
    std::int64_t test_images = 256;
    ShapesConfig shapes;
};

struct Evaluation {
    double mean_iou = 0;
    std::vector<double> iou_per_class;
    double pixel_accuracy = 0;
};

// Confusion matrix over the whole test set, then IoU per class from it. Summing the matrices
// of the batches (not averaging per-batch IoUs) weights every pixel the same.
Evaluation evaluate(UNet& model, const SegmentationSet& test, Device device, std::int64_t batch_size) {
    NoGradGuard no_grad;
    model.eval();  // BatchNorm uses its running statistics
    const std::int64_t count = test.images.size(0);
    std::vector<std::int64_t> total(kShapeClassCount * kShapeClassCount, 0);
    for (std::int64_t start = 0; start < count; start += batch_size) {
        const std::int64_t end = std::min(count, start + batch_size);
        const Tensor logits = model(slice(test.images, 0, start, end).to(device));
        const Tensor confusion = confusion_matrix(logits, slice(test.masks, 0, start, end).to(device), kShapeClassCount);
        const auto* counts = confusion.data<std::int64_t>();
        for (std::size_t i = 0; i < total.size(); ++i) total[i] += counts[i];
    }
    model.train();
    const Tensor confusion = Tensor::from_vector(Shape{kShapeClassCount, kShapeClassCount}, total);
    std::int64_t correct = 0, pixels = 0;
    for (std::int64_t c = 0; c < kShapeClassCount; ++c)
        for (std::int64_t p = 0; p < kShapeClassCount; ++p) {
            pixels += total[static_cast<std::size_t>(c * kShapeClassCount + p)];
            if (c == p) correct += total[static_cast<std::size_t>(c * kShapeClassCount + p)];
        }
    return {mean_iou(confusion), iou_per_class(confusion), static_cast<double>(correct) / static_cast<double>(pixels)};
}

int run(const Config& config) {
    const Device device = config.device == "cuda" ? Device::cuda() : Device::host();
    UNet model(1, kShapeClassCount, config.width);
    model.to(device);  // before the optimizer: it keeps handles to the moved tensors
    std::printf("U-Net, width %lld: %lld parameters, %lldx%lld images, %s\n", static_cast<long long>(config.width),
                static_cast<long long>(model.parameter_count()), static_cast<long long>(config.shapes.image_size),
                static_cast<long long>(config.shapes.image_size), device.to_string().c_str());

    optim::Adam optimizer(model.parameters(), {.lr = config.learning_rate});
    optim::CosineAnnealingLR schedule(optimizer, config.steps);
    const SegmentationSet test = generate_shapes(config.test_images, config.shapes, config.seed + 1000);

    const auto start = std::chrono::steady_clock::now();
    double loss_value = 0, accuracy_value = 0;
    for (std::int64_t step = 0; step < config.steps; ++step) {
        // A fresh batch every step, drawn from the training stream (seed), never the test stream.
        const SegmentationSet batch = generate_shapes(config.batch_size, config.shapes, config.seed, step * config.batch_size);
        const Tensor images = batch.images.to(device), masks = batch.masks.to(device);
        const Tensor logits = model(images);                  // [B, 4, S, S]
        const Tensor loss = cross_entropy(logits, masks);     // averaged over every pixel
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        schedule.step();
        loss_value = loss.item(0);
        accuracy_value = accuracy(logits.detach(), masks);  // fraction of pixels right
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double images_per_second = static_cast<double>((step + 1) * config.batch_size) / seconds;
        if (step % 20 == 0 || step + 1 == config.steps)  // TODO(common): the progress bar
            std::printf("step %lld/%lld loss %.4f pixel acc %.4f %.1f img/s\n", static_cast<long long>(step + 1),
                        static_cast<long long>(config.steps), loss_value, accuracy_value, images_per_second);
    }
    const Evaluation result = evaluate(model, test, device, config.batch_size);
    std::printf("per-class IoU:");
    for (std::int64_t c = 0; c < kShapeClassCount; ++c)
        std::printf(" %s %.3f", shape_class_names()[static_cast<std::size_t>(c)].c_str(),
                    result.iou_per_class[static_cast<std::size_t>(c)]);
    std::printf("\nsegmentation: mean IoU %.4f, pixel accuracy %.4f on %lld test images (%lld steps)\n",
                result.mean_iou, result.pixel_accuracy, static_cast<long long>(config.test_images),
                static_cast<long long>(config.steps));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Config config;
    CLI::App app{"U-Net segmentation of generated shapes"};
    app.add_option("--device", config.device)->check(CLI::IsMember({"cuda", "cpu"}));
    app.add_option("--seed", config.seed);
    app.add_option("--out", config.out);
    app.add_option("--steps", config.steps, "training steps (one fresh batch each)");
    app.add_option("--batch-size", config.batch_size);
    app.add_option("--lr", config.learning_rate, "Adam's learning rate, annealed to 0 over the steps");
    app.add_option("--width", config.width, "channels of the U-Net's first level");
    app.add_option("--image-size", config.shapes.image_size, "a multiple of 8");
    app.add_option("--test-images", config.test_images);
    CLI11_PARSE(app, argc, argv);
    try {
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
