#pragma once
// Datasets and the DataLoader (docs/data.md).
//
//   auto train = std::make_shared<data::TensorDataset>(images, labels);   // [N, ...], [N]
//   data::DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = 1,
//                                   .device = Device::cuda(), .transform = augment});
//   for (int epoch = 0; epoch < epochs; ++epoch)
//       for (const data::Batch& batch : loader.epoch(epoch)) { ... batch.inputs, batch.targets ... }
//
// A background thread gathers and transforms the next batches (into pinned host memory when
// the target is a GPU) while the caller trains on the current one.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "convkit/data/transforms.h"
#include "convkit/tensor.h"

namespace convkit::data {

// One example: host tensors without a batch dim.
struct Example {
    Tensor input;
    Tensor target;
};

class Dataset {
public:
    virtual ~Dataset() = default;
    virtual std::int64_t size() const = 0;
    // Thread-safe: the loader's worker calls it while the caller may call it too.
    virtual Example get(std::int64_t index) const = 0;
};

// Rows of two host tensors: inputs [N, ...] and targets [N, ...] (targets may be int64).
class TensorDataset : public Dataset {
public:
    TensorDataset(Tensor inputs, Tensor targets);
    std::int64_t size() const override;
    Example get(std::int64_t index) const override;
    const Tensor& inputs() const { return inputs_; }
    const Tensor& targets() const { return targets_; }

private:
    Tensor inputs_;
    Tensor targets_;
};

// The examples of `base` at `indices` (a split, a class subset, a few labels per class).
class SubsetDataset : public Dataset {
public:
    SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<std::int64_t> indices);
    std::int64_t size() const override { return static_cast<std::int64_t>(indices_.size()); }
    Example get(std::int64_t index) const override;

private:
    std::shared_ptr<const Dataset> base_;
    std::vector<std::int64_t> indices_;
};

struct Batch {
    Tensor inputs;   // [B, ...] on the loader's device
    Tensor targets;  // [B, ...] on the loader's device
    std::int64_t index = 0;  // batch number within the epoch
};

struct DataLoaderOptions {
    std::int64_t batch_size = 64;
    bool shuffle = false;
    bool drop_last = false;
    std::uint64_t seed = 0;  // shuffling order and transforms: epoch e of seed s is always the same
    Device device = Device::host();
    std::int64_t prefetch_batches = 2;  // prepared ahead by the background thread (0: no thread)
    Transform transform;                // applied to each example's input; empty: none
};

class DataLoader {
public:
    DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);
    ~DataLoader();
    DataLoader(const DataLoader&) = delete;
    DataLoader& operator=(const DataLoader&) = delete;

    std::int64_t batches_per_epoch() const;

    class EpochRange;
    // The batches of one epoch, in order; iterate once. Errors of the worker (a transform that
    // throws, out of memory) are rethrown by the iteration.
    EpochRange epoch(std::int64_t epoch);

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace convkit::data
