// --model: whole training steps of a model zoo network on the GPU (forward, cross-entropy,
// backward, SGD with momentum), float32, 3x224x224 images and 1000 classes, as a user's training
// loop runs them. Timed with CUDA events between consecutive steps, recorded without
// synchronising, so each interval is the step's time on the device including any wait for the
// host: what one step of a training loop costs. bench/model_step_torch.py is PyTorch's twin.
// With --inference: forwards in evaluation mode, bfloat16 channels-last, unfolded and (ResNets)
// with the BatchNorms folded into the convolutions, timed the same way.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "bench_gpu.h"
#include "bench_stats.h"
#include "bench_suites.h"
#include "convkit/convkit.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"

namespace convkit::bench {

namespace {
// Times `step` as a training loop runs it: after --warmup untimed calls, --steps calls with a
// CUDA event recorded after each and no synchronisation between them, so each interval is what
// one call costs on the device, waits for the host included.
ModelStepResult time_steps(const std::function<void()>& step, const Options& options) {
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
    std::sort(times.begin(), times.end());
    ModelStepResult result;
    result.batch = options.model_batch;
    result.steps = options.model_steps;
    result.median_ms = times[times.size() / 2];
    result.min_ms = times.front();
    result.max_ms = times.back();
    return result;
}
}  // namespace

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
    ModelStepResult result = time_steps(
        [&] {
            const Tensor loss = cross_entropy((*model)(images), labels);
            sgd.zero_grad();
            loss.backward();
            sgd.step();
        },
        options);
    result.model = name;
    return result;
}

namespace {
// Relative L2 difference of two results (bench_stats.h), summed in float32 on their device.
double relative_difference(const Tensor& got, const Tensor& expected) {
    const Tensor a = got.to(DType::Float32), b = expected.to(DType::Float32);
    return relative_l2_error(sum(square(a - b)).to_vector()[0], sum(square(b)).to_vector()[0]);
}
}  // namespace

std::vector<ModelStepResult> time_model_inference(const std::string& name, const Options& options) {
    // Folding rounds differently from normalising after the convolution: within bfloat16's reach.
    constexpr double kFoldedTolerance = 5e-2;
    const Device device = Device::cuda(options.device);
    auto model = make_bench_model(name);
    model->eval();
    model->to(DType::BFloat16);
    model->to(device);
    const Tensor images = Tensor::normal(Shape{options.model_batch, 3, 224, 224}, 0.0, 1.0, 1, DType::BFloat16, device)
                              .to(MemoryFormat::ChannelsLast);
    const NoGradGuard no_grad;
    const auto labelled = [&](ModelStepResult result, const char* mode) {
        result.model = name;
        result.mode = mode;
        result.dtype = "bf16";
        result.batch = options.model_batch;
        return result;
    };
    const auto timed = [&](const char* mode) {
        return labelled(time_steps([&] { (void)(*model)(images); }, options), mode);
    };
    std::vector<ModelStepResult> results{timed("inference")};
    auto* resnet = dynamic_cast<models::ResNet*>(model.get());
    if (resnet == nullptr) return results;
    // The folded model is timed only if it computes what the unfolded one does.
    const Tensor unfolded = (*model)(images);
    resnet->fold_batch_norms();
    const double difference = relative_difference((*model)(images), unfolded);
    if (!(difference <= kFoldedTolerance)) {  // NaN included
        ModelStepResult mismatch = labelled({}, "inference folded");
        mismatch.status = "mismatch: the folded model's logits differ from the unfolded ones' by " +
                          std::to_string(difference) + " (relative L2; not timed)";
        results.push_back(mismatch);
        return results;
    }
    results.push_back(timed("inference folded"));
    return results;
}

}  // namespace convkit::bench
