#include "bench_stats.h"

#include <algorithm>
#include <cmath>

#include "convkit/error.h"

namespace convkit::bench {

TimingStats summarize(std::vector<double> times_ms) {
    if (times_ms.empty()) throw InvalidArgument("summarize: no timings");
    std::sort(times_ms.begin(), times_ms.end());
    const std::size_t n = times_ms.size();
    TimingStats stats;
    stats.median_ms = n % 2 ? times_ms[n / 2] : (times_ms[n / 2 - 1] + times_ms[n / 2]) / 2;
    stats.min_ms = times_ms.front();
    stats.max_ms = times_ms.back();
    stats.runs = static_cast<int>(n);
    return stats;
}

int rotation_count(std::size_t set_bytes, std::size_t l2_bytes, int max_sets) {
    if (set_bytes == 0) return max_sets;
    const std::size_t needed = (2 * l2_bytes + set_bytes - 1) / set_bytes;
    return static_cast<int>(std::clamp<std::size_t>(needed, 1, static_cast<std::size_t>(std::max(1, max_sets))));
}

int repetitions_for(double first_ms, double budget_ms, int min_runs, int max_runs) {
    if (!(first_ms > 0)) return max_runs;
    const double fit = std::floor(budget_ms / first_ms);
    if (fit >= max_runs) return max_runs;
    return std::max(min_runs, static_cast<int>(fit));
}

double relative_l2_error(double squared_difference_sum, double squared_reference_sum) {
    if (std::isnan(squared_difference_sum) || std::isnan(squared_reference_sum)) return std::nan("");
    if (squared_reference_sum == 0) return std::sqrt(squared_difference_sum);
    return std::sqrt(squared_difference_sum / squared_reference_sum);
}

}  // namespace convkit::bench
