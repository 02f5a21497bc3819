// Datasets and the DataLoader on the host: every example once per epoch, batch counts, seeds,
// the background thread (early exits, errors, the bounded queue) and pinned memory without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iterator>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "convkit/convkit.h"
#include "convkit/data/dataset.h"
#include "convkit/data/transforms.h"
#include "temp_dir.h"
#include "test_util.h"

namespace convkit {
namespace {

using data::Batch;
using data::DataLoader;
using data::DataLoaderOptions;

static_assert(std::input_iterator<DataLoader::EpochRange::Iterator>);

// Example i has input [1, 2, 3] filled with i + the element's position / 10 (so rows and
// elements are both told apart) and target i.
std::shared_ptr<data::TensorDataset> numbered_dataset(std::int64_t n) {
    Tensor inputs = Tensor::empty(Shape{n, 1, 2, 3}, DType::Float32);
    Tensor targets = Tensor::empty(Shape{n}, DType::Int64);
    for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t k = 0; k < 6; ++k) inputs.data<float>()[i * 6 + k] = static_cast<float>(i) + 0.1f * k;
        targets.data<std::int64_t>()[i] = i;
    }
    return std::make_shared<data::TensorDataset>(inputs, targets);
}

// All batches of one epoch.
std::vector<Batch> run_epoch(DataLoader& loader, std::int64_t epoch) {
    std::vector<Batch> batches;
    for (const Batch& batch : loader.epoch(epoch)) batches.push_back(batch);
    return batches;
}

std::vector<std::int64_t> targets_of(const std::vector<Batch>& batches) {
    std::vector<std::int64_t> all;
    for (const Batch& b : batches) {
        for (double v : b.targets.to_vector()) all.push_back(static_cast<std::int64_t>(v));
    }
    return all;
}

// Each row of a batch's inputs is the example its target names.
void expect_rows_match_targets(const Batch& batch) {
    const std::int64_t rows = batch.targets.size(0);
    ASSERT_EQ(batch.inputs.shape(), Shape({rows, 1, 2, 3}));
    for (std::int64_t r = 0; r < rows; ++r) {
        const double target = batch.targets.item(r);
        for (std::int64_t k = 0; k < 6; ++k) {
            EXPECT_FLOAT_EQ(static_cast<float>(batch.inputs.item(r * 6 + k)), static_cast<float>(target + 0.1 * k));
        }
    }
}

bool batches_identical(const std::vector<Batch>& a, const std::vector<Batch>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].index != b[i].index || !testing::exactly_equal(a[i].inputs, b[i].inputs) ||
            !testing::exactly_equal(a[i].targets, b[i].targets)) {
            return false;
        }
    }
    return true;
}

TEST(TensorDataset, RowsAreCopiesOfTheRowsAndIndicesAreChecked) {
    const auto dataset = numbered_dataset(5);
    EXPECT_EQ(dataset->size(), 5);
    const data::Example e = dataset->get(3);
    EXPECT_EQ(e.input.shape(), Shape({1, 2, 3}));
    EXPECT_EQ(e.target.shape(), Shape{});
    EXPECT_EQ(e.target.item(0), 3.0);
    EXPECT_FLOAT_EQ(static_cast<float>(e.input.item(5)), 3.5f);
    Tensor row = e.input;
    row.fill_(-1.0);  // a copy: the dataset is unchanged
    EXPECT_FLOAT_EQ(static_cast<float>(dataset->get(3).input.item(0)), 3.0f);
    EXPECT_THROW((void)dataset->get(5), InvalidArgument);
    EXPECT_THROW((void)dataset->get(-1), InvalidArgument);
    EXPECT_THROW(data::TensorDataset(Tensor::zeros(Shape{4, 2}), Tensor::zeros(Shape{3}, DType::Int64)), InvalidArgument);
    EXPECT_THROW(data::TensorDataset(Tensor::zeros(Shape{}), Tensor::zeros(Shape{}, DType::Int64)), InvalidArgument);
}

TEST(SubsetDataset, SelectsAndChecksIndices) {
    const auto base = numbered_dataset(6);
    const data::SubsetDataset subset(base, {4, 0, 4});
    EXPECT_EQ(subset.size(), 3);
    EXPECT_EQ(subset.get(0).target.item(0), 4.0);
    EXPECT_EQ(subset.get(1).target.item(0), 0.0);
    EXPECT_THROW((void)subset.get(3), InvalidArgument);
    EXPECT_THROW(data::SubsetDataset(base, {0, 6}), InvalidArgument);
    EXPECT_THROW(data::SubsetDataset(nullptr, {}), InvalidArgument);
}

TEST(SubsetDataset, RandomSplitIsADisjointCoverAndRepeatsWithItsSeed) {
    const auto base = numbered_dataset(50);
    const auto [train, validation] = data::random_split(base, 40, 7);
    EXPECT_EQ(train->size(), 40);
    EXPECT_EQ(validation->size(), 10);
    std::vector<std::int64_t> all = train->indices();
    all.insert(all.end(), validation->indices().begin(), validation->indices().end());
    std::sort(all.begin(), all.end());
    std::vector<std::int64_t> expected(50);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(all, expected);
    EXPECT_EQ(data::random_split(base, 40, 7).first->indices(), train->indices());
    EXPECT_NE(data::random_split(base, 40, 8).first->indices(), train->indices());
    EXPECT_THROW((void)data::random_split(base, 51, 7), InvalidArgument);
}

struct LoaderCase {
    std::int64_t n;
    bool shuffle;
    bool drop_last;
    std::int64_t prefetch;
};

class EveryExampleOnce : public ::testing::TestWithParam<LoaderCase> {};

TEST_P(EveryExampleOnce, BatchCountsSizesAndCoverage) {
    const LoaderCase c = GetParam();
    const std::int64_t batch_size = 4;
    DataLoader loader(numbered_dataset(c.n),
                      {.batch_size = batch_size, .shuffle = c.shuffle, .drop_last = c.drop_last, .seed = 3,
                       .prefetch_batches = c.prefetch});
    const std::int64_t full = c.n / batch_size;
    const std::int64_t remainder = c.n % batch_size;
    const std::int64_t expected_batches = full + (!c.drop_last && remainder > 0 ? 1 : 0);
    EXPECT_EQ(loader.batches_per_epoch(), expected_batches);

    for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
        const std::vector<Batch> batches = run_epoch(loader, epoch);
        ASSERT_EQ(static_cast<std::int64_t>(batches.size()), expected_batches);
        for (std::size_t b = 0; b < batches.size(); ++b) {
            EXPECT_EQ(batches[b].index, static_cast<std::int64_t>(b));
            const bool partial = !c.drop_last && remainder > 0 && b + 1 == batches.size();
            EXPECT_EQ(batches[b].targets.size(0), partial ? remainder : batch_size);
            EXPECT_EQ(batches[b].targets.dtype(), DType::Int64);
            EXPECT_TRUE(batches[b].inputs.device().is_host());
            expect_rows_match_targets(batches[b]);
        }
        std::vector<std::int64_t> seen = targets_of(batches);
        const std::vector<std::int64_t> in_order = seen;
        std::sort(seen.begin(), seen.end());
        EXPECT_TRUE(std::adjacent_find(seen.begin(), seen.end()) == seen.end()) << "an example came twice";
        EXPECT_EQ(static_cast<std::int64_t>(seen.size()), c.drop_last ? full * batch_size : c.n);
        if (!c.shuffle) {
            std::vector<std::int64_t> identity(seen.size());
            std::iota(identity.begin(), identity.end(), 0);
            EXPECT_EQ(in_order, identity);
        } else if (!c.drop_last) {
            std::vector<std::int64_t> identity(seen.size());
            std::iota(identity.begin(), identity.end(), 0);
            EXPECT_EQ(seen, identity);
            EXPECT_NE(in_order, identity);  // 1 in 10! or 12! to be the identity by chance
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Loader, EveryExampleOnce,
                         ::testing::Values(LoaderCase{10, false, false, 0}, LoaderCase{10, false, false, 2},
                                           LoaderCase{10, false, true, 2}, LoaderCase{10, true, false, 0},
                                           LoaderCase{10, true, false, 3}, LoaderCase{10, true, true, 1},
                                           LoaderCase{12, true, false, 2}, LoaderCase{12, false, true, 0},
                                           LoaderCase{3, true, false, 2}, LoaderCase{3, false, true, 2}),
                         [](const auto& info) {
                             const LoaderCase& c = info.param;
                             return "n" + std::to_string(c.n) + (c.shuffle ? "_shuffle" : "_inorder") +
                                    (c.drop_last ? "_droplast" : "_keeplast") + "_prefetch" + std::to_string(c.prefetch);
                         });

TEST(DataLoader, AnEmptyDatasetGivesNoBatches) {
    DataLoader loader(numbered_dataset(0), {.batch_size = 4});
    EXPECT_EQ(loader.batches_per_epoch(), 0);
    auto epoch = loader.epoch(0);
    EXPECT_TRUE(epoch.begin() == epoch.end());
}

TEST(DataLoader, TheSameSeedGivesTheSameOrderAndEpochsAndSeedsDiffer) {
    const auto dataset = numbered_dataset(40);
    DataLoader a(dataset, {.batch_size = 8, .shuffle = true, .seed = 11});
    DataLoader b(dataset, {.batch_size = 8, .shuffle = true, .seed = 11, .prefetch_batches = 0});
    DataLoader other_seed(dataset, {.batch_size = 8, .shuffle = true, .seed = 12});
    const std::vector<std::int64_t> epoch0 = targets_of(run_epoch(a, 0));
    EXPECT_EQ(targets_of(run_epoch(b, 0)), epoch0);
    EXPECT_EQ(targets_of(run_epoch(a, 0)), epoch0);  // an epoch can be replayed
    EXPECT_NE(targets_of(run_epoch(a, 1)), epoch0);
    EXPECT_NE(targets_of(run_epoch(a, 2)), targets_of(run_epoch(a, 1)));
    EXPECT_NE(targets_of(run_epoch(other_seed, 0)), epoch0);
}

// A random transform: prefetch depth, thread timing and the shuffling order change nothing.
TEST(DataLoader, TransformsDependOnlyOnSeedEpochAndExample) {
    const auto dataset = numbered_dataset(30);
    const data::Transform augment =
        data::compose({data::random_horizontal_flip(0.5), data::gaussian_noise(0.25), data::random_crop(2, 3, 1)});
    DataLoaderOptions options{.batch_size = 7, .shuffle = true, .seed = 5, .transform = augment};
    std::vector<std::vector<Batch>> runs;
    for (const std::int64_t prefetch : {0, 1, 4}) {
        options.prefetch_batches = prefetch;
        DataLoader loader(dataset, options);
        runs.push_back(run_epoch(loader, 2));
    }
    EXPECT_TRUE(batches_identical(runs[0], runs[1]));
    EXPECT_TRUE(batches_identical(runs[0], runs[2]));

    // Example i's augmented input is the same in shuffled and in-order passes of epoch 2.
    options.shuffle = false;
    DataLoader in_order(dataset, options);
    const std::vector<Batch> ordered = run_epoch(in_order, 2);
    for (const Batch& batch : runs[0]) {
        for (std::int64_t r = 0; r < batch.targets.size(0); ++r) {
            const auto example = static_cast<std::int64_t>(batch.targets.item(r));
            const Batch& same = ordered[static_cast<std::size_t>(example / 7)];
            const std::int64_t row = example % 7;
            for (std::int64_t k = 0; k < 6; ++k) EXPECT_EQ(batch.inputs.item(r * 6 + k), same.inputs.item(row * 6 + k));
        }
    }
    // Another epoch draws other augmentations.
    DataLoader again(dataset, options);
    EXPECT_FALSE(batches_identical(run_epoch(again, 3), ordered));
}

TEST(DataLoader, BreakingOutEarlyOrNeverIteratingDoesNotHang) {
    DataLoader loader(numbered_dataset(1000), {.batch_size = 3, .shuffle = true, .prefetch_batches = 4});
    for (int round = 0; round < 3; ++round) {
        int taken = 0;
        for (const Batch& batch : loader.epoch(round)) {
            EXPECT_EQ(batch.index, taken);
            if (++taken == 2) break;
        }
        EXPECT_EQ(taken, 2);
    }
    { auto never_iterated = loader.epoch(7); }
    {
        auto started = loader.epoch(8);
        auto it = started.begin();
        EXPECT_EQ(it->index, 0);
    }  // destroyed with the worker blocked on a full queue
}

TEST(DataLoader, AnEpochOutlivesItsLoaderAndEpochsMayOverlap) {
    auto loader = std::make_unique<DataLoader>(numbered_dataset(20), DataLoaderOptions{.batch_size = 6, .prefetch_batches = 2});
    auto first = loader->epoch(0);
    auto second = loader->epoch(1);
    loader.reset();
    std::vector<std::int64_t> a, b;
    auto it_a = first.begin();
    auto it_b = second.begin();
    for (; it_a != first.end(); ++it_a, ++it_b) {
        ASSERT_TRUE(it_b != second.end());
        for (double v : it_a->targets.to_vector()) a.push_back(static_cast<std::int64_t>(v));
        for (double v : it_b->targets.to_vector()) b.push_back(static_cast<std::int64_t>(v));
    }
    EXPECT_TRUE(it_b == second.end());
    EXPECT_EQ(a.size(), 20u);
    EXPECT_EQ(a, b);
}

TEST(DataLoader, AnEpochIsIteratedOnce) {
    DataLoader loader(numbered_dataset(8), {.batch_size = 4});
    auto epoch = loader.epoch(0);
    EXPECT_EQ(epoch.size(), 2);
    (void)epoch.begin();
    EXPECT_THROW((void)epoch.begin(), InvalidArgument);
}

// The worker's exception reaches the caller at the batch it belongs to, after the good batches.
TEST(DataLoader, AThrowingTransformSurfacesAsAnExceptionAtItsBatch) {
    for (const std::int64_t prefetch : {0, 1, 3}) {
        SCOPED_TRACE("prefetch " + std::to_string(prefetch));
        const data::Transform failing = [](const Tensor& input, std::mt19937_64&) {
            if (input.item(0) == 9.0) throw std::runtime_error("cannot transform example 9");
            return input;
        };
        DataLoader loader(numbered_dataset(20), {.batch_size = 4, .prefetch_batches = prefetch, .transform = failing});
        std::int64_t delivered = 0;
        std::string message;
        try {
            for (const Batch& batch : loader.epoch(0)) {
                EXPECT_EQ(batch.index, delivered);
                ++delivered;
            }
        } catch (const std::runtime_error& e) {
            message = e.what();
        }
        EXPECT_EQ(delivered, 2);  // batches 0 and 1; example 9 is in batch 2
        EXPECT_EQ(message, "cannot transform example 9");
        // The loader is still usable.
        DataLoader fine(numbered_dataset(8), {.batch_size = 4, .prefetch_batches = prefetch});
        EXPECT_EQ(run_epoch(fine, 0).size(), 2u);
    }
}

TEST(DataLoader, ExamplesThatCannotBeStackedAreAnErrorNamingThem) {
    const data::Transform uneven = [](const Tensor& input, std::mt19937_64&) {
        return input.item(0) == 5.0 ? Tensor::zeros(Shape{1, 2, 2}) : input;
    };
    for (const std::int64_t prefetch : {0, 2}) {
        DataLoader loader(numbered_dataset(8), {.batch_size = 4, .prefetch_batches = prefetch, .transform = uneven});
        const std::string message = testing::message_of<InvalidArgument>([&] { (void)run_epoch(loader, 0); });
        EXPECT_NE(message.find("example 5"), std::string::npos) << message;
        EXPECT_NE(message.find("[1, 2, 2]"), std::string::npos) << message;
    }
}

TEST(DataLoader, OptionsAreChecked) {
    const auto dataset = numbered_dataset(4);
    EXPECT_THROW(DataLoader(dataset, {.batch_size = 0}), InvalidArgument);
    EXPECT_THROW(DataLoader(dataset, {.prefetch_batches = -1}), InvalidArgument);
    EXPECT_THROW(DataLoader(nullptr, {}), InvalidArgument);
    DataLoader loader(dataset, {});
    EXPECT_THROW((void)loader.epoch(-1), InvalidArgument);
    EXPECT_EQ(loader.options().batch_size, 64);
    EXPECT_EQ(loader.dataset().size(), 4);
    if (!cuda_is_available()) {
        EXPECT_THROW(DataLoader(dataset, {.device = Device::cuda()}), NotSupported);
    }
}

// The queue is bounded: with the caller holding back, the worker prepares exactly
// prefetch_batches batches beyond the one taken, then waits.
TEST(DataLoader, TheWorkerPreparesAtMostPrefetchBatchesAhead) {
    const std::int64_t batch_size = 2, prefetch = 3;
    auto calls = std::make_shared<std::atomic<std::int64_t>>(0);
    const data::Transform counting = [calls](const Tensor& input, std::mt19937_64&) {
        ++*calls;
        return input;
    };
    DataLoader loader(numbered_dataset(40),
                      {.batch_size = batch_size, .prefetch_batches = prefetch, .transform = counting});
    auto epoch = loader.epoch(0);
    auto it = epoch.begin();
    const std::int64_t quiescent = (1 + prefetch) * batch_size;
    // Waits for the worker to fill the queue (no time limit: it only has to get there).
    while (calls->load() < quiescent) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // room to overrun, if it would
    EXPECT_EQ(calls->load(), quiescent);
    ++it;
    while (calls->load() < quiescent + batch_size) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(calls->load(), quiescent + batch_size);
}

TEST(PinnedMemory, EmptyPinnedIsAWritableHostTensorEverywhere) {
    Tensor t = empty_pinned(Shape{3, 4}, DType::Float64);
    EXPECT_TRUE(t.device().is_host());
    EXPECT_EQ(t.shape(), Shape({3, 4}));
    t.fill_(2.5);
    EXPECT_EQ(t.item(11), 2.5);
    EXPECT_EQ(is_pinned(t), cuda_is_available());
    EXPECT_FALSE(is_pinned(Tensor::zeros(Shape{2})));
    EXPECT_FALSE(is_pinned(Tensor()));
    EXPECT_THROW((void)empty_pinned(Shape{-1}), InvalidArgument);
    EXPECT_EQ(empty_pinned(Shape{0}).numel(), 0);
}

}  // namespace
}  // namespace convkit
