// Host images per second of the Fashion-MNIST model (samples/common/fashion_mnist_model.h):
// a training step (forward, backward, Adam) and inference, on the reference backend and on
// host-blas. Random 28x28 inputs: the arithmetic does not depend on the values. Reports the
// median step time of --steps steps after one warm-up step. A timing, not a test.
//
//   bench_host_training [--width 16,32] [--batch 64] [--steps 10] [--reference-steps 2]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "common/fashion_mnist_model.h"
#include "convkit/convkit.h"

namespace {
using namespace convkit;

double median_seconds(const std::function<void()>& run, int steps) {
    run();  // warm-up: first touch of buffers, thread pools
    std::vector<double> times;
    for (int i = 0; i < steps; ++i) {
        const auto start = std::chrono::steady_clock::now();
        run();
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

struct Throughput {
    double train_images_per_second;
    double inference_images_per_second;
};

Throughput measure(std::int64_t width, std::int64_t batch, int steps) {
    nn::init::manual_seed(1);
    auto model = samples::make_fashion_mnist_model(width);
    optim::Adam adam(model->parameters(), {.lr = 1e-3});
    const Tensor images = Tensor::normal(Shape{batch, 1, 28, 28}, 0, 1, 2);
    std::vector<std::int64_t> classes(static_cast<std::size_t>(batch));
    for (std::int64_t i = 0; i < batch; ++i) classes[static_cast<std::size_t>(i)] = i % 10;
    const Tensor labels = Tensor::from_vector(Shape{batch}, classes);

    model->train();
    const double train = median_seconds(
        [&] {
            adam.zero_grad();
            cross_entropy((*model)(images), labels).backward();
            adam.step();
        },
        steps);
    model->eval();
    NoGradGuard no_grad;
    const double inference = median_seconds([&] { (void)(*model)(images); }, steps);
    return {static_cast<double>(batch) / train, static_cast<double>(batch) / inference};
}
}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Host images per second of the Fashion-MNIST model, reference vs host-blas"};
    std::vector<std::int64_t> widths{16, 32};
    std::int64_t batch = 64;
    int steps = 10;
    int reference_steps = 2;
    app.add_option("--width", widths, "first-stage channel counts to measure")->delimiter(',');
    app.add_option("--batch", batch, "images per step")->check(CLI::PositiveNumber);
    app.add_option("--steps", steps, "timed steps on host-blas")->check(CLI::PositiveNumber);
    app.add_option("--reference-steps", reference_steps, "timed steps on the (slow) reference; 0 skips it")
        ->check(CLI::NonNegativeNumber);
    CLI11_PARSE(app, argc, argv);

    std::printf("%-10s %6s %6s %18s %22s\n", "backend", "width", "batch", "train images/s", "inference images/s");
    for (std::int64_t width : widths) {
        for (Backend backend : {Backend::HostBlas, Backend::Host}) {
            const int n = backend == Backend::Host ? reference_steps : steps;
            if (n == 0) continue;
            BackendGuard guard(backend);
            const Throughput t = measure(width, batch, n);
            std::printf("%-10s %6lld %6lld %18.1f %22.1f\n", backend_name(backend), static_cast<long long>(width),
                        static_cast<long long>(batch), t.train_images_per_second, t.inference_images_per_second);
        }
    }
    return 0;
}
