#include <array>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>

#include "convkit/data/dataset.h"
#include "convkit/memory.h"
#include "core/check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "data/random_draws.h"

namespace convkit::data {

// The loader's configuration and, for a GPU, the stream its copies run on. Shared by the loader
// and its epochs, so an epoch may outlive the loader; the stream goes when the last of them does.
class DataLoader::Shared {
public:
    Shared(std::shared_ptr<const Dataset> dataset_in, DataLoaderOptions options_in)
        : dataset(std::move(dataset_in)), options(std::move(options_in)) {
        if (options.device.is_cuda()) {
            detail::require_cuda_device(options.device.index, "DataLoader to " + options.device.to_string());
            copy_stream = create_stream(options.device.index);
        }
    }
    ~Shared() {
        if (copy_stream.handle == nullptr) return;
        try {
            destroy_stream(copy_stream);
        } catch (...) {
            // A destructor must not throw; a stream that fails to go (a broken context) is lost.
        }
    }
    Shared(const Shared&) = delete;
    Shared& operator=(const Shared&) = delete;

    std::int64_t batches_per_epoch() const {
        const std::int64_t n = dataset->size();
        return options.drop_last ? n / options.batch_size : (n + options.batch_size - 1) / options.batch_size;
    }

    std::shared_ptr<const Dataset> dataset;
    DataLoaderOptions options;
    Stream copy_stream;  // null on the host
};

namespace {

// One example after its transform, checked to be something a batch can stack.
Example prepared_example(const DataLoader::Shared& shared, std::int64_t epoch, std::int64_t index) {
    Example example = shared.dataset->get(index);
    const DataLoaderOptions& options = shared.options;
    if (options.transform) {
        std::mt19937_64 rng(sampling::derive_seed(options.seed, sampling::SeedPurpose::Transform,
                                                static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(index)));
        example.input = options.transform(example.input, rng);
    }
    for (const auto& [tensor, what] : {std::pair{&example.input, "input"}, std::pair{&example.target, "target"}}) {
        CONVKIT_REQUIRE(tensor->defined() && tensor->device().is_host(), "DataLoader", "example ", index, "'s ", what,
                        " must be a defined host tensor",
                        tensor->defined() ? " (it is on " + tensor->device().to_string() + ")" : std::string());
        CONVKIT_REQUIRE(tensor->rank() < Shape::kMaxRank, "DataLoader", "example ", index, "'s ", what, " has shape ",
                        tensor->shape().to_string(), "; a batch adds a dim, and tensors hold at most ",
                        Shape::kMaxRank);
    }
    return example;
}

Shape batch_shape(std::int64_t count, const Shape& example_shape) {
    std::vector<std::int64_t> dims{count};
    for (std::int64_t d : example_shape) dims.push_back(d);
    return Shape(dims);
}

// Host memory batches are stacked in before their asynchronous copies to a GPU: pinned,
// allocated once per epoch and reused, since pinning is slow. Two buffers in turn, so the next
// batch is gathered while the last one's copy runs; a buffer is reused once the copy out of it
// is complete (the host waits only if the copy is still running then). Used by one thread at a
// time.
class PinnedStaging {
public:
    PinnedStaging() = default;
    PinnedStaging(const PinnedStaging&) = delete;
    PinnedStaging& operator=(const PinnedStaging&) = delete;
    // The memory outlives the copies out of it (the end of an epoch, or a break out of one).
    ~PinnedStaging() {
        for (Buffer& b : buffers_) {
            if (!b.copied) continue;
            try {
                detail::wait_until_complete(device_, b.copied);
            } catch (...) {
                // A destructor must not throw; a broken context has no copy left to wait for.
            }
        }
    }

    void* reserve(std::size_t bytes, int device) {
        device_ = device;
        Buffer& b = buffers_[next_];
        next_ = (next_ + 1) % buffers_.size();
        if (b.copied) detail::wait_until_complete(device, std::exchange(b.copied, nullptr));
        if (!b.memory.defined() || b.memory.nbytes() < bytes) {
            b.memory = empty_pinned(Shape{static_cast<std::int64_t>((bytes + 7) / 8)}, DType::Float64);
        }
        last_ = &b;
        return b.memory.raw_data();
    }
    // The copies out of the buffer last reserved are enqueued before `copied`.
    void copied_out(std::shared_ptr<void> copied) { last_->copied = std::move(copied); }

private:
    struct Buffer {
        Tensor memory;
        std::shared_ptr<void> copied;  // recorded after the last copy out of it
    };
    std::array<Buffer, 2> buffers_;
    std::size_t next_ = 0;
    Buffer* last_ = nullptr;
    int device_ = 0;
};

// A batch as made, and for a GPU the event after its copies (which the caller's stream waits for).
struct MadeBatch {
    Batch batch;
    std::shared_ptr<void> copied;
};

// The examples of one batch stacked: each example's bytes go to row k.
class BatchStacker {
public:
    BatchStacker(const Example& first, std::int64_t count, std::int64_t batch_index)
        : first_(first), count_(count), batch_index_(batch_index) {}

    void check(const Example& example, std::int64_t index) const {
        for (const auto& [tensor, reference, what] : {std::tuple{&example.input, &first_.input, "input"},
                                                       std::tuple{&example.target, &first_.target, "target"}}) {
            CONVKIT_REQUIRE(tensor->shape() == reference->shape() && tensor->dtype() == reference->dtype(), "DataLoader",
                            "batch ", batch_index_, ": example ", index, "'s ", what, " is ", tensor->shape().to_string(),
                            " ", dtype_name(tensor->dtype()), " but the batch's first example's is ",
                            reference->shape().to_string(), " ", dtype_name(reference->dtype()),
                            " (a batch stacks examples of one shape and dtype)");
        }
    }
    Shape input_shape() const { return batch_shape(count_, first_.input.shape()); }
    Shape target_shape() const { return batch_shape(count_, first_.target.shape()); }
    std::size_t input_bytes() const { return static_cast<std::size_t>(count_) * first_.input.nbytes(); }
    std::size_t target_bytes() const { return static_cast<std::size_t>(count_) * first_.target.nbytes(); }

private:
    const Example& first_;
    std::int64_t count_;
    std::int64_t batch_index_;
};

void put_row(void* batch, std::int64_t row, const Tensor& example) {
    std::memcpy(static_cast<char*>(batch) + static_cast<std::size_t>(row) * example.nbytes(), example.raw_data(),
                example.nbytes());
}

}  // namespace

// One epoch: its order, its batches, and (with prefetch) the thread that makes them.
class DataLoader::EpochRange::State {
public:
    State(std::shared_ptr<const Shared> shared, std::int64_t epoch)
        : shared_(std::move(shared)), epoch_(epoch), batches_(shared_->batches_per_epoch()) {
        const std::int64_t n = shared_->dataset->size();
        if (shared_->options.shuffle) {
            std::mt19937_64 rng(sampling::derive_seed(shared_->options.seed, sampling::SeedPurpose::Shuffle,
                                                    static_cast<std::uint64_t>(epoch)));
            order_ = sampling::random_permutation(n, rng);
        } else {
            order_.resize(static_cast<std::size_t>(n));
            for (std::int64_t i = 0; i < n; ++i) order_[static_cast<std::size_t>(i)] = i;
        }
        if (shared_->options.prefetch_batches > 0 && batches_ > 0) worker_ = std::thread([this] { produce_all(); });
    }

    ~State() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        space_.notify_all();
        if (worker_.joinable()) worker_.join();
    }
    State(const State&) = delete;
    State& operator=(const State&) = delete;

    std::int64_t batches() const { return batches_; }
    bool begun = false;

    // The next batch for the caller, or nothing after the last; rethrows the worker's error at
    // the batch it failed on.
    std::optional<Batch> next() {
        std::optional<MadeBatch> made = worker_.joinable() ? take_from_worker() : make_next_here();
        if (!made) return std::nullopt;
        if (shared_->copy_stream.handle != nullptr) {
            // Made on the loader's stream, to be used on the caller's: see the header. The caller's
            // stream waits for the copies on the device; the host does not.
            const int device = shared_->options.device.index;
            const Stream consumer = current_stream(device);
            detail::stream_wait_event(device, made->copied);
            record_stream(made->batch.inputs, consumer);
            record_stream(made->batch.targets, consumer);
        }
        return std::move(made->batch);
    }

private:
    std::optional<MadeBatch> make_next_here() {
        if (next_to_make_ >= batches_) return std::nullopt;
        return make_batch(next_to_make_++);
    }

    std::optional<MadeBatch> take_from_worker() {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return !queue_.empty() || error_ || worker_finished_; });
        if (!queue_.empty()) {
            MadeBatch batch = std::move(queue_.front());
            queue_.pop_front();
            lock.unlock();
            space_.notify_one();
            return batch;
        }
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));  // once; then the epoch is over
        return std::nullopt;
    }

    void produce_all() {
        const auto prefetch = static_cast<std::size_t>(shared_->options.prefetch_batches);
        try {
            for (std::int64_t b = 0; b < batches_; ++b) {
                {
                    std::unique_lock lock(mutex_);
                    space_.wait(lock, [&] { return stop_ || queue_.size() < prefetch; });
                    if (stop_) break;
                }
                MadeBatch batch = make_batch(b);
                {
                    std::lock_guard lock(mutex_);
                    queue_.push_back(std::move(batch));
                }
                ready_.notify_one();
            }
        } catch (...) {
            std::lock_guard lock(mutex_);
            error_ = std::current_exception();
        }
        {
            std::lock_guard lock(mutex_);
            worker_finished_ = true;
        }
        ready_.notify_one();
    }

    MadeBatch make_batch(std::int64_t batch_index) {
        const DataLoaderOptions& options = shared_->options;
        const std::int64_t first = batch_index * options.batch_size;
        const std::int64_t count = std::min(options.batch_size, shared_->dataset->size() - first);
        const Example head = prepared_example(*shared_, epoch_, order_[static_cast<std::size_t>(first)]);
        const BatchStacker stacker(head, count, batch_index);
        const bool to_gpu = options.device.is_cuda();

        Batch batch;
        batch.index = batch_index;
        void* inputs = nullptr;
        void* targets = nullptr;
        if (to_gpu) {
            // One pinned block holds both, inputs first; the targets start at an 8-byte boundary.
            const std::size_t target_offset = (stacker.input_bytes() + 7) / 8 * 8;
            inputs = staging_.reserve(target_offset + stacker.target_bytes(), options.device.index);
            targets = static_cast<char*>(inputs) + target_offset;
        } else {
            batch.inputs = Tensor::empty(stacker.input_shape(), head.input.dtype());
            batch.targets = Tensor::empty(stacker.target_shape(), head.target.dtype());
            inputs = batch.inputs.raw_data();
            targets = batch.targets.raw_data();
        }
        put_row(inputs, 0, head.input);
        put_row(targets, 0, head.target);
        for (std::int64_t k = 1; k < count; ++k) {
            const std::int64_t index = order_[static_cast<std::size_t>(first + k)];
            const Example example = prepared_example(*shared_, epoch_, index);
            stacker.check(example, index);
            put_row(inputs, k, example.input);
            put_row(targets, k, example.target);
        }
        if (to_gpu) {
            // On the loader's stream, without waiting: the event after the copies tells the
            // staging buffer when it is free and the caller's stream when the batch is complete.
            const StreamGuard on_copy_stream(shared_->copy_stream);
            batch.inputs = Tensor::empty(stacker.input_shape(), head.input.dtype(), options.device);
            batch.targets = Tensor::empty(stacker.target_shape(), head.target.dtype(), options.device);
            detail::copy_from_pinned_async(batch.inputs.raw_data(), options.device, inputs, stacker.input_bytes());
            detail::copy_from_pinned_async(batch.targets.raw_data(), options.device, targets, stacker.target_bytes());
            std::shared_ptr<void> copied = detail::record_event(options.device.index);
            staging_.copied_out(copied);
            return {std::move(batch), std::move(copied)};
        }
        return {std::move(batch), nullptr};
    }

    const std::shared_ptr<const Shared> shared_;
    const std::int64_t epoch_;
    const std::int64_t batches_;
    std::vector<std::int64_t> order_;
    PinnedStaging staging_;        // used only by the thread that makes batches
    std::int64_t next_to_make_ = 0;  // without a worker

    std::mutex mutex_;
    std::condition_variable ready_;  // a batch, an error, or the end is there for the caller
    std::condition_variable space_;  // the queue has room, or the worker must stop
    std::deque<MadeBatch> queue_;
    std::exception_ptr error_;
    bool worker_finished_ = false;
    bool stop_ = false;
    std::thread worker_;  // last: it starts once everything above exists
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options) {
    CONVKIT_REQUIRE(dataset != nullptr, "DataLoader", "the dataset is null");
    CONVKIT_REQUIRE(options.batch_size >= 1, "DataLoader", "batch_size must be at least 1, got ", options.batch_size);
    CONVKIT_REQUIRE(options.prefetch_batches >= 0, "DataLoader", "prefetch_batches must be 0 or more, got ",
                    options.prefetch_batches);
    shared_ = std::make_shared<const Shared>(std::move(dataset), std::move(options));
}

DataLoader::~DataLoader() = default;

std::int64_t DataLoader::batches_per_epoch() const { return shared_->batches_per_epoch(); }
const Dataset& DataLoader::dataset() const { return *shared_->dataset; }
const DataLoaderOptions& DataLoader::options() const { return shared_->options; }

DataLoader::EpochRange DataLoader::epoch(std::int64_t epoch) {
    CONVKIT_REQUIRE(epoch >= 0, "DataLoader::epoch", "the epoch must be 0 or more, got ", epoch);
    return EpochRange(std::make_unique<EpochRange::State>(shared_, epoch));
}

DataLoader::EpochRange::EpochRange(std::unique_ptr<State> state) : state_(std::move(state)) {}
DataLoader::EpochRange::~EpochRange() = default;
DataLoader::EpochRange::EpochRange(EpochRange&&) noexcept = default;
DataLoader::EpochRange& DataLoader::EpochRange::operator=(EpochRange&&) noexcept = default;

DataLoader::EpochRange::Iterator DataLoader::EpochRange::begin() {
    CONVKIT_REQUIRE(state_ != nullptr, "DataLoader::EpochRange::begin", "this epoch range was moved from");
    CONVKIT_REQUIRE(!state_->begun, "DataLoader::EpochRange::begin",
                    "an epoch is iterated once; call loader.epoch(e) again for another pass");
    state_->begun = true;
    return Iterator(state_.get());
}

std::int64_t DataLoader::EpochRange::size() const { return state_ ? state_->batches() : 0; }

DataLoader::EpochRange::Iterator::Iterator(State* state) : state_(state) { ++*this; }

DataLoader::EpochRange::Iterator& DataLoader::EpochRange::Iterator::operator++() {
    CONVKIT_REQUIRE(state_ != nullptr, "DataLoader::EpochRange::Iterator", "incremented past the end");
    std::optional<Batch> next;
    try {
        next = state_->next();
    } catch (...) {
        state_ = nullptr;  // an epoch that failed is over
        batch_ = Batch{};
        throw;
    }
    if (next) {
        batch_ = std::move(*next);
    } else {
        state_ = nullptr;
        batch_ = Batch{};
    }
    return *this;
}

}  // namespace convkit::data
