#pragma once
// The timing harness's arithmetic, kept apart from CUDA so the host tests can check it.
#include <cstddef>
#include <vector>

namespace convkit::bench {

struct TimingStats {
    double median_ms = 0;  // of an even count: the mean of the two middle values
    double min_ms = 0;
    double max_ms = 0;
    int runs = 0;
};

// Throws InvalidArgument on an empty list.
TimingStats summarize(std::vector<double> times_ms);

// How many copies of a pass's inputs to rotate over so that together they are at least twice
// the L2 cache: a pass then never finds its inputs left in L2 by the previous pass (the cache is
// not what is measured). At least 1, at most `max_sets`.
int rotation_count(std::size_t set_bytes, std::size_t l2_bytes, int max_sets = 64);

// Timed repetitions for a pass whose first run took `first_ms`: as many as fit in `budget_ms`,
// but at least `min_runs` and at most `max_runs` (slow passes get fewer, fast ones the most).
int repetitions_for(double first_ms, double budget_ms, int min_runs, int max_runs);

// sqrt(sum (a - b)^2 / sum b^2), the agreement measure between two backends' outputs; NaN if
// either holds a NaN (so `error <= tolerance` is false).
double relative_l2_error(double squared_difference_sum, double squared_reference_sum);

}  // namespace convkit::bench
