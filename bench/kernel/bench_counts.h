#pragma once
// The work a configuration does, the numerator of every rate and floor in the report:
//   flops  2 x multiply-adds of the direct definition (the same for all three directions of a
//          convolution: each sums the same products, grouped differently); 0 for pooling
//   bytes  the least traffic of the pass: every tensor it reads once, the one it writes once
//          (conv fwd x + w -> y, bwd_data dy + w -> dx, bwd_filter dy + x -> dw; max-pool bwd
//          dy + x -> dx, avg-pool bwd dy -> dx), and an epilogue's bias and residual read once
//          (its ReLU is free). Workspaces and re-reads are the backend's cost.
// Floors: time >= flops / peak FLOP/s and time >= bytes / peak bandwidth (docs/benchmarks.md).
#include <cstddef>

#include "bench_config.h"

namespace convkit::bench {

struct WorkCounts {
    double flops = 0;
    double bytes = 0;
};

WorkCounts work_counts(const BenchConfig& config, Direction direction, std::size_t element_size = 4);

// Convolutions are reported in TFLOP/s against the arithmetic peak, pooling in GB/s against the
// copy bandwidth.
constexpr bool reports_flops(BenchOp op) {
    return !is_pool(op);
}

// max(flops / peak_flops, bytes / peak_bytes_per_s) in milliseconds; a peak <= 0 (not measured)
// drops its term.
double floor_ms(const WorkCounts& work, double peak_tflops, double peak_gbps);

}  // namespace convkit::bench
