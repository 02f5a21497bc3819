// The DataLoader feeding a GPU, and pinned host memory. Label `gpu`: skips, saying why, without
// a device. The host loader is the oracle: a GPU batch must equal it bit for bit.
#include <cmath>
#include <memory>
#include <vector>

#include "convkit/data/dataset.h"
#include "convkit/data/transforms.h"
#include "test_util.h"

namespace convkit {
namespace {

class CudaData : public testing::WithCuda<> {};

std::shared_ptr<data::TensorDataset> random_images(std::int64_t n, std::uint64_t seed) {
    const Tensor images = Tensor::uniform(Shape{n, 1, 12, 12}, 0.0, 1.0, seed);
    Tensor labels = Tensor::empty(Shape{n}, DType::Int64);
    for (std::int64_t i = 0; i < n; ++i) labels.data<std::int64_t>()[i] = (i * 7) % 10;
    return std::make_shared<data::TensorDataset>(images, labels);
}

std::vector<data::Batch> run_epoch(data::DataLoader& loader, std::int64_t epoch) {
    std::vector<data::Batch> batches;
    for (const data::Batch& batch : loader.epoch(epoch)) batches.push_back(batch);
    return batches;
}

TEST_F(CudaData, PinnedMemoryIsPinnedAndCopiesBothWays) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    Tensor pinned = empty_pinned(Shape{1000, 3}, DType::Float32);
    EXPECT_TRUE(is_pinned(pinned));
    EXPECT_TRUE(pinned.device().is_host());
    EXPECT_FALSE(is_pinned(Tensor::zeros(Shape{4})));
    pinned.copy_(Tensor::uniform(Shape{1000, 3}, -1, 1, seed));
    const Tensor on_device = pinned.to(Device::cuda());
    Tensor back = empty_pinned(Shape{1000, 3}, DType::Float32);
    back.fill_(std::nan(""));
    back.copy_(on_device);
    EXPECT_TRUE(testing::exactly_equal(back, pinned));
}

TEST_F(CudaData, DeviceBatchesEqualTheHostLoadersForEveryPrefetchDepth) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const auto dataset = random_images(103, seed);
    data::DataLoaderOptions options{.batch_size = 16, .shuffle = true, .seed = seed,
                                    .transform = data::compose({data::random_crop(12, 12, 2), data::random_affine(15, 0.1),
                                                                data::gaussian_noise(0.1)})};
    data::DataLoader host_loader(dataset, options);
    const std::vector<data::Batch> expected = run_epoch(host_loader, 1);
    options.device = Device::cuda();
    for (const std::int64_t prefetch : {0, 1, 3}) {
        SCOPED_TRACE("prefetch " + std::to_string(prefetch));
        options.prefetch_batches = prefetch;
        data::DataLoader loader(dataset, options);
        const std::vector<data::Batch> got = run_epoch(loader, 1);
        ASSERT_EQ(got.size(), expected.size());
        for (std::size_t b = 0; b < got.size(); ++b) {
            EXPECT_TRUE(got[b].inputs.device().is_cuda());
            EXPECT_TRUE(got[b].targets.device().is_cuda());
            EXPECT_EQ(got[b].inputs.shape(), expected[b].inputs.shape());
            EXPECT_EQ(got[b].targets.dtype(), DType::Int64);
            EXPECT_TRUE(testing::exactly_equal(got[b].inputs, expected[b].inputs)) << "batch " << b;
            EXPECT_TRUE(testing::exactly_equal(got[b].targets, expected[b].targets)) << "batch " << b;
        }
        EXPECT_EQ(got.back().targets.size(0), 103 % 16);
    }
}

// Batches used on the caller's own stream (they were copied on the loader's): kernels on that
// stream read them, and their memory goes back to the cache only behind that work.
TEST_F(CudaData, BatchesAreUsableOnTheCallersStream) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const auto dataset = random_images(64, seed);
    data::DataLoader host_loader(dataset, {.batch_size = 8, .shuffle = true, .seed = seed});
    const std::vector<data::Batch> expected = run_epoch(host_loader, 0);
    data::DataLoader loader(dataset, {.batch_size = 8, .shuffle = true, .seed = seed, .device = Device::cuda(),
                                      .prefetch_batches = 2});
    const Stream stream = create_stream();
    {
        StreamGuard guard(stream);
        std::size_t b = 0;
        for (const data::Batch& batch : loader.epoch(0)) {
            Tensor doubled = batch.inputs.clone();  // a kernel on `stream`
            doubled.fill_(0.0);
            doubled.copy_(batch.inputs);
            EXPECT_TRUE(testing::exactly_equal(doubled, expected[b].inputs)) << "batch " << b;
            ++b;
        }
        EXPECT_EQ(b, expected.size());
        synchronize();
    }
    destroy_stream(stream);
}

TEST_F(CudaData, BreakingOutOfADeviceEpochDoesNotHang) {
    data::DataLoader loader(random_images(500, 1), {.batch_size = 4, .device = Device::cuda(), .prefetch_batches = 4});
    for (int round = 0; round < 3; ++round) {
        for (const data::Batch& batch : loader.epoch(round)) {
            EXPECT_TRUE(batch.inputs.device().is_cuda());
            if (batch.index == 1) break;
        }
    }
}

}  // namespace
}  // namespace convkit
