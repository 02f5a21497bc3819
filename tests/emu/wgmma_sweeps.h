#pragma once
// What the emulator's tests of the warpgroup-MMA convolution share: tests/emu/test_emu_wgmma.cpp
// (forward, backward-data, split-K, the plans) defines these, test_emu_wgmma_filter.cpp
// (backward-filter) its sweep and pass; both judge cases against the float64 definition of
// tests/emu/igemm_problem.h.
#include <optional>
#include <vector>

#include "emu/emulator.h"
#include "igemm_problem.h"

namespace convkit::wgmma_test {

using namespace igemm_test;

// The case's pass (forward, backward-data or backward-filter, by its direction).
std::vector<double> run_pass(const Case& cs, const Problem& p);
// Backward-filter's pass (test_emu_wgmma_filter.cpp).
std::vector<double> run_backward_filter(const Case& cs, const Problem& p);

// The sweeps: backward-data's (test_emu_wgmma.cpp), backward-filter's (test_emu_wgmma_filter.cpp).
const std::vector<Case>& backward_data_sweep();
const std::vector<Case>& backward_filter_sweep();

// The cases again on the producer ring (a third warpgroup loads; the stages change hands on
// mbarriers).
std::vector<Case> on_the_producer_ring(std::vector<Case> cases);

// The case on random values against the float64 definition, at its dtype's tolerance.
void expect_matches_the_definition(const Case& cs);
// Small integers: every product and sum is exact in float, so the float output must equal the
// definition bit for bit, on every case of a sweep.
void expect_small_integers_bit_for_bit(const std::vector<Case>& cases);

// Sets the emulator's schedule for its lifetime (the ring tests choose their own).
struct ScheduleScope {
    explicit ScheduleScope(emu::Schedule s) { emu::set_schedule_override(s); }
    ~ScheduleScope() { emu::set_schedule_override(std::nullopt); }
};

}  // namespace convkit::wgmma_test
