#pragma once
// The work a configuration does, the numerator of every rate and floor in the report:
//   flops  2 x multiply-adds of the direct definition (the same for all three directions of a
//          convolution: each sums the same products, grouped differently); 0 for pooling
//   bytes  the least traffic of the pass: every tensor it reads once, the one it writes once
//          (conv fwd x + w -> y, bwd_data dy + w -> dx, bwd_filter dy + x -> dw; max-pool bwd
//          dy + x -> dx, avg-pool bwd dy -> dx), and an epilogue's bias and residual read once
//          (its ReLU is free). Workspaces and re-reads are the backend's cost. Batch norm in
//          training reads its input twice, as no pass can normalize before the statistics are
//          complete (fwd x, x -> y; bwd dy, x, then dy, x -> dx; its [C] parameters not
//          counted), ReLU fwd x -> y, bwd y, dy -> dx (the gradient from the output), add fwd
//          x, addend -> y, bwd (an addend that broadcasts) dy -> the addend's gradient.
// Floors: time >= flops / peak FLOP/s and time >= bytes / peak bandwidth (docs/benchmarks.md).
#include <cstddef>

#include "bench_config.h"

namespace convkit::bench {

struct WorkCounts {
    double flops = 0;
    double bytes = 0;
};

WorkCounts work_counts(const BenchConfig& config, Direction direction, std::size_t element_size = 4);

// Convolutions are reported in TFLOP/s against the arithmetic peak, pooling and the layers in
// GB/s against the copy bandwidth.
constexpr bool reports_flops(BenchOp op) {
    return is_conv(op);
}

// max(flops / peak_flops, bytes / peak_bytes_per_s) in milliseconds; a peak <= 0 (not measured)
// drops its term.
double floor_ms(const WorkCounts& work, double peak_tflops, double peak_gbps);

}  // namespace convkit::bench
