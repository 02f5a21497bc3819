#pragma once
// Launchers of the metric kernels (kernels/metrics.cu); plain C++ for host callers. They count on
// the device so that a training loop can keep a running accuracy without waiting for it.
#include <cstdint>

#include "convkit/device.h"
#include "cuda/deferred_errors.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// *correct = how many of the `count` targets other than ignore_index equal the predicted class
// at their position (an int64 in device memory, overwritten). A target outside [0, classes)
// other than ignore_index counts nowhere and is reported in `invalid` (its index set to the
// first such position, its value to that target; all index bits set when there is none), for
// the caller to check at the host's next wait (cuda/deferred_errors.h).
void count_correct(const std::int64_t* predicted, const std::int64_t* targets, std::int64_t count,
                   std::int64_t classes, std::int64_t ignore_index, std::int64_t* correct,
                   detail::DeviceErrorSlot* invalid, Stream stream);

CONVKIT_KERNELS_END
