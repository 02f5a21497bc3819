// Sample 5: a 3-D convolutional network that tells which way a square moves in a short clip,
// next to a per-frame 2-D network that cannot.
//
// Why Conv3d sees motion: its kernel spans time as well as space (3 frames x 3 x 3 pixels), so a
// single weight pattern can compare a frame with the next one. A kernel whose weights are
// positive at (t, x) and at (t+1, x+1) and negative elsewhere answers "something bright moved
// right here": an oriented edge in the x-t plane, which is what motion looks like when a clip
// is seen as a 3-D block of pixels. The 2-D network applies the very same kind of layers to
// each frame on its own and averages the frames' features: whatever it computes is the same
// for the frames in any order, and the clips are generated so that the order is the only clue
// to the direction (moving_shapes.h). Its global average pooling per frame also forgets where
// the square is, so it cannot even tell a horizontal path from a vertical one: it stays near
// chance (25%), where the Conv3d network gets nearly 100%. (Without that pooling, a per-frame
// network could at best learn the axis from the frames' spread: 50%.)
//
//   video_3d [--device cuda|cpu] [--seed N] [--out DIR] [--steps N] ...
//
// Writes DIR/metrics.json and DIR/clips.png (test clips, frame by frame, with both models'
// answers). One default configuration for both devices.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "common/image_grid.h"
#include "common/metrics_json.h"
#include "common/png_writer.h"
#include "common/progress_bar.h"
#include "common/sample_cli.h"
#include "convkit/convkit.h"
#include "video_3d/moving_shapes.h"

namespace {

using namespace convkit;
using namespace convkit::samples;
using Clock = std::chrono::steady_clock;

struct TrainingConfig {
    std::int64_t steps = 300;  // per model, one fresh batch each
    std::int64_t batch_size = 32;
    double learning_rate = 3e-3;  // Adam, annealed to 0 by a cosine over the steps
    std::int64_t width = 8;
    std::int64_t test_clips = 512;
    ClipConfig clips;
};

using Layers = std::vector<std::shared_ptr<nn::Module>>;

// Conv -> BatchNorm -> ReLU, 3x3 (x3 in time) with padding 1 so sizes are kept.
Layers conv3d_block(std::int64_t in, std::int64_t out) {
    return {std::make_shared<nn::Conv3d>(in, out, 3, ConvParams(3).set_padding(1), false),
            std::make_shared<nn::BatchNorm3d>(out), std::make_shared<nn::ReLU>()};
}
Layers conv2d_block(std::int64_t in, std::int64_t out) {
    return {std::make_shared<nn::Conv2d>(in, out, 3, ConvParams(2).set_padding(1), false),
            std::make_shared<nn::BatchNorm2d>(out), std::make_shared<nn::ReLU>()};
}
void append(nn::Sequential& model, const Layers& layers) {
    for (const auto& layer : layers) model.push_back(layer);
}

// Clip [N, 1, T, H, W] -> three conv blocks over (time, height, width) -> global average ->
// direction scores. The first pooling is 1x2x2: it halves the frames but keeps every time
// step, so the second block can still compare neighbouring frames.
std::shared_ptr<nn::Sequential> make_conv3d_model(std::int64_t width) {
    auto model = std::make_shared<nn::Sequential>();
    append(*model, conv3d_block(1, width));
    model->push_back(std::make_shared<nn::MaxPool3d>(nn::KernelSize{1, 2, 2}));
    append(*model, conv3d_block(width, 2 * width));
    model->push_back(std::make_shared<nn::MaxPool3d>(2));
    append(*model, conv3d_block(2 * width, 4 * width));
    model->push_back(std::make_shared<nn::GlobalAvgPool>());
    model->push_back(std::make_shared<nn::Flatten>());
    model->push_back(std::make_shared<nn::Linear>(4 * width, kDirectionCount));
    return model;
}

// The same layers in 2-D, run on every frame separately: frames become batch entries, and the
// per-frame feature vectors are averaged over time before the classifier. Averaging is blind
// to order, so this network cannot see motion however long it trains.
class FrameByFrameNet : public nn::Module {
public:
    explicit FrameByFrameNet(std::int64_t width)
        : features_(register_module("features", std::make_shared<nn::Sequential>())),
          classifier_(register_module("classifier", std::make_shared<nn::Linear>(4 * width, kDirectionCount))),
          feature_count_(4 * width) {
        append(*features_, conv2d_block(1, width));
        features_->push_back(std::make_shared<nn::MaxPool2d>(2));
        append(*features_, conv2d_block(width, 2 * width));
        features_->push_back(std::make_shared<nn::MaxPool2d>(2));
        append(*features_, conv2d_block(2 * width, 4 * width));
        features_->push_back(std::make_shared<nn::GlobalAvgPool>());
    }
    Tensor forward(const Tensor& clips) override {
        const std::int64_t n = clips.size(0), t = clips.size(2), h = clips.size(3), w = clips.size(4);
        // [N, 1, T, H, W] -> [N*T, 1, H, W]: with one channel, each frame is already contiguous.
        const Tensor frames = clips.reshape(Shape{n * t, 1, h, w});
        const Tensor per_frame = (*features_)(frames).reshape(Shape{n, t, feature_count_});
        return (*classifier_)(mean(per_frame, {1}));  // [N, 4w]: the same for any frame order
    }
    std::string type_name() const override { return "FrameByFrameNet"; }

private:
    std::shared_ptr<nn::Sequential> features_;
    std::shared_ptr<nn::Linear> classifier_;
    std::int64_t feature_count_;
};

struct Result {
    double test_accuracy = 0;
    Tensor predicted;  // int64 [test clips]
    double train_loss = 0;
    double train_clips_per_second = 0;
};

Result train_and_test(const char* label, nn::Module& model, const TrainingConfig& config, const ClipSet& test,
                      std::uint64_t seed, Device device) {
    model.to(device);
    optim::Adam optimizer(model.parameters(), {.lr = config.learning_rate});
    optim::CosineAnnealingLR schedule(optimizer, config.steps);
    ProgressBar bar(label, config.steps);
    for (std::int64_t step = 0; step < config.steps; ++step) {
        // Both models see the same stream of clips (same seed): a fair comparison.
        const ClipSet batch = generate_clips(config.batch_size, config.clips, seed, step * config.batch_size);
        const Tensor clips = batch.clips.to(device), labels = batch.labels.to(device);
        const Tensor logits = model(clips);
        const Tensor loss = cross_entropy(logits, labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        schedule.step();
        bar.step(config.batch_size, loss.to(Device::host()).item(0),
                 std::llround(accuracy(logits.detach(), labels) * static_cast<double>(config.batch_size)));
    }
    bar.finish();
    NoGradGuard no_grad;
    model.eval();
    const Tensor logits = model(test.clips.to(device)).to(Device::host());
    return {accuracy(logits, test.labels), predicted_classes(logits), bar.mean_loss(), bar.images_per_second()};
}

// A clip [1, T, H, W] as its frames side by side, 1 pixel apart.
Image clip_strip(const Tensor& clip) {
    const std::int64_t frames = clip.size(1), size = clip.size(2);
    Image strip(static_cast<int>(frames * (size + 1) - 1), static_cast<int>(size), 3, kWhite);
    for (std::int64_t t = 0; t < frames; ++t)
        strip.paste(image_from_tensor(slice(clip, 1, t, t + 1).reshape(Shape{size, size}), -0.2, 1.3),
                    static_cast<int>(t * (size + 1)), 0);
    return strip.enlarged(3);
}

Image clips_picture(const ClipSet& test, const Result& conv3d, const Result& per_frame, std::int64_t count) {
    std::vector<CaptionedImage> cells;
    const auto& names = direction_names();
    for (std::int64_t i = 0; i < std::min(count, test.clips.size(0)); ++i) {
        const auto truth = static_cast<std::size_t>(test.labels.item(i));
        const auto guess_3d = static_cast<std::size_t>(conv3d.predicted.item(i));
        const auto guess_2d = static_cast<std::size_t>(per_frame.predicted.item(i));
        const Tensor clip = slice(test.clips, 0, i, i + 1).reshape(
            Shape{1, test.clips.size(2), test.clips.size(3), test.clips.size(4)});
        cells.push_back({clip_strip(clip),
                         {Caption{"true: " + names[truth], kBlack},
                          Caption{"Conv3d: " + names[guess_3d], guess_3d == truth ? kGreen : kRed},
                          Caption{"per-frame 2D: " + names[guess_2d], guess_2d == truth ? kGreen : kRed}}});
    }
    return with_title(captioned_image_grid(cells, 2), "frames left to right; answers green when right, red when wrong");
}

int train(const SampleOptions& common, const TrainingConfig& config) {
    const auto start = Clock::now();
    const Device device = sample_device(common);
    if (config.clips.frame_size % 4 != 0 || config.clips.frame_size < config.clips.square_size + config.clips.frames - 1)
        throw InvalidArgument("video_3d: --frame-size must be a multiple of 4 and leave the square room to travel, got " +
                              std::to_string(config.clips.frame_size));
    create_out_dir(common);
    const std::string backend = backend_name(device.is_cuda() ? default_backend() : default_host_backend());
    nn::init::manual_seed(common.seed);
    auto conv3d = make_conv3d_model(config.width);
    FrameByFrameNet per_frame(config.width);
    std::printf("video_3d: clips of %lld frames of %lldx%lld; Conv3d network %lld parameters, per-frame Conv2d "
                "network %lld; %lld steps of %lld fresh clips each; on %s (%s)\n",
                static_cast<long long>(config.clips.frames), static_cast<long long>(config.clips.frame_size),
                static_cast<long long>(config.clips.frame_size), static_cast<long long>(conv3d->parameter_count()),
                static_cast<long long>(per_frame.parameter_count()), static_cast<long long>(config.steps),
                static_cast<long long>(config.batch_size), device.to_string().c_str(), backend.c_str());
    std::fflush(stdout);
    const ClipSet test = generate_clips(config.test_clips, config.clips, common.seed + 1000);
    const Result result_3d = train_and_test("Conv3d", *conv3d, config, test, common.seed, device);
    const Result result_2d = train_and_test("per-frame 2D", per_frame, config, test, common.seed, device);

    const std::filesystem::path out(common.out_dir);
    write_png((out / "clips.png").string(), clips_picture(test, result_3d, result_2d, 6));
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    write_metrics_json((out / "metrics.json").string(),
                       {{"sample", "video_3d"},
                        {"device", device.to_string()},
                        {"backend", backend},
                        {"seed", common.seed},
                        {"config",
                         {{"steps", config.steps},
                          {"batch_size", config.batch_size},
                          {"optimizer", "Adam"},
                          {"schedule", "cosine"},
                          {"lr", config.learning_rate},
                          {"width", config.width},
                          {"frames", config.clips.frames},
                          {"frame_size", config.clips.frame_size},
                          {"test_clips", config.test_clips}}},
                        {"conv3d",
                         {{"parameters", conv3d->parameter_count()},
                          {"train_loss", result_3d.train_loss},
                          {"train_clips_per_second", result_3d.train_clips_per_second},
                          {"test_accuracy", result_3d.test_accuracy}}},
                        {"per_frame_2d",
                         {{"parameters", per_frame.parameter_count()},
                          {"train_loss", result_2d.train_loss},
                          {"train_clips_per_second", result_2d.train_clips_per_second},
                          {"test_accuracy", result_2d.test_accuracy}}},
                        {"class_names", direction_names()},
                        {"seconds", seconds}});
    std::printf("video_3d: direction accuracy Conv3d %.4f, per-frame Conv2d %.4f (chance 0.25) on %lld test clips, "
                "in %.0f s\n",
                result_3d.test_accuracy, result_2d.test_accuracy, static_cast<long long>(config.test_clips), seconds);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Conv3d classification of the direction of motion in generated clips, against a per-frame 2D network"};
    SampleOptions common;
    add_sample_options(app, common, "video_3d-out");
    TrainingConfig config;
    app.add_option("--steps", config.steps, "training steps of each model, one fresh batch each")->capture_default_str();
    app.add_option("--batch-size", config.batch_size)->capture_default_str();
    app.add_option("--lr", config.learning_rate, "Adam's initial learning rate")->capture_default_str();
    app.add_option("--width", config.width, "channels of the first convolution")->capture_default_str();
    app.add_option("--frames", config.clips.frames)->capture_default_str();
    app.add_option("--frame-size", config.clips.frame_size, "a multiple of 4")->capture_default_str();
    app.add_option("--test-clips", config.test_clips)->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    return run_sample("video_3d", [&] { return train(common, config); });
}
