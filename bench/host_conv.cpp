// A rough timing of the host convolution backends: the reference against host-blas (im2col +
// OpenBLAS + OpenMP), float32, for two small CNN layers, every pass. Checks the answers agree
// before timing; prints the median of a few runs and images per second. Numbers from a shared
// machine are rough: see docs/host-backend.md for how they were taken.
//
//   bench_host_conv [repetitions]      (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS as usual)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "backends/host/blas.h"
#include "convkit/convkit.h"

namespace {
using namespace convkit;

struct Layer {
    const char* name;
    Shape input;
    Shape weight;
    ConvParams params;
};

double median_seconds(const std::function<void()>& run, int repetitions) {
    run();  // warm-up: first-touch of buffers, OpenBLAS and OpenMP thread start
    std::vector<double> times;
    for (int i = 0; i < repetitions; ++i) {
        const auto start = std::chrono::steady_clock::now();
        run();
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

double relative_difference(const Tensor& a, const Tensor& b) {
    const std::vector<double> va = a.to_vector();
    const std::vector<double> vb = b.to_vector();
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < va.size(); ++i) {
        diff += (va[i] - vb[i]) * (va[i] - vb[i]);
        norm += vb[i] * vb[i];
    }
    return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}
}  // namespace

int main(int argc, char** argv) {
    const int repetitions = argc > 1 ? std::atoi(argv[1]) : 5;
    const std::vector<Layer> layers = {
        {"conv1 [64,1,28,28] x [32,1,3,3] p1", Shape{64, 1, 28, 28}, Shape{32, 1, 3, 3}, ConvParams(2).set_padding(1)},
        {"conv2 [64,32,14,14] x [64,32,3,3] p1", Shape{64, 32, 14, 14}, Shape{64, 32, 3, 3},
         ConvParams(2).set_padding(1)},
    };
    std::printf("%-38s %-16s %12s %12s %12s %9s\n", "layer", "pass", "reference ms", "host-blas ms", "blas img/s",
                "speed-up");
    for (const Layer& layer : layers) {
        const Tensor x = Tensor::normal(layer.input, 0, 1, 1, DType::Float32);
        const Tensor w = Tensor::normal(layer.weight, 0, 0.1, 2, DType::Float32);
        const Tensor b = Tensor::normal(Shape{layer.weight[0]}, 0, 0.1, 3, DType::Float32);
        const Shape out_shape = conv_output_shape(layer.input, layer.weight, layer.params);
        const Tensor dy = Tensor::normal(out_shape, 0, 1, 4, DType::Float32);
        const std::vector<std::pair<const char*, std::function<Tensor()>>> passes = {
            {"forward", [&] { return conv_forward(x, w, b, layer.params); }},
            {"backward data", [&] { return conv_backward_data(dy, w, layer.input, layer.params); }},
            {"backward filter", [&] { return conv_backward_filter(dy, x, layer.weight, layer.params); }},
        };
        for (const auto& [pass, run] : passes) {
            Tensor reference, blas;
            {
                BackendGuard guard(Backend::Host);
                reference = run();
            }
            {
                BackendGuard guard(Backend::HostBlas);
                blas = run();
            }
            const double difference = relative_difference(blas, reference);
            if (!(difference < 1e-5)) {
                std::fprintf(stderr, "%s %s: host-blas differs from the reference by %g\n", layer.name, pass,
                             difference);
                return 1;
            }
            double seconds[2];
            for (Backend backend : {Backend::Host, Backend::HostBlas}) {
                BackendGuard guard(backend);
                seconds[backend == Backend::HostBlas] = median_seconds([&] { (void)run(); }, repetitions);
            }
            const double images = static_cast<double>(layer.input[0]);
            std::printf("%-38s %-16s %12.2f %12.2f %12.0f %8.1fx\n", layer.name, pass, seconds[0] * 1e3,
                        seconds[1] * 1e3, images / seconds[1], seconds[0] / seconds[1]);
        }
    }
    // After the runs: host-blas sets a pthread OpenBLAS to one thread at its first call.
    std::printf("%s\n", host::blas_info().c_str());
    return 0;
}
