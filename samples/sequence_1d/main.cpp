// Sample 4: a 1-D convolutional network that names the waveform hidden in a noisy signal.
//
// A Conv1d kernel slides along time: the same few weights test for "a sharp jump", "a straight
// ramp" or "a rounded crest" at every position, so a burst is recognised wherever it starts
// (convolution is translation-equivariant). Max-pooling makes the maps shorter and each later
// kernel see a longer stretch of signal; a global average over time at the end turns "which
// features fired, anywhere" into a fixed-size vector for the classifier, whatever the burst's
// position (the pooled network is translation-invariant).
//
//   convkit_sequence_1d [--device cuda|cpu] [--seed N] [--out DIR] [--steps N] ...
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "convkit/convkit.h"
#include "sequence_1d/waveforms.h"

using namespace convkit;
using namespace convkit::samples;

namespace {

struct Config {
    std::string device = cuda_is_available() ? "cuda" : "cpu";
    std::uint64_t seed = 1;
    std::string out = "sequence_1d_out";
    std::int64_t steps = 600;
    std::int64_t batch_size = 64;
    double learning_rate = 3e-3;
    std::int64_t width = 16;
    std::int64_t test_signals = 2000;
    WaveformConfig waveforms;
};

// conv(k=7) -> pool -> conv(k=5) -> pool -> conv(k=3) -> global average -> linear. With the two
// poolings the last convolution sees 7 + 2*4 + 4*2 = 23 input samples: about a period or two.
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
    model->push_back(std::make_shared<nn::GlobalAvgPool>());  // [N, 4w, L/4] -> [N, 4w, 1]
    model->push_back(std::make_shared<nn::Flatten>());
    model->push_back(std::make_shared<nn::Linear>(4 * width, kWaveformCount));
    return model;
}

// Accuracy and confusion matrix (rows: true waveform, columns: predicted) on the test set.
std::pair<double, Tensor> evaluate(nn::Module& model, const SignalSet& test, Device device) {
    NoGradGuard no_grad;
    model.eval();
    const Tensor logits = model(test.signals.to(device));
    model.train();
    return {accuracy(logits, test.labels.to(device)), confusion_matrix(logits, test.labels.to(device), kWaveformCount)};
}

int run(const Config& config) {
    const Device device = config.device == "cuda" ? Device::cuda() : Device::host();
    auto model = make_model(config.width);
    model->to(device);
    std::printf("Conv1d classifier, width %lld: %lld parameters, signals of %lld samples, %s\n",
                static_cast<long long>(config.width), static_cast<long long>(model->parameter_count()),
                static_cast<long long>(config.waveforms.length), device.to_string().c_str());
    optim::Adam optimizer(model->parameters(), {.lr = config.learning_rate});
    optim::CosineAnnealingLR schedule(optimizer, config.steps);
    const SignalSet test = generate_waveforms(config.test_signals, config.waveforms, config.seed + 1000);

    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t step = 0; step < config.steps; ++step) {
        const SignalSet batch = generate_waveforms(config.batch_size, config.waveforms, config.seed, step * config.batch_size);
        const Tensor signals = batch.signals.to(device), labels = batch.labels.to(device);
        const Tensor logits = (*model)(signals);
        const Tensor loss = cross_entropy(logits, labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        schedule.step();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (step % 50 == 0 || step + 1 == config.steps)  // TODO(common): the progress bar
            std::printf("step %lld/%lld loss %.4f acc %.4f %.1f signals/s\n", static_cast<long long>(step + 1),
                        static_cast<long long>(config.steps), loss.item(0), accuracy(logits.detach(), labels),
                        static_cast<double>((step + 1) * config.batch_size) / seconds);
    }
    const auto [test_accuracy, confusion] = evaluate(*model, test, device);
    std::printf("confusion (rows true, columns predicted: sine square triangle sawtooth):\n%s\n",
                confusion.to_string().c_str());
    std::printf("sequence_1d: test accuracy %.4f on %lld signals (%lld steps)\n", test_accuracy,
                static_cast<long long>(config.test_signals), static_cast<long long>(config.steps));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Config config;
    CLI::App app{"Conv1d classification of noisy, time-shifted waveforms"};
    app.add_option("--device", config.device)->check(CLI::IsMember({"cuda", "cpu"}));
    app.add_option("--seed", config.seed);
    app.add_option("--out", config.out);
    app.add_option("--steps", config.steps, "training steps (one fresh batch each)");
    app.add_option("--batch-size", config.batch_size);
    app.add_option("--lr", config.learning_rate);
    app.add_option("--width", config.width);
    app.add_option("--length", config.waveforms.length, "samples per signal");
    app.add_option("--noise", config.waveforms.noise_stddev);
    app.add_option("--test-signals", config.test_signals);
    CLI11_PARSE(app, argc, argv);
    try {
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
