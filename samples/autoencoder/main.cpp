// Sample 3: a convolutional autoencoder on Fashion-MNIST.
//
// The encoder squeezes a 28x28 image (784 numbers) through strided convolutions into a
// bottleneck of --code-size numbers; the decoder, transposed convolutions mirroring the encoder,
// has to rebuild the image from those numbers alone. No labels are used: the image is its own
// target. Because the bottleneck is far narrower than the image, the network cannot copy pixels
// through; it must find a compact description (the garment's kind, shape, brightness, pattern)
// from which the image can be redrawn. Walking in a straight line between the codes of two images
// and decoding each point shows what that description has learned: the pictures morph from one
// garment into the other through plausible clothes rather than cross-fading pixel by pixel.
//
//   autoencoder [--device cuda|cpu] [--seed N] [--out DIR] [--data-dir DIR] [--code-size N] ...
//
// Writes DIR/metrics.json, DIR/reconstructions.png (test images and their reconstructions) and
// DIR/interpolation.png (decoded points on the line between two test images' codes). Two
// default configurations, chosen by the device: 10 epochs on a GPU, 2 on the CPU.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
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

namespace {

using namespace convkit;
using namespace convkit::samples;
using Clock = std::chrono::steady_clock;

struct TrainingConfig {
    std::int64_t epochs = 0;
    std::int64_t batch_size = 128;
    double learning_rate = 2e-3;  // Adam, annealed to 0 by a cosine over the steps
    std::int64_t code_size = 16;  // numbers in the bottleneck
    std::int64_t train_limit = 0;  // 0: every image
    std::int64_t test_limit = 0;
};
TrainingConfig gpu_defaults() { return {.epochs = 10}; }
TrainingConfig cpu_defaults() { return {.epochs = 2}; }

struct Overrides {
    std::optional<std::int64_t> epochs, batch_size, code_size, train_limit, test_limit;
    std::optional<double> learning_rate;
};
TrainingConfig resolve(const Overrides& o, Device device) {
    TrainingConfig c = device.is_cuda() ? gpu_defaults() : cpu_defaults();
    c.epochs = o.epochs.value_or(c.epochs);
    c.batch_size = o.batch_size.value_or(c.batch_size);
    c.learning_rate = o.learning_rate.value_or(c.learning_rate);
    c.code_size = o.code_size.value_or(c.code_size);
    c.train_limit = o.train_limit.value_or(0);
    c.test_limit = o.test_limit.value_or(0);
    return c;
}

class ConvAutoencoder : public nn::Module {
public:
    explicit ConvAutoencoder(std::int64_t code_size)
        : encoder_(register_module("encoder", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
              // Stride 2 instead of pooling: each convolution halves the size, 28 -> 14 -> 7.
              std::make_shared<nn::Conv2d>(1, 32, 3, ConvParams(2).set_stride(2).set_padding(1)),
              std::make_shared<nn::ReLU>(),
              std::make_shared<nn::Conv2d>(32, 64, 3, ConvParams(2).set_stride(2).set_padding(1)),
              std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>(),
              // The bottleneck: 64 maps of 7x7 (3136 numbers) down to code_size.
              std::make_shared<nn::Linear>(64 * 7 * 7, code_size)}))),
          expand_(register_module("expand", std::make_shared<nn::Linear>(code_size, 64 * 7 * 7))),
          decoder_(register_module("decoder", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
              std::make_shared<nn::ReLU>(),
              // Kernel 4, stride 2, padding 1 exactly doubles the size: (7-1)*2 - 2 + 4 = 14, then 28.
              // (A 3x3 kernel at stride 2 would overlap unevenly and paint a checkerboard.)
              std::make_shared<nn::ConvTranspose2d>(64, 32, 4, ConvParams(2).set_stride(2).set_padding(1)),
              std::make_shared<nn::ReLU>(),
              std::make_shared<nn::ConvTranspose2d>(32, 1, 4, ConvParams(2).set_stride(2).set_padding(1)),
              // Pixels are in [0, 1]: the sigmoid keeps the reconstruction there.
              std::make_shared<nn::Sigmoid>()}))) {}

    Tensor encode(const Tensor& images) { return (*encoder_)(images); }  // [N, 1, 28, 28] -> [N, code]
    Tensor decode(const Tensor& codes) {                                 // [N, code] -> [N, 1, 28, 28]
        return (*decoder_)((*expand_)(codes).reshape(Shape{codes.size(0), 64, 7, 7}));
    }
    Tensor forward(const Tensor& images) override { return decode(encode(images)); }
    std::string type_name() const override { return "ConvAutoencoder"; }

private:
    std::shared_ptr<nn::Sequential> encoder_;
    std::shared_ptr<nn::Linear> expand_;
    std::shared_ptr<nn::Sequential> decoder_;
};

Tensor first_rows(const Tensor& t, std::int64_t limit) {
    return limit > 0 && limit < t.size(0) ? slice(t, 0, 0, limit) : t;
}

// Mean squared error per pixel over the test set.
double test_error(ConvAutoencoder& model, const Tensor& images, Device device) {
    NoGradGuard no_grad;
    model.eval();
    double total = 0;
    const std::int64_t count = images.size(0);
    for (std::int64_t begin = 0; begin < count; begin += 500) {
        const std::int64_t end = std::min(count, begin + 500);
        const Tensor batch = slice(images, 0, begin, end).to(device);
        total += mse_loss(model(batch), batch, Reduction::Sum).to(Device::host()).item(0);
    }
    model.train();
    return total / static_cast<double>(images.numel());
}

// The codes of two images a and b, and `steps` points on the line between them, decoded:
// [steps, 1, 28, 28].
Tensor interpolate(ConvAutoencoder& model, const Tensor& a, const Tensor& b, std::int64_t steps, Device device) {
    NoGradGuard no_grad;
    model.eval();
    const Tensor code_a = model.encode(a.to(device)), code_b = model.encode(b.to(device));  // [1, code]
    std::vector<Tensor> points;
    for (std::int64_t i = 0; i < steps; ++i) {
        const double t = static_cast<double>(i) / static_cast<double>(steps - 1);
        points.push_back(add(mul_scalar(code_a, 1 - t), mul_scalar(code_b, t)));  // (1-t) a + t b
    }
    const Tensor decoded = model.decode(concat(points, 0));
    model.train();
    return decoded;
}

Image image_28(const Tensor& images, std::int64_t i) {
    return image_from_tensor(slice(images, 0, i, i + 1).reshape(Shape{28, 28}).to(Device::host())).enlarged(2);
}

// Eight test images (top) and what the autoencoder makes of them (below).
Image reconstructions_picture(ConvAutoencoder& model, const Tensor& test_images, Device device) {
    const std::int64_t count = std::min<std::int64_t>(8, test_images.size(0));
    NoGradGuard no_grad;
    model.eval();
    const Tensor decoded = model(slice(test_images, 0, 0, count).to(device)).to(Device::host());
    model.train();
    std::vector<CaptionedImage> cells;
    for (std::int64_t i = 0; i < count; ++i) cells.push_back({image_28(test_images, i), {Caption{"input"}}});
    for (std::int64_t i = 0; i < count; ++i) cells.push_back({image_28(decoded, i), {Caption{"decoded"}}});
    return with_title(captioned_image_grid(cells, static_cast<int>(count)), "test images and their reconstructions");
}

Image interpolation_picture(const Tensor& decoded) {
    std::vector<CaptionedImage> cells;
    const std::int64_t steps = decoded.size(0);
    for (std::int64_t i = 0; i < steps; ++i) {
        char text[16];
        std::snprintf(text, sizeof(text), "t=%.2f", static_cast<double>(i) / static_cast<double>(steps - 1));
        cells.push_back({image_28(decoded, i), {Caption{text}}});
    }
    return with_title(captioned_image_grid(cells, static_cast<int>(steps)), "decode((1-t) code(a) + t code(b))");
}

int train(const SampleOptions& common, const Overrides& overrides) {
    const auto start = Clock::now();
    const Device device = sample_device(common);
    const TrainingConfig config = resolve(overrides, device);
    create_out_dir(common);
    const std::string backend = backend_name(device.is_cuda() ? default_backend() : default_host_backend());
    const auto train_set = data::load_fashion_mnist(common.data_dir, data::Split::Train);
    const auto test_set = data::load_fashion_mnist(common.data_dir, data::Split::Test);
    const Tensor train_images = first_rows(train_set.images, config.train_limit);
    const Tensor test_images = first_rows(test_set.images, config.test_limit);

    nn::init::manual_seed(common.seed);
    ConvAutoencoder model(config.code_size);
    model.to(device);
    // The image is its own target: the dataset's "targets" are the images too.
    auto dataset = std::make_shared<data::TensorDataset>(train_images, train_images);
    data::DataLoader loader(dataset, {.batch_size = config.batch_size, .shuffle = true, .seed = common.seed,
                                      .device = device});
    optim::Adam optimizer(model.parameters(), {.lr = config.learning_rate});
    optim::CosineAnnealingLR schedule(optimizer, config.epochs * loader.batches_per_epoch());
    std::printf("autoencoder: %lld parameters, a bottleneck of %lld numbers for 784 pixels; %lld epochs of %lld "
                "images; on %s (%s)\n",
                static_cast<long long>(model.parameter_count()), static_cast<long long>(config.code_size),
                static_cast<long long>(config.epochs), static_cast<long long>(train_images.size(0)),
                device.to_string().c_str(), backend.c_str());
    std::fflush(stdout);

    nlohmann::json epochs_json = nlohmann::json::array();
    double images_per_second = 0;
    for (std::int64_t epoch = 0; epoch < config.epochs; ++epoch) {
        // No classes here: the bar's accuracy column stays at 0; the loss is the pixels' MSE.
        ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(config.epochs),
                        loader.batches_per_epoch());
        for (const data::Batch& batch : loader.epoch(epoch)) {
            const Tensor loss = mse_loss(model(batch.inputs), batch.targets);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            schedule.step();
            bar.step(batch.inputs.size(0), loss.to(Device::host()).item(0), 0);
        }
        bar.finish();
        images_per_second = bar.images_per_second();
        epochs_json.push_back({{"epoch", epoch + 1}, {"train_mse", bar.mean_loss()}, {"images_per_second", images_per_second}});
    }
    const double error = test_error(model, test_images, device);

    const std::filesystem::path out(common.out_dir);
    write_png((out / "reconstructions.png").string(), reconstructions_picture(model, test_images, device));
    // Two test images of different kinds (the first is an ankle boot, the second a pullover).
    write_png((out / "interpolation.png").string(),
              interpolation_picture(interpolate(model, slice(test_images, 0, 0, 1), slice(test_images, 0, 1, 2), 8, device)
                                        .to(Device::host())));
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    write_metrics_json((out / "metrics.json").string(),
                       {{"sample", "autoencoder"},
                        {"device", device.to_string()},
                        {"backend", backend},
                        {"seed", common.seed},
                        {"config",
                         {{"epochs", config.epochs},
                          {"batch_size", config.batch_size},
                          {"optimizer", "Adam"},
                          {"schedule", "cosine"},
                          {"lr", config.learning_rate},
                          {"code_size", config.code_size},
                          {"train_images", train_images.size(0)},
                          {"test_images", test_images.size(0)}}},
                        {"parameters", model.parameter_count()},
                        {"epochs", epochs_json},
                        {"train_images_per_second", images_per_second},
                        {"test_mse", error},
                        {"seconds", seconds}});
    std::printf("autoencoder: test reconstruction MSE %.5f per pixel with a %lld-number bottleneck, in %.0f s\n", error,
                static_cast<long long>(config.code_size), seconds);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Convolutional autoencoder on Fashion-MNIST: reconstructions and interpolations in the bottleneck"};
    SampleOptions common;
    add_sample_options(app, common, "autoencoder-out", data::kDefaultFashionMnistDirectory);
    Overrides o;
    app.add_option("--epochs", o.epochs, "passes over the training images (GPU 10, CPU 2)");
    app.add_option("--batch-size", o.batch_size, "(128)");
    app.add_option("--lr", o.learning_rate, "Adam's initial learning rate (2e-3)");
    app.add_option("--code-size", o.code_size, "numbers in the bottleneck (16)");
    app.add_option("--train-limit", o.train_limit, "use only the first N training images (0: all)");
    app.add_option("--test-limit", o.test_limit, "use only the first N test images (0: all)");
    CLI11_PARSE(app, argc, argv);
    return run_sample("autoencoder", [&] { return train(common, o); });
}
