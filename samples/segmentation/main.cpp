// Sample 2: semantic segmentation with a U-Net (models::UNet from convkit/models/unet.h). Every
// pixel of a generated image is labelled background, disk, square or triangle (shapes.h); the
// model is trained with a per-pixel cross-entropy and judged by the mean intersection-over-union
// of the four classes on held-out images.
//
//   segmentation [--device cuda|cpu] [--seed N] [--out DIR] [--steps N] [--image-size S] ...
//
// Writes DIR/metrics.json and DIR/segmentation.png (input | truth | prediction).
//
// Two default configurations, chosen by the device: on a GPU 48x48 images and a width-16 U-Net
// for 3000 steps; on the CPU 32x32 images and a width-8 U-Net for 500 steps, which takes a few
// minutes on two cores (docs/samples-more.md has the numbers of both).
//
// The U-Net (Ronneberger, Fischer and Brox, 2015), here three levels deep. Labelling every pixel needs two things at once: WHAT is here, which takes a wide view (a disk
// and a square agree pixel by pixel in their interiors; only the outline tells them apart), and
// exactly WHERE its edge is, which takes full resolution. The encoder buys the wide view by
// max-pooling: after three 2x2 poolings a 3x3 convolution sees a 32x32 window of the image. But
// pooling throws away position. The decoder brings the resolution back with transposed
// convolutions (learned 2x upsampling), and the skip connections hand it the encoder's feature
// maps of the same size, concatenated along channels, so the fine detail the pooling discarded
// is available again where the edges are drawn.
//
//
//   image 1xSxS
//   enc1  conv-bn-relu x2 ------------------------------------ skip --> concat -> dec1 -> 1x1 conv -> classes
//    | maxpool                                                              ^ up (transposed conv, x2)
//   enc2  (2w) ----------------------------------- skip --> concat -> dec2 --'
//    | maxpool                                               ^ up
//   enc3  (4w) ------------------- skip --> concat -> dec3 --'
//    | maxpool                              ^ up
//   bottleneck (8w) at S/8 -----------------'
//
// (models::UNet names them encoders.0-2, bottleneck, ups.0-2 and decoders.0-2 from the deepest
// level up, and head.)
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/image_grid.h"
#include "common/metrics_json.h"
#include "common/png_writer.h"
#include "common/progress_bar.h"
#include "common/sample_cli.h"
#include "convkit/convkit.h"
#include "segmentation/shapes.h"

namespace {

using namespace convkit;
using namespace convkit::samples;
using Clock = std::chrono::steady_clock;

struct TrainingConfig {
    std::int64_t image_size = 0;
    std::int64_t width = 0;  // channels of the U-Net's first level
    std::int64_t steps = 0;  // one fresh batch each
    std::int64_t batch_size = 16;
    double learning_rate = 3e-3;  // Adam, annealed to 0 by a cosine over the steps
    std::int64_t test_images = 256;
};
TrainingConfig gpu_defaults() { return {.image_size = 48, .width = 16, .steps = 3000}; }
TrainingConfig cpu_defaults() { return {.image_size = 32, .width = 8, .steps = 500}; }

struct Overrides {
    std::optional<std::int64_t> image_size, width, steps, batch_size, test_images;
    std::optional<double> learning_rate;
};
TrainingConfig resolve(const Overrides& o, Device device) {
    TrainingConfig c = device.is_cuda() ? gpu_defaults() : cpu_defaults();
    c.image_size = o.image_size.value_or(c.image_size);
    c.width = o.width.value_or(c.width);
    c.steps = o.steps.value_or(c.steps);
    c.batch_size = o.batch_size.value_or(c.batch_size);
    c.learning_rate = o.learning_rate.value_or(c.learning_rate);
    c.test_images = o.test_images.value_or(c.test_images);
    return c;
}

struct Evaluation {
    double mean_iou = 0;
    std::vector<double> iou_per_class;
    double pixel_accuracy = 0;
    Tensor predictions;  // int64 [N, S, S]
};

// The confusion matrix of the whole test set, then the IoU of each class from it. Summing the
// batches' matrices (rather than averaging per-batch IoUs) weights every pixel the same.
Evaluation evaluate(models::UNet& model, const SegmentationSet& test, Device device, std::int64_t batch_size) {
    NoGradGuard no_grad;
    model.eval();  // BatchNorm uses its running statistics
    const std::int64_t count = test.images.size(0);
    Tensor confusion = Tensor::zeros(Shape{kShapeClassCount, kShapeClassCount}, DType::Int64);
    std::vector<Tensor> predictions;
    for (std::int64_t begin = 0; begin < count; begin += batch_size) {
        const std::int64_t end = std::min(count, begin + batch_size);
        const Tensor logits = model(slice(test.images, 0, begin, end).to(device));
        const Tensor batch_confusion = confusion_matrix(logits, slice(test.masks, 0, begin, end).to(device), kShapeClassCount);
        for (std::int64_t i = 0; i < confusion.numel(); ++i)
            confusion.data<std::int64_t>()[i] += batch_confusion.data<std::int64_t>()[i];
        predictions.push_back(predicted_classes(logits).to(Device::host()));
    }
    model.train();
    std::int64_t correct = 0;
    for (std::int64_t c = 0; c < kShapeClassCount; ++c) correct += confusion.at<std::int64_t>({c, c});
    return {mean_iou(confusion), iou_per_class(confusion),
            static_cast<double>(correct) / static_cast<double>(test.masks.numel()), concat(predictions, 0)};
}

// A class mask [S, S] as colours: background dark, disk red, square green, triangle blue.
Image mask_image(const Tensor& mask) {
    static const Rgb palette[kShapeClassCount] = {{40, 40, 40}, {230, 60, 50}, {60, 190, 80}, {60, 110, 230}};
    const auto size = static_cast<int>(mask.size(0));
    Image image(size, size, 3);
    for (int y = 0; y < size; ++y)
        for (int x = 0; x < size; ++x) image.set(x, y, palette[mask.at<std::int64_t>({y, x})]);
    return image;
}

// One row per test image: the input, the true classes and the predicted classes.
Image examples_picture(const SegmentationSet& test, const Tensor& predictions, std::int64_t rows) {
    const std::int64_t size = test.images.size(2);
    const int zoom = size < 40 ? 3 : 2;
    std::vector<CaptionedImage> cells;
    for (std::int64_t i = 0; i < std::min(rows, test.images.size(0)); ++i) {
        const Tensor image = slice(test.images, 0, i, i + 1).reshape(Shape{size, size});
        const Tensor truth = slice(test.masks, 0, i, i + 1).reshape(Shape{size, size});
        const Tensor predicted = slice(predictions, 0, i, i + 1).reshape(Shape{size, size});
        cells.push_back({image_from_tensor(image).enlarged(zoom), {Caption{"input"}}});
        cells.push_back({mask_image(truth).enlarged(zoom), {Caption{"truth"}}});
        cells.push_back({mask_image(predicted).enlarged(zoom), {Caption{"prediction"}}});
    }
    return with_title(captioned_image_grid(cells, 6), "red disk, green square, blue triangle");
}

int train(const SampleOptions& common, const Overrides& overrides) {
    const auto start = Clock::now();
    const Device device = sample_device(common);
    const TrainingConfig config = resolve(overrides, device);
    if (config.image_size < 8 || config.image_size % 8 != 0)  // three 2x2 poolings must divide it
        throw InvalidArgument("segmentation: --image-size must be a multiple of 8, got " +
                              std::to_string(config.image_size));
    create_out_dir(common);
    const std::string backend = backend_name(device.is_cuda() ? default_backend() : default_host_backend());
    const ShapesConfig shapes{.image_size = config.image_size};

    nn::init::manual_seed(common.seed);
    // Three poolings: a 3x3 convolution at the bottleneck sees a 32x32 window of the image.
    models::UNet model({.in_channels = 1, .num_classes = kShapeClassCount, .width = config.width, .depth = 3});
    model.to(device);  // before the optimizer: it keeps handles to the moved tensors
    optim::Adam optimizer(model.parameters(), {.lr = config.learning_rate});
    optim::CosineAnnealingLR schedule(optimizer, config.steps);
    std::printf("segmentation: U-Net width %lld, %lld parameters; %lld steps of %lld fresh %lldx%lld images; on %s (%s)\n",
                static_cast<long long>(config.width), static_cast<long long>(model.parameter_count()),
                static_cast<long long>(config.steps), static_cast<long long>(config.batch_size),
                static_cast<long long>(config.image_size), static_cast<long long>(config.image_size),
                device.to_string().c_str(), backend.c_str());
    std::fflush(stdout);

    // The accuracy shown is the fraction of pixels right, counted in whole images per step.
    ProgressBar bar("train", config.steps);
    for (std::int64_t step = 0; step < config.steps; ++step) {
        // A fresh batch every step from the training stream (seed); the test set is another stream.
        const SegmentationSet batch = generate_shapes(config.batch_size, shapes, common.seed, step * config.batch_size);
        const Tensor images = batch.images.to(device), masks = batch.masks.to(device);
        const Tensor logits = model(images);               // [B, 4, S, S]: a score per class and pixel
        const Tensor loss = cross_entropy(logits, masks);  // averaged over every pixel of the batch
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        schedule.step();
        const double pixel_accuracy = accuracy(logits.detach(), masks);
        bar.step(config.batch_size, loss.to(Device::host()).item(0),
                 std::llround(pixel_accuracy * static_cast<double>(config.batch_size)));
    }
    bar.finish();

    const SegmentationSet test = generate_shapes(config.test_images, shapes, common.seed + 1000);
    const Evaluation result = evaluate(model, test, device, config.batch_size);
    const std::filesystem::path out(common.out_dir);
    write_png((out / "segmentation.png").string(), examples_picture(test, result.predictions, 4));
    nlohmann::json per_class;
    std::printf("IoU per class:");
    for (std::int64_t c = 0; c < kShapeClassCount; ++c) {
        const auto& name = shape_class_names()[static_cast<std::size_t>(c)];
        const double iou = result.iou_per_class[static_cast<std::size_t>(c)];
        per_class[name] = iou;
        std::printf(" %s %.4f", name.c_str(), iou);
    }
    std::printf("\n");
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    write_metrics_json((out / "metrics.json").string(),
                       {{"sample", "segmentation"},
                        {"device", device.to_string()},
                        {"backend", backend},
                        {"seed", common.seed},
                        {"config",
                         {{"image_size", config.image_size},
                          {"width", config.width},
                          {"steps", config.steps},
                          {"batch_size", config.batch_size},
                          {"optimizer", "Adam"},
                          {"schedule", "cosine"},
                          {"lr", config.learning_rate},
                          {"test_images", config.test_images}}},
                        {"parameters", model.parameter_count()},
                        {"train_loss", bar.mean_loss()},
                        {"train_images_per_second", bar.images_per_second()},
                        {"mean_iou", result.mean_iou},
                        {"iou_per_class", per_class},
                        {"pixel_accuracy", result.pixel_accuracy},
                        {"seconds", seconds}});
    std::printf("segmentation: mean IoU %.4f, pixel accuracy %.4f on %lld test images, in %.0f s\n", result.mean_iou,
                result.pixel_accuracy, static_cast<long long>(config.test_images), seconds);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"U-Net segmentation of generated shapes: labels every pixel, reports mean IoU"};
    SampleOptions common;
    add_sample_options(app, common, "segmentation-out");
    Overrides o;
    app.add_option("--steps", o.steps, "training steps, one fresh batch each (GPU 3000, CPU 500)");
    app.add_option("--batch-size", o.batch_size, "images per step (16)");
    app.add_option("--lr", o.learning_rate, "Adam's initial learning rate (3e-3)");
    app.add_option("--width", o.width, "channels of the U-Net's first level (GPU 16, CPU 8)");
    app.add_option("--image-size", o.image_size, "a multiple of 8 (GPU 48, CPU 32)");
    app.add_option("--test-images", o.test_images, "held-out images for the IoU (256)");
    CLI11_PARSE(app, argc, argv);
    return run_sample("segmentation", [&] { return train(common, o); });
}
