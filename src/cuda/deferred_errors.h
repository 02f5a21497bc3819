#pragma once
// Errors that kernels find in their inputs (a class index out of range), raised at the host's
// next wait for the device instead of by a wait of their own, as PyTorch's device-side asserts
// are: an op that checks values on the device enqueues its check and returns at once.
#include <cstdint>
#include <functional>
#include <string>

#include "convkit/device.h"

namespace convkit::detail {

// What a kernel writes in device memory: `index` keeps all bits set while every value is good;
// else it is the first bad element's flat index (atomicMin) and `value` that element.
struct DeviceErrorSlot {
    unsigned long long index;
    std::int64_t value;
};
inline constexpr unsigned long long kNoDeviceError = ~0ull;

// Enqueues on `stream` a copy of `slot` (written by kernels enqueued before on that stream) into
// pinned host memory; no wait. When a later wait finds it set, describe(index, value) is the
// message of the InvalidArgument it raises.
void defer_device_check(const DeviceErrorSlot* slot, Stream stream,
                        std::function<std::string(std::int64_t index, std::int64_t value)> describe);

// Called after each wait of the host for `device` that precedes a read of device memory
// (synchronize(), copies to the host): retires the checks whose copies have completed and throws
// the oldest failed one; the others found failed by the same wait are dropped with it.
void raise_deferred_errors(int device);

}  // namespace convkit::detail
