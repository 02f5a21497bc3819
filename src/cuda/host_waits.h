#pragma once
// The count of the library's waits for a device, in plain C++ for tests (no CUDA header).
#include <cstdint>

namespace convkit::detail {

// How many times the library has waited for a device so far, from any thread: every wait goes
// through wait_for_stream / wait_for_event (cuda/cuda_runtime.h). A training step should make
// none (tests/test_cuda_step_sync.cpp).
std::uint64_t host_waits();

}  // namespace convkit::detail
