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
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

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

// Rows of two tensors: inputs [N, ...] and targets [N, ...] (targets may be int64). Tensors on
// a GPU are copied to the host once, here. get(i) returns copies of row i ([...], a scalar for
// targets [N]).
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
// Indices are checked against base->size() here; repeats are allowed.
class SubsetDataset : public Dataset {
public:
    SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<std::int64_t> indices);
    std::int64_t size() const override { return static_cast<std::int64_t>(indices_.size()); }
    Example get(std::int64_t index) const override;
    const std::vector<std::int64_t>& indices() const { return indices_; }

private:
    std::shared_ptr<const Dataset> base_;
    std::vector<std::int64_t> indices_;
};

// A random split into two disjoint subsets of `first_size` and size() - first_size examples
// (e.g. training and validation), the same for the same seed.
std::pair<std::shared_ptr<SubsetDataset>, std::shared_ptr<SubsetDataset>> random_split(
    std::shared_ptr<const Dataset> base, std::int64_t first_size, std::uint64_t seed);

// Examples i of a batch are stacked along a new first dim: all inputs of a batch must have one
// shape and dtype, and so must all targets (scalar int64 targets give [B]).
struct Batch {
    Tensor inputs;   // [B, ...] on the loader's device
    Tensor targets;  // [B, ...] on the loader's device
    std::int64_t index = 0;  // batch number within the epoch
};

struct DataLoaderOptions {
    std::int64_t batch_size = 64;
    bool shuffle = false;
    bool drop_last = false;  // leave out a last batch smaller than batch_size
    // Shuffling order and transforms: epoch e of seed s is always the same, whatever the
    // prefetch depth or timing. The order comes from (seed, epoch); the transform's generator for
    // an example from (seed, epoch, the example's index in the dataset).
    std::uint64_t seed = 0;
    // Where batches are delivered. For a GPU, batches are gathered into pinned host memory and
    // copied asynchronously by the background thread on a stream of its own; the caller's stream
    // waits for the copy on the device, the host does not (see DataLoader::EpochRange).
    Device device = Device::host();
    std::int64_t prefetch_batches = 2;  // prepared ahead by the background thread (0: no thread)
    Transform transform = {};           // applied to each example's input; empty: none
};

// Options are checked here (InvalidArgument); a CUDA device that does not exist is NotSupported.
class DataLoader {
public:
    DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);
    ~DataLoader();
    DataLoader(const DataLoader&) = delete;
    DataLoader& operator=(const DataLoader&) = delete;

    std::int64_t batches_per_epoch() const;
    const Dataset& dataset() const;
    const DataLoaderOptions& options() const;

    class EpochRange;
    // The batches of one epoch, in order; iterate once. The background thread starts here, so
    // the first batches are being prepared before the loop begins. Errors of the worker (a
    // transform that throws, an example of the wrong shape, out of memory) are rethrown by the
    // iteration, at the batch they belong to. An epoch range keeps what it needs alive: it may
    // outlive the loader. Several epochs may be alive at once; each has its own thread.
    EpochRange epoch(std::int64_t epoch);

    class Shared;  // what a loader and its epochs share (data_loader.cpp)

private:
    std::shared_ptr<const Shared> shared_;
};

// One epoch's batches, an input range: for (const Batch& batch : loader.epoch(e)) { ... }.
// Destroying it (breaking out of the loop) stops and joins its thread, at most one batch later.
// A GPU batch's memory belonged to the loader's stream; when the iterator hands the batch over,
// the caller's current stream is made to wait (on the device) for the batch's copy, and the
// memory is marked as used on that stream too (record_stream), so the caching allocator does not
// reuse it while work queued there still reads it.
class DataLoader::EpochRange {
public:
    class State;  // data_loader.cpp

    class Iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = Batch;
        using difference_type = std::ptrdiff_t;
        using pointer = const Batch*;
        using reference = const Batch&;

        Iterator() = default;  // the end
        reference operator*() const { return batch_; }
        pointer operator->() const { return &batch_; }
        Iterator& operator++();
        void operator++(int) { ++*this; }
        // Iterators compare equal when both are at the end (input iterators compare only so).
        friend bool operator==(const Iterator& a, const Iterator& b) { return a.state_ == b.state_; }

    private:
        friend class EpochRange;
        explicit Iterator(State* state);
        State* state_ = nullptr;  // null at the end
        Batch batch_;
    };

    explicit EpochRange(std::unique_ptr<State> state);
    ~EpochRange();
    EpochRange(EpochRange&&) noexcept;
    EpochRange& operator=(EpochRange&&) noexcept;

    // Only once per range: a second call throws InvalidArgument.
    Iterator begin();
    Iterator end() { return Iterator(); }
    std::int64_t size() const;  // the number of batches

private:
    std::unique_ptr<State> state_;
};

}  // namespace convkit::data
