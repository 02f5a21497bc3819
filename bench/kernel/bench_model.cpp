// --model: whole training steps of a model zoo network on the GPU (forward, cross-entropy,
// backward, SGD with momentum), float32, 3x224x224 images and 1000 classes, as a user's training
// loop runs them. Timed with CUDA events between consecutive steps, recorded without
// synchronising, so each interval is the step's time on the device including any wait for the
// host: what one step of a training loop costs. bench/model_step_torch.py is PyTorch's twin.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "bench_gpu.h"
#include "bench_suites.h"
#include "convkit/convkit.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"

namespace convkit::bench {

ModelStepResult time_model_step(const std::string& name, const Options& options) {
    const Device device = Device::cuda(options.device);
    const std::int64_t batch = options.model_batch;
    auto model = make_bench_model(name);
    model->to(device);
    model->train();
    optim::SGD sgd(model->parameters(), {.lr = 0.01, .momentum = 0.9});
    const Tensor images = Tensor::normal(Shape{batch, 3, 224, 224}, 0.0, 1.0, 1, DType::Float32, device);
    std::vector<std::int64_t> label_values(static_cast<std::size_t>(batch));
    std::mt19937_64 rng(2);
    for (auto& label : label_values) label = static_cast<std::int64_t>(rng() % 1000);
    const Tensor labels = Tensor::from_vector(Shape{batch}, label_values).to(device);
    const auto step = [&] {
        const Tensor loss = cross_entropy((*model)(images), labels);
        sgd.zero_grad();
        loss.backward();
        sgd.step();
    };
    for (int i = 0; i < std::max(options.warmup, 1); ++i) step();
    synchronize(options.device);

    const cudaStream_t stream = detail::to_cuda(current_stream(options.device));
    std::vector<cudaEvent_t> events(static_cast<std::size_t>(options.model_steps) + 1);
    for (cudaEvent_t& event : events) CONVKIT_CHECK_CUDA(cudaEventCreate(&event));
    CONVKIT_CHECK_CUDA(cudaEventRecord(events[0], stream));
    for (int i = 0; i < options.model_steps; ++i) {
        step();
        CONVKIT_CHECK_CUDA(cudaEventRecord(events[static_cast<std::size_t>(i) + 1], stream));
    }
    CONVKIT_CHECK_CUDA(cudaEventSynchronize(events.back()));
    std::vector<double> times;
    for (std::size_t i = 0; i + 1 < events.size(); ++i) {
        float ms = 0;
        CONVKIT_CHECK_CUDA(cudaEventElapsedTime(&ms, events[i], events[i + 1]));
        times.push_back(ms);
    }
    for (cudaEvent_t event : events) CONVKIT_CHECK_CUDA(cudaEventDestroy(event));
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    ModelStepResult result;
    result.model = name;
    result.batch = static_cast<int>(batch);
    result.steps = options.model_steps;
    result.median_ms = sorted[sorted.size() / 2];
    result.min_ms = sorted.front();
    result.max_ms = sorted.back();
    return result;
}

}  // namespace convkit::bench
