#pragma once
// The toy variant's counters (tests/toy_variant.cpp).
#include <atomic>

namespace convkit::testing {
extern std::atomic<int> toy_variant_runs;      // how many times test.toy ran
extern std::atomic<int> toy_variant_delay_ms;  // sleep per run, to make it lose measurements
}  // namespace convkit::testing
