// A training step makes no host synchronisation (issue #15): a small CNN (conv, batch norm,
// ReLU, max pooling, linear, cross-entropy, Adam with a cosine schedule) fed by a DataLoader that
// stages batches in pinned memory and copies them on its own stream. After the first step (which
// may create streams, optimizer state and cached blocks) the host must never wait for the device
// until it reads a value. Waits are counted by the library itself (every wait goes through
// detail::wait_for_stream / wait_for_event), on a GPU and on the emulated device alike; on the
// emulated device the CUDA runtime's own count must agree (it would also see a wait the library
// made without its wrapper).
#include <cmath>
#include <memory>

#include "convkit/convkit.h"
#include "convkit/data/dataset.h"
#include "cuda/device_timer.h"
#include "cuda/host_waits.h"
#include "small_cnn.h"
#include "test_util.h"
#ifdef CONVKIT_EMULATED_DEVICE
#include "emu/emulated_runtime.h"
#endif

namespace convkit {
namespace {

class CudaStepSync : public testing::WithCuda<> {};

struct WaitCounts {
    std::uint64_t library = 0;
    std::uint64_t runtime = 0;  // the emulated runtime's count; 0 on a GPU

    static WaitCounts now() {
        WaitCounts counts;
        counts.library = detail::host_waits();
#ifdef CONVKIT_EMULATED_DEVICE
        counts.runtime = emu::host_synchronisations();
#endif
        return counts;
    }
};

using testing::small_cnn;

TEST_F(CudaStepSync, TrainingStepsAfterTheFirstMakeNoHostSynchronisation) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    constexpr std::int64_t kExamples = 48, kBatch = 8;
    const Tensor images = Tensor::uniform(Shape{kExamples, 1, 8, 8}, -1.0, 1.0, seed);
    Tensor labels = Tensor::empty(Shape{kExamples}, DType::Int64);
    for (std::int64_t i = 0; i < kExamples; ++i) labels.data<std::int64_t>()[i] = (i * 5) % 3;
    data::DataLoader loader(std::make_shared<data::TensorDataset>(images, labels),
                            {.batch_size = kBatch, .shuffle = true, .seed = seed, .device = Device::cuda(),
                             .prefetch_batches = 2});

    nn::init::manual_seed(seed);
    auto model = small_cnn();
    model->to(Device::cuda());
    optim::Adam adam(model->parameters(), {.lr = 1e-2});
    optim::CosineAnnealingLR schedule(adam, kExamples / kBatch);

    std::vector<Tensor> losses;
    std::vector<WaitCounts> waits_per_step;
    WaitCounts before = WaitCounts::now();
    for (const data::Batch& batch : loader.epoch(0)) {
        adam.zero_grad();
        Tensor loss = cross_entropy((*model)(batch.inputs), batch.targets);
        loss.backward();
        adam.step();
        schedule.step();
        losses.push_back(loss.detach());
        const WaitCounts after = WaitCounts::now();
        waits_per_step.push_back({after.library - before.library, after.runtime - before.runtime});
        before = after;
    }
    ASSERT_EQ(static_cast<std::int64_t>(losses.size()), kExamples / kBatch);
    for (std::size_t step = 1; step < waits_per_step.size(); ++step) {
        EXPECT_EQ(waits_per_step[step].library, 0u) << "step " << step << ": the library waited for the device";
        EXPECT_EQ(waits_per_step[step].runtime, 0u) << "step " << step << ": the CUDA runtime saw a host wait";
    }

    // Reading the losses is the first wait, and the counts see it.
    const WaitCounts reading = WaitCounts::now();
    for (const Tensor& loss : losses) EXPECT_TRUE(std::isfinite(loss.to(Device::host()).item(0)));
    EXPECT_GT(WaitCounts::now().library, reading.library);
#ifdef CONVKIT_EMULATED_DEVICE
    EXPECT_GT(WaitCounts::now().runtime, reading.runtime);
#endif
}

// The measured variant selection times CUDA variants with device_time_ms: the work runs once, on
// the given stream, and the host waits exactly once, for the closing event.
TEST_F(CudaStepSync, DeviceTimeRunsTheWorkOnceAndWaitsOnce) {
    Tensor t = Tensor::zeros(Shape{1000}, DType::Float32, Device::cuda());
    int runs = 0;
    const WaitCounts before = WaitCounts::now();
    const double ms = detail::device_time_ms(current_stream(0), [&] {
        ++runs;
        t.fill_(2.0);
    });
    const WaitCounts after = WaitCounts::now();
    EXPECT_EQ(runs, 1);
    EXPECT_TRUE(std::isfinite(ms));
    EXPECT_GE(ms, 0.0);
    EXPECT_EQ(after.library - before.library, 1u);
#ifdef CONVKIT_EMULATED_DEVICE
    EXPECT_EQ(after.runtime - before.runtime, 1u);
#endif
    EXPECT_EQ(t.to(Device::host()).to_vector(), std::vector<double>(1000, 2.0));
}

}  // namespace
}  // namespace convkit
