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
// to the direction (moving_shapes.h). It can tell horizontal from vertical, not left from
// right: about 50%, where the Conv3d network gets nearly 100%.
//
//   convkit_video_3d [--device cuda|cpu] [--seed N] [--out DIR] [--steps N] ...
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "convkit/convkit.h"
#include "video_3d/moving_shapes.h"

using namespace convkit;
using namespace convkit::samples;

namespace {

struct Config {
    std::string device = cuda_is_available() ? "cuda" : "cpu";
    std::uint64_t seed = 1;
    std::string out = "video_3d_out";
    std::int64_t steps = 400;
    std::int64_t batch_size = 32;
    double learning_rate = 3e-3;
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

double train_and_test(const char* name, nn::Module& model, const Config& config, Device device) {
    model.to(device);
    std::printf("%s: %lld parameters\n", name, static_cast<long long>(model.parameter_count()));
    optim::Adam optimizer(model.parameters(), {.lr = config.learning_rate});
    optim::CosineAnnealingLR schedule(optimizer, config.steps);
    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t step = 0; step < config.steps; ++step) {
        // Both models see the same stream of clips (same seed): a fair comparison.
        const ClipSet batch = generate_clips(config.batch_size, config.clips, config.seed, step * config.batch_size);
        const Tensor clips = batch.clips.to(device), labels = batch.labels.to(device);
        const Tensor logits = model(clips);
        const Tensor loss = cross_entropy(logits, labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        schedule.step();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (step % 50 == 0 || step + 1 == config.steps)  // TODO(common): the progress bar
            std::printf("  step %lld/%lld loss %.4f acc %.4f %.1f clips/s\n", static_cast<long long>(step + 1),
                        static_cast<long long>(config.steps), loss.item(0), accuracy(logits.detach(), labels),
                        static_cast<double>((step + 1) * config.batch_size) / seconds);
    }
    const ClipSet test = generate_clips(config.test_clips, config.clips, config.seed + 1000);
    NoGradGuard no_grad;
    model.eval();
    const Tensor logits = model(test.clips.to(device));
    return accuracy(logits, test.labels.to(device));
}

int run(const Config& config) {
    const Device device = config.device == "cuda" ? Device::cuda() : Device::host();
    std::printf("clips of %lld frames of %lldx%lld, %s\n", static_cast<long long>(config.clips.frames),
                static_cast<long long>(config.clips.frame_size), static_cast<long long>(config.clips.frame_size),
                device.to_string().c_str());
    auto conv3d = make_conv3d_model(config.width);
    const double accuracy_3d = train_and_test("Conv3d network", *conv3d, config, device);
    FrameByFrameNet frame_net(config.width);
    const double accuracy_2d = train_and_test("per-frame Conv2d network", frame_net, config, device);
    std::printf("video_3d: direction accuracy Conv3d %.4f, per-frame Conv2d %.4f (chance 0.25) on %lld clips\n",
                accuracy_3d, accuracy_2d, static_cast<long long>(config.test_clips));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Config config;
    CLI::App app{"Conv3d classification of the direction of motion in generated clips"};
    app.add_option("--device", config.device)->check(CLI::IsMember({"cuda", "cpu"}));
    app.add_option("--seed", config.seed);
    app.add_option("--out", config.out);
    app.add_option("--steps", config.steps, "training steps of each model (one fresh batch each)");
    app.add_option("--batch-size", config.batch_size);
    app.add_option("--lr", config.learning_rate);
    app.add_option("--width", config.width);
    app.add_option("--frames", config.clips.frames);
    app.add_option("--frame-size", config.clips.frame_size, "a multiple of 4");
    app.add_option("--test-clips", config.test_clips);
    CLI11_PARSE(app, argc, argv);
    try {
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
