#include "cuda/deferred_errors.h"

#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "convkit/error.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "cuda/graph_capture.h"
#include "memory/pinned_memory.h"

namespace convkit::detail {

namespace {
struct PendingCheck {
    int device;
    DeviceErrorSlot* copy;  // pinned
    cudaEvent_t copied;     // recorded after the copy
    std::function<std::string(std::int64_t, std::int64_t)> describe;
};

// Pinned slots are carved from blocks allocated once (pinning is slow) and reused; checks wait
// in the order they were made. Never destroyed, like the caching allocator.
class DeferredChecks {
public:
    void add(const DeviceErrorSlot* slot, Stream stream,
             std::function<std::string(std::int64_t, std::int64_t)> describe) {
        CudaDeviceGuard guard(stream.device);
        std::lock_guard lock(mutex_);
        retire_completed_good_checks();
        DeviceErrorSlot* copy = take_slot();
        cudaEvent_t copied = nullptr;
        try {
            CONVKIT_CHECK_CUDA(
                cudaMemcpyAsync(copy, slot, sizeof(DeviceErrorSlot), cudaMemcpyDeviceToHost, to_cuda(stream)));
            CONVKIT_CHECK_CUDA(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
            CONVKIT_CHECK_CUDA(cudaEventRecord(copied, to_cuda(stream)));
        } catch (...) {
            if (copied != nullptr) cudaEventDestroy(copied);
            free_slots_.push_back(copy);
            throw;
        }
        pending_.push_back({stream.device, copy, copied, std::move(describe)});
    }

    void raise(int device) {
        std::optional<std::string> first_error;
        {
            CudaDeviceGuard guard(device);
            std::lock_guard lock(mutex_);
            for (auto it = pending_.begin(); it != pending_.end();) {
                if (it->device != device || !completed(*it)) {
                    ++it;
                    continue;
                }
                if (it->copy->index != kNoDeviceError && !first_error) {
                    first_error = it->describe(static_cast<std::int64_t>(it->copy->index), it->copy->value);
                }
                release(*it);
                it = pending_.erase(it);
            }
        }
        if (first_error) throw InvalidArgument(*first_error);
    }

private:
    static bool completed(const PendingCheck& check) { return event_complete(check.copied); }

    // Keeps the list short when nothing waits for many steps; a failed check stays to be raised.
    void retire_completed_good_checks() {
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (completed(*it) && it->copy->index == kNoDeviceError) {
                release(*it);
                it = pending_.erase(it);
            } else {
                ++it;
            }
        }
    }

    void release(PendingCheck& check) {
        cudaEventDestroy(check.copied);  // a failure leaks one event, nothing worse
        free_slots_.push_back(check.copy);
    }

    DeviceErrorSlot* take_slot() {
        if (free_slots_.empty()) {
            constexpr std::size_t kSlotsPerBlock = 256;
            blocks_.push_back(allocate_pinned_host(kSlotsPerBlock * sizeof(DeviceErrorSlot)));
            auto* slots = static_cast<DeviceErrorSlot*>(blocks_.back().get());
            for (std::size_t i = 0; i < kSlotsPerBlock; ++i) free_slots_.push_back(slots + i);
        }
        DeviceErrorSlot* slot = free_slots_.back();
        free_slots_.pop_back();
        return slot;
    }

    std::mutex mutex_;
    std::deque<PendingCheck> pending_;
    std::vector<std::shared_ptr<void>> blocks_;
    std::vector<DeviceErrorSlot*> free_slots_;
};

DeferredChecks& deferred_checks() {
    static auto* checks = new DeferredChecks();
    return *checks;
}
}  // namespace

void defer_device_check(const DeviceErrorSlot* slot, Stream stream,
                        std::function<std::string(std::int64_t index, std::int64_t value)> describe) {
    if (GraphCapture* capture = graph_capture_underway(stream.device)) {
        // In a captured step the check is made after each replay, from a copy of the slot that the
        // graph writes (the slot's own block may be reused later in the step) and keeps.
        std::shared_ptr<void> kept = allocate_cuda(sizeof(DeviceErrorSlot), stream);
        CONVKIT_CHECK_CUDA(cudaMemcpyAsync(kept.get(), slot, sizeof(DeviceErrorSlot), cudaMemcpyDeviceToDevice,
                                           to_cuda(stream)));
        capture->after_each_replay([kept, stream, describe = std::move(describe)] {
            deferred_checks().add(static_cast<const DeviceErrorSlot*>(kept.get()), stream, describe);
        });
        return;
    }
    deferred_checks().add(slot, stream, std::move(describe));
}

void raise_deferred_errors(int device) { deferred_checks().raise(device); }

}  // namespace convkit::detail
