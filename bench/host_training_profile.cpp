// The convkit half of bench/host_training_vs_torch.py: trains the Fashion-MNIST model
// (samples/common/fashion_mnist_model.h) on the host and prints one JSON object.
//
//   bench_host_training_profile --mode steps [--width 32] [--batch 128] [--steps 20] [--profile-steps 5]
//     images/s of a training step (forward, cross-entropy, backward, Adam) on random 28x28
//     inputs (the arithmetic does not depend on the values): the median of --steps steps after
//     two warm-up steps; then a per-op, per-direction breakdown (mean ms per step) of
//     --profile-steps more steps: each module's forward timed around its call, each autograd
//     node's backward by convkit::BackwardProfiler, zero_grad and the optimizer step.
//   bench_host_training_profile --mode epoch [--data DIR] [--width 32] [--batch 128]
//     one epoch on Fashion-MNIST as the main job trains (Adam, one-cycle max lr 3e-3, no weight
//     decay, no augmentation, shuffled with seed 1), then the test accuracy.
//
// A timing, not a test: it asserts nothing about time.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/fashion_mnist_model.h"
#include "convkit/autograd_profiler.h"
#include "convkit/convkit.h"

namespace {
using namespace convkit;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Forward of `model` child by child, adding each child's wall time to `forward_seconds`
// (indexed like the children); without it, a plain call.
Tensor forward(nn::Sequential& model, const Tensor& x, std::vector<double>* forward_seconds) {
    if (forward_seconds == nullptr) return model(x);
    Tensor h = x;
    for (std::size_t i = 0; i < model.size(); ++i) {
        const auto start = Clock::now();
        h = (*model[i])(h);
        (*forward_seconds)[i] += seconds_since(start);
    }
    return h;
}

std::string json_string(const std::string& s) { return "\"" + s + "\""; }

int run_steps(std::int64_t width, std::int64_t batch, int steps, int profile_steps) {
    nn::init::manual_seed(1);
    auto model = samples::make_fashion_mnist_model(width);
    optim::Adam adam(model->parameters(), {.lr = 1e-3});
    const Tensor images = Tensor::normal(Shape{batch, 1, 28, 28}, 0, 1, 2);
    std::vector<std::int64_t> classes(static_cast<std::size_t>(batch));
    for (std::int64_t i = 0; i < batch; ++i) classes[static_cast<std::size_t>(i)] = i % 10;
    const Tensor labels = Tensor::from_vector(Shape{batch}, classes);
    model->train();

    std::vector<double> forward_seconds(model->size(), 0.0);
    double loss_forward = 0, backward_total = 0, zero_grad = 0, optimizer = 0;
    auto step = [&](bool profile) {
        auto t = Clock::now();
        adam.zero_grad();
        if (profile) zero_grad += seconds_since(t);
        const Tensor logits = forward(*model, images, profile ? &forward_seconds : nullptr);
        t = Clock::now();
        const Tensor loss = cross_entropy(logits, labels);
        if (profile) loss_forward += seconds_since(t);
        t = Clock::now();
        loss.backward();
        if (profile) backward_total += seconds_since(t);
        t = Clock::now();
        adam.step();
        if (profile) optimizer += seconds_since(t);
    };

    step(false);
    step(false);  // warm-up: first touch of buffers, the Adam state, thread pools
    std::vector<double> times;
    for (int i = 0; i < steps; ++i) {
        const auto start = Clock::now();
        step(false);
        times.push_back(seconds_since(start));
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];

    BackwardProfiler profiler;  // from here on, this thread's backward passes are timed per node
    const auto profile_start = Clock::now();
    for (int i = 0; i < profile_steps; ++i) step(true);
    const double profiled = seconds_since(profile_start);

    const double per_step_ms = 1e3 / std::max(profile_steps, 1);
    std::printf("{\"framework\": \"convkit\", \"backend\": %s, \"width\": %lld, \"batch\": %lld, \"steps\": %d,\n",
                json_string(backend_name(default_host_backend())).c_str(), static_cast<long long>(width),
                static_cast<long long>(batch), steps);
    std::printf(" \"median_step_ms\": %.3f, \"min_step_ms\": %.3f, \"max_step_ms\": %.3f, \"images_per_second\": %.1f,\n",
                median * 1e3, times.front() * 1e3, times.back() * 1e3, static_cast<double>(batch) / median);
    std::printf(" \"profiled_step_ms\": %.3f,\n \"forward_ms\": {", profiled * per_step_ms);
    for (std::size_t i = 0; i < model->size(); ++i) {
        std::printf("%s\"%zu %s\": %.3f", i == 0 ? "" : ", ", i, (*model)[i]->type_name().c_str(),
                    forward_seconds[i] * per_step_ms);
    }
    std::printf(", \"cross_entropy\": %.3f},\n \"backward_ms\": {", loss_forward * per_step_ms);
    bool first = true;
    for (const NodeTiming& t : profiler.timings()) {
        std::printf("%s%s: %.3f", first ? "" : ", ", json_string(t.name).c_str(), t.seconds * per_step_ms);
        first = false;
    }
    std::printf("},\n \"backward_total_ms\": %.3f, \"zero_grad_ms\": %.3f, \"optimizer_ms\": %.3f}\n",
                backward_total * per_step_ms, zero_grad * per_step_ms, optimizer * per_step_ms);
    return 0;
}

int run_epoch(const std::string& data_dir, std::int64_t width, std::int64_t batch) {
    const auto start = Clock::now();
    const auto train_set = data::load_fashion_mnist(data_dir, data::Split::Train);
    const auto test_set = data::load_fashion_mnist(data_dir, data::Split::Test);
    data::DataLoader train_loader(std::make_shared<data::TensorDataset>(train_set.images, train_set.labels),
                                  {.batch_size = batch, .shuffle = true, .seed = 1});
    data::DataLoader test_loader(std::make_shared<data::TensorDataset>(test_set.images, test_set.labels),
                                 {.batch_size = 500});
    nn::init::manual_seed(1);
    auto model = samples::make_fashion_mnist_model(width);
    optim::Adam adam(model->parameters(), {.lr = 3e-3});
    optim::OneCycleLR schedule(adam, 3e-3, train_loader.batches_per_epoch());
    model->train();
    const auto train_start = Clock::now();
    for (const data::Batch& b : train_loader.epoch(0)) {
        adam.zero_grad();
        cross_entropy((*model)(b.inputs), b.targets).backward();
        adam.step();
        schedule.step();
    }
    const double train_seconds = seconds_since(train_start);
    model->eval();
    NoGradGuard no_grad;
    double correct = 0;
    for (const data::Batch& b : test_loader.epoch(0)) {
        correct += accuracy((*model)(b.inputs), b.targets) * static_cast<double>(b.targets.size(0));
    }
    std::printf("{\"framework\": \"convkit\", \"width\": %lld, \"batch\": %lld, \"test_accuracy\": %.4f, "
                "\"train_seconds\": %.1f, \"train_images_per_second\": %.1f, \"total_seconds\": %.1f}\n",
                static_cast<long long>(width), static_cast<long long>(batch),
                correct / static_cast<double>(test_set.labels.size(0)), train_seconds,
                static_cast<double>(train_set.labels.size(0)) / train_seconds, seconds_since(start));
    return 0;
}
}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"convkit's half of bench/host_training_vs_torch.py: host training speed and breakdown, as JSON"};
    std::string mode = "steps";
    std::string data_dir = data::kDefaultFashionMnistDirectory;
    std::int64_t width = 32;
    std::int64_t batch = 128;
    int steps = 20;
    int profile_steps = 5;
    app.add_option("--mode", mode, "steps (images/s and breakdown) or epoch (accuracy after one epoch)")
        ->check(CLI::IsMember({"steps", "epoch"}));
    app.add_option("--data", data_dir, "Fashion-MNIST IDX folder (--mode epoch)");
    app.add_option("--width", width, "first-stage channels")->check(CLI::PositiveNumber);
    app.add_option("--batch", batch, "images per step")->check(CLI::PositiveNumber);
    app.add_option("--steps", steps, "timed steps")->check(CLI::PositiveNumber);
    app.add_option("--profile-steps", profile_steps, "profiled steps after the timed ones")
        ->check(CLI::NonNegativeNumber);
    CLI11_PARSE(app, argc, argv);
    return mode == "steps" ? run_steps(width, batch, steps, profile_steps) : run_epoch(data_dir, width, batch);
}
