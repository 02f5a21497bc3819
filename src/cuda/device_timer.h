#pragma once
// Device time of enqueued work, for code that must not include CUDA headers (the variant
// selection's measured mode). Implemented in cuda/cuda_runtime.cpp.
#include <functional>

#include "convkit/device.h"

namespace convkit::detail {

// Milliseconds the device spent on the work `enqueue` puts on `stream`, measured between two
// events recorded on the stream around it (the host's own time in `enqueue` does not count).
// Waits for the second event: one counted host wait.
double device_time_ms(Stream stream, const std::function<void()>& enqueue);

}  // namespace convkit::detail
