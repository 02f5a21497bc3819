// CUDA graphs (issue #15, "Framework overhead"): a training step captured once (CapturedStep) and
// replayed gives the same losses and parameters as the same steps run eagerly, bit for bit on the
// emulated device (one fixed thread schedule per run, deterministic kernels, the same launches in
// the same order); replays make no host wait; the graph's memory pool is private and released
// with it; what cannot be replayed is refused at capture, naming it. Then the emulated runtime's
// capture semantics themselves (cudaStreamBeginCapture ... cudaGraphLaunch), as on a GPU.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "convkit/captured_step.h"
#include "convkit/convkit.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/host_waits.h"
#include "small_cnn.h"
#include "test_util.h"
#ifdef CONVKIT_EMULATED_DEVICE
#include "emu/emulated_runtime.h"
#endif

namespace convkit {
namespace {

using testing::small_cnn;

class CudaGraph : public testing::WithCuda<> {};

constexpr std::int64_t kBatch = 8, kSteps = 5;

struct Batches {
    std::vector<Tensor> images, labels;  // on the device
};

Batches make_batches(std::uint64_t seed) {
    Batches b;
    for (std::int64_t s = 0; s < kSteps; ++s) {
        b.images.push_back(Tensor::uniform(Shape{kBatch, 1, 8, 8}, -1.0, 1.0, seed + 1 + static_cast<std::uint64_t>(s))
                               .to(Device::cuda()));
        Tensor labels = Tensor::empty(Shape{kBatch}, DType::Int64);
        for (std::int64_t i = 0; i < kBatch; ++i) labels.data<std::int64_t>()[i] = (i * 5 + s) % 3;
        b.labels.push_back(labels.to(Device::cuda()));
    }
    return b;
}

// An optimizer and its learning-rate schedule over a model's parameters.
struct Training {
    std::unique_ptr<optim::Optimizer> optimizer;
    std::unique_ptr<optim::LRScheduler> schedule;
};
using MakeTraining = std::function<Training(std::vector<Tensor>)>;

Training adam_cosine(std::vector<Tensor> parameters) {
    Training t;
    t.optimizer = std::make_unique<optim::Adam>(std::move(parameters), optim::AdamOptions{.lr = 1e-2});
    t.schedule = std::make_unique<optim::CosineAnnealingLR>(*t.optimizer, kSteps);
    return t;
}

Training sgd_momentum_step_lr(std::vector<Tensor> parameters) {
    Training t;
    t.optimizer = std::make_unique<optim::SGD>(std::move(parameters),
                                               optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
    t.schedule = std::make_unique<optim::StepLR>(*t.optimizer, 2, 0.5);
    return t;
}

struct Outcome {
    std::vector<double> losses;
    std::vector<std::vector<double>> state;  // parameters and buffers, by name
};

std::vector<std::vector<double>> model_state(const nn::Module& model) {
    std::vector<std::vector<double>> state;
    for (const auto& [name, tensor] : model.state_dict()) state.push_back(tensor.to(Device::host()).to_vector());
    return state;
}

using MakeModel = std::function<std::shared_ptr<nn::Sequential>()>;

std::shared_ptr<nn::Sequential> small_cnn_with_dropout() {
    return small_cnn(0.3);
}

Outcome train_eagerly(
    std::uint64_t seed, const Batches& batches, const MakeTraining& make,
    const MakeModel& make_model = [] { return small_cnn(); }) {
    nn::init::manual_seed(seed);
    auto model = make_model();
    model->to(Device::cuda());
    Training t = make(model->parameters());
    Outcome out;
    for (std::int64_t s = 0; s < kSteps; ++s) {
        t.optimizer->zero_grad();
        Tensor loss = cross_entropy((*model)(batches.images[s]), batches.labels[s]);
        loss.backward();
        t.optimizer->step();
        t.schedule->step();
        out.losses.push_back(loss.to(Device::host()).item(0));
    }
    out.state = model_state(*model);
    return out;
}

// The same steps: the first as the warm-up, the capture, then kSteps - 1 replays. `check` sees
// the graph after the replays, before it is destroyed.
Outcome train_captured(
    std::uint64_t seed, const Batches& batches, const MakeTraining& make,
    const std::function<void(CapturedStep&)>& check = {}, const MakeModel& make_model = [] { return small_cnn(); }) {
    nn::init::manual_seed(seed);
    auto model = make_model();
    model->to(Device::cuda());
    Training t = make(model->parameters());
    Tensor images = Tensor::empty(Shape{kBatch, 1, 8, 8}, DType::Float32, Device::cuda());
    Tensor labels = Tensor::empty(Shape{kBatch}, DType::Int64, Device::cuda());
    Tensor step_loss = Tensor::empty(Shape{}, DType::Float32, Device::cuda());
    images.copy_(batches.images[0]);
    labels.copy_(batches.labels[0]);
    Outcome out;
    {
        CapturedStep step([&] {
            t.optimizer->zero_grad();
            Tensor loss = cross_entropy((*model)(images), labels);
            loss.backward();
            t.optimizer->step();
            step_loss.copy_(loss.detach());
        });
        t.schedule->step();
        out.losses.push_back(step_loss.to(Device::host()).item(0));
        for (std::int64_t s = 1; s < kSteps; ++s) {
            images.copy_(batches.images[s]);
            labels.copy_(batches.labels[s]);
            step.replay();
            t.schedule->step();
            out.losses.push_back(step_loss.to(Device::host()).item(0));
        }
        EXPECT_EQ(step.replays(), kSteps - 1);
        if (check) check(step);
    }
    out.state = model_state(*model);
    return out;
}

void expect_same_training(const Outcome& eager, const Outcome& captured) {
    ASSERT_EQ(eager.losses.size(), static_cast<std::size_t>(kSteps));
    for (double loss : eager.losses) EXPECT_TRUE(std::isfinite(loss));
    // The steps must train: a replay that ran nothing would repeat the warm-up's loss.
    EXPECT_NE(eager.losses.front(), eager.losses.back());
    EXPECT_EQ(captured.losses, eager.losses);
    ASSERT_EQ(captured.state.size(), eager.state.size());
    for (std::size_t i = 0; i < eager.state.size(); ++i) EXPECT_EQ(captured.state[i], eager.state[i]) << "tensor " << i;
}

TEST_F(CudaGraph, ReplayedAdamStepsWithACosineScheduleMatchEagerStepsExactly) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Batches batches = make_batches(seed);
    expect_same_training(train_eagerly(seed, batches, adam_cosine), train_captured(seed, batches, adam_cosine));
}

TEST_F(CudaGraph, ReplayedSgdNesterovStepsWithAStepScheduleMatchEagerStepsExactly) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Batches batches = make_batches(seed);
    expect_same_training(train_eagerly(seed, batches, sgd_momentum_step_lr),
                         train_captured(seed, batches, sgd_momentum_step_lr));
}

TEST_F(CudaGraph, ReplayedStepsWithDropoutDrawTheEagerMasks) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Batches batches = make_batches(seed);
    expect_same_training(train_eagerly(seed, batches, adam_cosine, small_cnn_with_dropout),
                         train_captured(seed, batches, adam_cosine, {}, small_cnn_with_dropout));
}

std::uint64_t all_host_waits() {
#ifdef CONVKIT_EMULATED_DEVICE
    return detail::host_waits() + emu::host_synchronisations();
#else
    return detail::host_waits();
#endif
}

TEST_F(CudaGraph, ReplaysMakeNoHostWaitAndTheOptimizerCountsTheirSteps) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    nn::init::manual_seed(seed);
    auto model = small_cnn();
    model->to(Device::cuda());
    optim::Adam adam(model->parameters(), {.lr = 1e-2});
    const Tensor images = Tensor::uniform(Shape{kBatch, 1, 8, 8}, -1.0, 1.0, seed).to(Device::cuda());
    Tensor labels = Tensor::zeros(Shape{kBatch}, DType::Int64, Device::cuda());
    CapturedStep step([&] {
        adam.zero_grad();
        cross_entropy((*model)(images), labels).backward();
        adam.step();
    });
    EXPECT_EQ(adam.step_count(0), 1);  // the warm-up; the capture runs nothing
    const std::uint64_t before = all_host_waits();
    for (int i = 0; i < 3; ++i) step.replay();
    EXPECT_EQ(all_host_waits(), before);
    EXPECT_EQ(adam.step_count(0), 4);
}

// cross_entropy checks its targets on the device and raises a bad one at the host's next wait;
// in a captured step, after the replay that saw it.
TEST_F(CudaGraph, ABadTargetInAReplayIsRaisedAtTheNextRead) {
    auto model = small_cnn();
    model->to(Device::cuda());
    optim::SGD sgd(model->parameters(), {.lr = 0.01});
    const Tensor images = Tensor::uniform(Shape{kBatch, 1, 8, 8}, -1.0, 1.0, 11).to(Device::cuda());
    Tensor labels = Tensor::zeros(Shape{kBatch}, DType::Int64, Device::cuda());
    CapturedStep step([&] {
        sgd.zero_grad();
        cross_entropy((*model)(images), labels).backward();
        sgd.step();
    });
    step.replay();
    EXPECT_NO_THROW(synchronize());
    labels.fill_(3.0);  // the model has 3 classes
    step.replay();
    try {
        synchronize();
        ADD_FAILURE() << "the bad target was not raised";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("cross_entropy"), std::string::npos) << e.what();
    }
    labels.fill_(1.0);
    step.replay();
    EXPECT_NO_THROW(synchronize());
}

bool overlaps(const void* pointer, std::size_t bytes, const std::vector<std::pair<void*, std::size_t>>& blocks) {
    const auto* p = static_cast<const char*>(pointer);
    for (const auto& [start, size] : blocks) {
        const auto* b = static_cast<const char*>(start);
        if (p < b + size && b < p + bytes) return true;
    }
    return false;
}

TEST_F(CudaGraph, ThePoolIsPrivateToTheGraphAndReleasedWithIt) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Batches batches = make_batches(seed);
    std::size_t pool_bytes = 0;
    std::size_t reserved_with_graph = 0;
    train_captured(seed, batches, adam_cosine, [&](CapturedStep& step) {
        pool_bytes = step.pool_bytes();
        EXPECT_GT(pool_bytes, 0u);
        const auto blocks = detail::graph_pool_blocks(0, const_cast<void*>(step.pool_key()));
        // Eager tensors of every size the step uses, on the caller's stream and on the graph's
        // own: none may get a block of the pool.
        for (const Stream stream : {current_stream(0), step.stream()}) {
            StreamGuard on(stream);
            std::vector<Tensor> eager;
            for (const auto& [start, size] : blocks) {
                eager.push_back(
                    Tensor::empty(Shape{static_cast<std::int64_t>(size / 4)}, DType::Float32, Device::cuda()));
                EXPECT_FALSE(overlaps(eager.back().raw_data(), size, blocks));
            }
            eager.clear();
            for (const auto& [start, size] : blocks) {
                const Tensor again =
                    Tensor::empty(Shape{static_cast<std::int64_t>(size / 4)}, DType::Float32, Device::cuda());
                EXPECT_FALSE(overlaps(again.raw_data(), size, blocks));
            }
        }
        cuda_empty_cache();  // must not free the live graph's pool
        EXPECT_EQ(step.pool_bytes(), pool_bytes);
        reserved_with_graph = cuda_memory_stats(0).reserved_bytes;
    });
    // The model, optimizer and gradients of the run are gone with train_captured's scope, and so
    // is the graph: every block of the pool went back to the driver.
    EXPECT_LE(cuda_memory_stats(0).reserved_bytes + pool_bytes, reserved_with_graph);
}

// A step whose capture must fail; the library must stay usable after it.
void expect_capture_refused(const std::function<void(const Tensor& loss)>& extra, const std::string& naming) {
    auto model = small_cnn();
    model->to(Device::cuda());
    optim::Adam adam(model->parameters(), {.lr = 1e-2});
    const Tensor images = Tensor::uniform(Shape{kBatch, 1, 8, 8}, -1.0, 1.0, 7).to(Device::cuda());
    const Tensor labels = Tensor::zeros(Shape{kBatch}, DType::Int64, Device::cuda());
    int calls = 0;
    const auto step = [&] {
        adam.zero_grad();
        Tensor loss = cross_entropy((*model)(images), labels);
        loss.backward();
        adam.step();
        if (++calls == 2) extra(loss);  // at capture, after a clean warm-up
    };
    try {
        CapturedStep captured(step);
        ADD_FAILURE() << "the capture of a step with " << naming << " was not refused";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(naming), std::string::npos) << e.what();
    }
    // Nothing is left capturing: an eager step and a read work.
    adam.zero_grad();
    Tensor loss = cross_entropy((*model)(images), labels);
    loss.backward();
    adam.step();
    EXPECT_TRUE(std::isfinite(loss.to(Device::host()).item(0)));
}

TEST_F(CudaGraph, CapturingAHostReadThrowsNamingIt) {
    expect_capture_refused([](const Tensor& loss) { (void)loss.to(Device::host()); }, "a copy from cuda:0 to host");
}

TEST_F(CudaGraph, CapturingSynchronizeThrowsNamingIt) {
    expect_capture_refused([](const Tensor&) { synchronize(); }, "synchronize waits for the device");
}

#ifdef CONVKIT_EMULATED_DEVICE
// The runtime's own refusal (a CUDA call the library does not wrap); only here does a test reach
// the runtime the library uses (the GPU build links it statically inside libconvkit).
TEST_F(CudaGraph, CapturingARawDeviceSynchronisationFailsTheCapture) {
    expect_capture_refused([](const Tensor&) { CONVKIT_CHECK_CUDA(cudaDeviceSynchronize()); },
                           "cudaErrorStreamCaptureUnsupported");
}
#endif

TEST_F(CudaGraph, CapturingDropoutWithASeedArgumentThrowsNamingIt) {
    expect_capture_refused([](const Tensor& loss) { (void)dropout(loss.detach(), 0.5, true, 3); },
                           "dropout with a seed argument cannot be captured");
}

TEST_F(CudaGraph, CapturingAnOptimizersFirstStepThrowsNamingIt) {
    auto other = small_cnn();
    other->to(Device::cuda());
    optim::Adam fresh(other->parameters(), {.lr = 1e-2});
    const Tensor images = Tensor::uniform(Shape{kBatch, 1, 8, 8}, -1.0, 1.0, 9).to(Device::cuda());
    const Tensor labels = Tensor::zeros(Shape{kBatch}, DType::Int64, Device::cuda());
    expect_capture_refused(
        [&](const Tensor&) {
            fresh.zero_grad();
            cross_entropy((*other)(images), labels).backward();
            fresh.step();
        },
        "Adam::step of parameter 0 cannot be captured");
}

TEST_F(CudaGraph, ReplaysFollowTheCallersStreamOrder) {
    // A device-side accumulator: each replay adds the static input to it.
    Tensor input = Tensor::zeros(Shape{16}, DType::Float32, Device::cuda());
    Tensor total = Tensor::zeros(Shape{16}, DType::Float32, Device::cuda());
    CapturedStep step([&] {
        NoGradGuard no_grad;
        total.copy_(total + input);
    });
    for (int i = 1; i <= 4; ++i) {
        input.fill_(static_cast<double>(i));
        step.replay();
    }
    // The warm-up added 0, the replays 1 + 2 + 3 + 4.
    EXPECT_EQ(total.to(Device::host()).to_vector(), std::vector<double>(16, 10.0));
}

#ifdef CONVKIT_EMULATED_DEVICE
// ---- the emulated runtime's capture semantics -------------------------------------------------

class EmulatedCapture : public CudaGraph {
protected:
    void SetUp() override {
        CudaGraph::SetUp();
        ASSERT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
        ASSERT_EQ(cudaMalloc(&device_, 64), cudaSuccess);
        ASSERT_EQ(cudaHostAlloc(&pinned_, 64, 0), cudaSuccess);
    }
    void TearDown() override {
        cudaStreamCaptureStatus status{};
        if (stream_ != nullptr && cudaStreamIsCapturing(stream_, &status) == cudaSuccess &&
            status != cudaStreamCaptureStatusNone) {
            cudaGraph_t graph = nullptr;
            cudaStreamEndCapture(stream_, &graph);
            if (graph != nullptr) cudaGraphDestroy(graph);
        }
        cudaFree(device_);
        cudaFreeHost(pinned_);
        cudaStreamDestroy(stream_);
        cudaGetLastError();
    }
    cudaStreamCaptureStatus capture_status() const {
        cudaStreamCaptureStatus status{};
        EXPECT_EQ(cudaStreamIsCapturing(stream_, &status), cudaSuccess);
        return status;
    }
    unsigned char device_byte(int i) const { return static_cast<const unsigned char*>(device_)[i]; }

    cudaStream_t stream_ = nullptr;
    void* device_ = nullptr;
    void* pinned_ = nullptr;
};

TEST_F(EmulatedCapture, CapturedWorkRunsOnlyWhenTheGraphIsLaunchedAndInOrder) {
    std::memset(pinned_, 7, 64);
    ASSERT_EQ(cudaMemsetAsync(device_, 1, 64, stream_), cudaSuccess);
    ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    EXPECT_EQ(capture_status(), cudaStreamCaptureStatusActive);
    ASSERT_EQ(cudaMemsetAsync(device_, 2, 32, stream_), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(static_cast<char*>(device_) + 16, pinned_, 32, cudaMemcpyHostToDevice, stream_),
              cudaSuccess);
    EXPECT_EQ(device_byte(0), 1);  // recorded, not run
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
    EXPECT_EQ(capture_status(), cudaStreamCaptureStatusNone);
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphDestroy(graph), cudaSuccess);
    // The copy node reads the pinned source when the graph runs, not when it was captured.
    std::memset(pinned_, 9, 64);
    ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
    EXPECT_EQ(device_byte(0), 2);
    EXPECT_EQ(device_byte(16), 9);  // the copy came after the fill
    EXPECT_EQ(device_byte(47), 9);
    EXPECT_EQ(device_byte(48), 1);
    ASSERT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
    EXPECT_EQ(cudaGraphExecDestroy(exec), cudaErrorInvalidValue);
    cudaGetLastError();
}

TEST_F(EmulatedCapture, SynchronisingTheCapturingStreamInvalidatesTheCapture) {
    ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed), cudaSuccess);
    EXPECT_EQ(cudaStreamSynchronize(stream_), cudaErrorStreamCaptureUnsupported);
    EXPECT_EQ(capture_status(), cudaStreamCaptureStatusInvalidated);
    EXPECT_EQ(cudaMemsetAsync(device_, 2, 8, stream_), cudaErrorStreamCaptureInvalidated);
    cudaGraph_t graph = nullptr;
    EXPECT_EQ(cudaStreamEndCapture(stream_, &graph), cudaErrorStreamCaptureInvalidated);
    EXPECT_EQ(graph, nullptr);
    cudaGetLastError();
}

TEST_F(EmulatedCapture, UnsafeCallsFailInStrictModesAndPassWhenRelaxed) {
    const std::uint64_t runtime_waits = emu::host_synchronisations();
    for (const cudaStreamCaptureMode mode : {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal}) {
        ASSERT_EQ(cudaStreamBeginCapture(stream_, mode), cudaSuccess);
        void* block = nullptr;
        EXPECT_EQ(cudaMalloc(&block, 64), cudaErrorStreamCaptureUnsupported);
        EXPECT_EQ(capture_status(), cudaStreamCaptureStatusInvalidated);
        EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorStreamCaptureUnsupported);
        EXPECT_EQ(cudaMemcpy(pinned_, device_, 8, cudaMemcpyDeviceToHost), cudaErrorStreamCaptureUnsupported);
        cudaGraph_t graph = nullptr;
        EXPECT_EQ(cudaStreamEndCapture(stream_, &graph), cudaErrorStreamCaptureInvalidated);
        cudaGetLastError();
    }
    EXPECT_EQ(emu::host_synchronisations(), runtime_waits);  // refused calls did not wait
    // The allocator's exchange to relaxed mode lets cudaMalloc through a strict capture.
    ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    ASSERT_EQ(cudaThreadExchangeStreamCaptureMode(&mode), cudaSuccess);
    void* block = nullptr;
    EXPECT_EQ(cudaMalloc(&block, 64), cudaSuccess);
    ASSERT_EQ(cudaThreadExchangeStreamCaptureMode(&mode), cudaSuccess);
    EXPECT_EQ(mode, cudaStreamCaptureModeRelaxed);
    EXPECT_EQ(capture_status(), cudaStreamCaptureStatusActive);
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
    EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
    EXPECT_EQ(cudaFree(block), cudaSuccess);
}

TEST_F(EmulatedCapture, PageableCopiesAndTheLegacyStreamCannotBeCaptured) {
    EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal), cudaErrorStreamCaptureUnsupported);
    cudaGetLastError();
    ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    EXPECT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaErrorIllegalState);
    std::vector<unsigned char> pageable(8, 3);
    EXPECT_EQ(cudaMemcpyAsync(device_, pageable.data(), 8, cudaMemcpyHostToDevice, stream_),
              cudaErrorStreamCaptureUnsupported);
    EXPECT_EQ(capture_status(), cudaStreamCaptureStatusInvalidated);
    cudaGraph_t graph = nullptr;
    EXPECT_EQ(cudaStreamEndCapture(stream_, &graph), cudaErrorStreamCaptureInvalidated);
    EXPECT_EQ(cudaStreamEndCapture(stream_, &graph), cudaErrorIllegalState);
    cudaGetLastError();
}

TEST_F(EmulatedCapture, KernelLaunchesAreRecordedWithTheirArgumentsByValue) {
    Tensor t = Tensor::zeros(Shape{64}, DType::Float32, Device::cuda());
    const Stream stream{stream_, 0};
    ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    {
        StreamGuard on(stream);
        for (const double value : {5.0, 6.0}) t.fill_(value);  // the value is an argument of each launch
    }
    // Read directly (the emulated device's memory is host memory): a copy to the host would be a
    // synchronous call, which the capture forbids.
    EXPECT_EQ(static_cast<const float*>(t.raw_data())[63], 0.0f);
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    t.fill_(1.0);
    ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
    EXPECT_EQ(t.to(Device::host()).to_vector(), std::vector<double>(64, 6.0));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
}
#endif  // CONVKIT_EMULATED_DEVICE

}  // namespace
}  // namespace convkit
