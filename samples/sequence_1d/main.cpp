// Sample 4: a 1-D convolutional network that names the waveform hidden in a noisy signal.
//
// A Conv1d kernel slides along time: the same few weights test for "a sharp jump", "a straight
// ramp" or "a rounded crest" at every position, so a burst is recognised wherever it starts
// (convolution is translation-equivariant). Max-pooling makes the maps shorter and each later
// kernel see a longer stretch of signal; a global average over time at the end turns "which
// features fired, anywhere" into a fixed-size vector for the classifier, whatever the burst's
// position (the pooled network is translation-invariant).
//
//   sequence_1d [--device cuda|cpu] [--seed N] [--out DIR] [--steps N] [--noise X] ...
//
// Writes DIR/metrics.json, DIR/signals.png (test signals with their predicted waveform) and
// DIR/confusion_matrix.png. One default configuration: it takes about a minute on two CPU cores.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "common/confusion_plot.h"
#include "common/image_grid.h"
#include "common/metrics_json.h"
#include "common/png_writer.h"
#include "common/progress_bar.h"
#include "common/sample_cli.h"
#include "convkit/convkit.h"
#include "sequence_1d/waveforms.h"

namespace {

using namespace convkit;
using namespace convkit::samples;
using Clock = std::chrono::steady_clock;

struct TrainingConfig {
    std::int64_t steps = 600;  // one fresh batch each
    std::int64_t batch_size = 64;
    double learning_rate = 3e-3;  // Adam, annealed to 0 by a cosine over the steps
    std::int64_t width = 16;
    std::int64_t test_signals = 2000;
    WaveformConfig waveforms;
};

// conv(k=7) -> pool -> conv(k=5) -> pool -> conv(k=3) -> global average -> linear. With the two
// poolings the last convolution sees 7 + 2*4 + 4*2 = 23 input samples: about one period.
std::shared_ptr<nn::Sequential> make_model(std::int64_t width) {
    auto block = [](std::int64_t in, std::int64_t out, std::int64_t kernel) {
        return std::vector<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Conv1d>(in, out, kernel, ConvParams(1).set_padding(kernel / 2), false),
            std::make_shared<nn::BatchNorm1d>(out), std::make_shared<nn::ReLU>()};
    };
    auto model = std::make_shared<nn::Sequential>();
    for (auto& m : block(1, width, 7)) model->push_back(m);
    model->push_back(std::make_shared<nn::MaxPool1d>(2));
    for (auto& m : block(width, 2 * width, 5)) model->push_back(m);
    model->push_back(std::make_shared<nn::MaxPool1d>(2));
    for (auto& m : block(2 * width, 4 * width, 3)) model->push_back(m);
    model->push_back(std::make_shared<nn::GlobalAvgPool>());  // [N, 4w, L/4] -> [N, 4w, 1]: position forgotten
    model->push_back(std::make_shared<nn::Flatten>());
    model->push_back(std::make_shared<nn::Linear>(4 * width, kWaveformCount));
    return model;
}

// A signal [L] as a line chart, 2 pixels per sample, y from -2 (bottom) to 2 (top).
Image signal_image(const Tensor& signal) {
    const auto length = static_cast<int>(signal.numel());
    const int height = 48;
    Image image(2 * length, height, 3, kWhite);
    auto row = [&](double value) {
        return std::clamp(static_cast<int>(std::lround((2.0 - value) / 4.0 * (height - 1))), 0, height - 1);
    };
    for (int x = 0; x < 2 * length; ++x) image.set(x, row(0.0), {220, 220, 220});  // the zero line
    for (int t = 0; t + 1 < length; ++t) {
        const int y0 = row(signal.item(t)), y1 = row(signal.item(t + 1));
        for (int y = std::min(y0, y1); y <= std::max(y0, y1); ++y) image.set(2 * t + 1, y, {30, 60, 160});
        image.set(2 * t, y0, {30, 60, 160});
    }
    return image;
}

Image signals_picture(const SignalSet& test, const Tensor& predicted, std::int64_t count) {
    std::vector<CaptionedImage> cells;
    for (std::int64_t i = 0; i < std::min(count, test.signals.size(0)); ++i) {
        const auto truth = static_cast<std::size_t>(test.labels.item(i));
        const auto guess = static_cast<std::size_t>(predicted.item(i));
        cells.push_back({signal_image(slice(test.signals, 0, i, i + 1).reshape(Shape{test.signals.size(2)})),
                         {Caption{waveform_names()[guess], guess == truth ? kGreen : kRed},
                          Caption{waveform_names()[truth], kGray}}});
    }
    return with_title(captioned_image_grid(cells, 4), "predicted (green: right, red: wrong) / true waveform");
}

int train(const SampleOptions& common, const TrainingConfig& config) {
    const auto start = Clock::now();
    const Device device = sample_device(common);
    create_out_dir(common);
    const std::string backend = backend_name(device.is_cuda() ? default_backend() : default_host_backend());
    nn::init::manual_seed(common.seed);
    auto model = make_model(config.width);
    model->to(device);
    optim::Adam optimizer(model->parameters(), {.lr = config.learning_rate});
    optim::CosineAnnealingLR schedule(optimizer, config.steps);
    std::printf("sequence_1d: Conv1d width %lld, %lld parameters; %lld steps of %lld fresh signals of %lld samples, "
                "noise %.2f; on %s (%s)\n",
                static_cast<long long>(config.width), static_cast<long long>(model->parameter_count()),
                static_cast<long long>(config.steps), static_cast<long long>(config.batch_size),
                static_cast<long long>(config.waveforms.length), config.waveforms.noise_stddev,
                device.to_string().c_str(), backend.c_str());
    std::fflush(stdout);

    ProgressBar bar("train", config.steps);
    for (std::int64_t step = 0; step < config.steps; ++step) {
        const SignalSet batch = generate_waveforms(config.batch_size, config.waveforms, common.seed, step * config.batch_size);
        const Tensor signals = batch.signals.to(device), labels = batch.labels.to(device);
        const Tensor logits = (*model)(signals);
        const Tensor loss = cross_entropy(logits, labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        schedule.step();
        bar.step(config.batch_size, loss.to(Device::host()).item(0),
                 std::llround(accuracy(logits.detach(), labels) * static_cast<double>(config.batch_size)));
    }
    bar.finish();

    const SignalSet test = generate_waveforms(config.test_signals, config.waveforms, common.seed + 1000);
    NoGradGuard no_grad;
    model->eval();
    const Tensor logits = (*model)(test.signals.to(device)).to(Device::host());
    const double test_accuracy = accuracy(logits, test.labels);
    const Tensor confusion = confusion_matrix(logits, test.labels, kWaveformCount);
    const std::filesystem::path out(common.out_dir);
    write_png((out / "signals.png").string(), signals_picture(test, predicted_classes(logits), 8));
    write_png((out / "confusion_matrix.png").string(), confusion_matrix_image(confusion, waveform_names()).enlarged(2));
    std::vector<std::vector<std::int64_t>> rows(kWaveformCount, std::vector<std::int64_t>(kWaveformCount));
    for (std::int64_t i = 0; i < kWaveformCount; ++i)
        for (std::int64_t j = 0; j < kWaveformCount; ++j)
            rows[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)] = confusion.at<std::int64_t>({i, j});
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    write_metrics_json((out / "metrics.json").string(),
                       {{"sample", "sequence_1d"},
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
                          {"length", config.waveforms.length},
                          {"noise", config.waveforms.noise_stddev},
                          {"test_signals", config.test_signals}}},
                        {"parameters", model->parameter_count()},
                        {"train_loss", bar.mean_loss()},
                        {"train_accuracy", bar.accuracy()},
                        {"train_signals_per_second", bar.images_per_second()},
                        {"test_accuracy", test_accuracy},
                        {"class_names", waveform_names()},
                        {"confusion_matrix", rows},
                        {"seconds", seconds}});
    std::printf("sequence_1d: test accuracy %.4f on %lld signals, in %.0f s\n", test_accuracy,
                static_cast<long long>(config.test_signals), seconds);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Conv1d classification of noisy, time-shifted waveforms"};
    SampleOptions common;
    add_sample_options(app, common, "sequence_1d-out");
    TrainingConfig config;
    app.add_option("--steps", config.steps, "training steps, one fresh batch each")->capture_default_str();
    app.add_option("--batch-size", config.batch_size)->capture_default_str();
    app.add_option("--lr", config.learning_rate, "Adam's initial learning rate")->capture_default_str();
    app.add_option("--width", config.width, "channels of the first convolution")->capture_default_str();
    app.add_option("--length", config.waveforms.length, "samples per signal")->capture_default_str();
    app.add_option("--noise", config.waveforms.noise_stddev, "standard deviation of the noise")->capture_default_str();
    app.add_option("--test-signals", config.test_signals)->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    return run_sample("sequence_1d", [&] { return train(common, config); });
}
