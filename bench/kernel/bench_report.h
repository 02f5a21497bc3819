#pragma once
// Results and the three ways they are written: a readable table, --json (the format of
// issue #6, documented in docs/benchmarks.md) and --csv (every number, one row per result).
#include <optional>
#include <string>
#include <vector>

#include "bench_config.h"
#include "bench_counts.h"
#include "bench_stats.h"

namespace convkit::bench {

enum class Status { Ok, Mismatch, Unsupported };
const char* status_name(Status status);  // "ok", "mismatch", "unsupported"

// Measured once per run. A value <= 0 was not measured and is written as null.
struct Peak {
    double copy_gbps = 0;  // device-to-device copy: (read + write bytes) / time
    double bf16_tflops = 0;
    double tf32_tflops = 0;
    double fp32_tflops = 0;
};

struct RunInfo {
    std::string gpu;   // the name the driver reports
    std::string date;  // ISO 8601, UTC
    std::string driver;
    std::string cuda;
    std::string cudnn;
    Peak peak;
};

struct BenchResult {
    std::string suite;
    BenchConfig config;
    Direction direction = Direction::Forward;
    std::string dtype = "f32";  // f32 (strict), tf32, bf16, fp16
    Status status = Status::Ok;
    std::optional<TimingStats> convkit;  // both set when status is Ok
    std::optional<TimingStats> cudnn;
    WorkCounts work;
    // Why a row is not ok (the mismatch's size, the unsupported reason); on an epilogue row, how
    // cuDNN's side applied it ("cudnn epilogue: fused: ..." or "...: separate calls (why)").
    std::string note;
    // The variant that ran convkit's side (last_conv_variant / last_pool_variant after its first
    // pass): the one --variant names, or the default's choice; "" where it did not run.
    std::string convkit_variant;

    std::string name() const { return config.to_line(); }
    // cudnn_ms / convkit_ms: above 1 convkit is faster. nullopt unless both were timed.
    std::optional<double> ratio() const;
    // convkit's rate: TFLOP/s for convolutions, GB/s for pooling.
    std::optional<double> rate(const TimingStats& stats) const;
};

// The peak a result is measured against: the FLOP/s of its dtype for convolutions, the copy
// bandwidth for pooling; 0 if not measured.
double peak_for(const Peak& peak, const BenchResult& result);

// One timed model of --model: whole training steps (forward, backward, optimizer) in float32.
struct ModelStepResult {
    std::string model;
    // "train": forward, cross-entropy, backward, SGD step (float32); "inference": a forward in
    // evaluation mode without gradients (bfloat16, channels-last); "inference folded": the same
    // after fold_batch_norms() (ResNets).
    std::string mode = "train";
    std::string dtype = "f32";
    std::string status = "ok";  // or why it was not timed
    int batch = 0;
    int steps = 0;         // timed
    double median_ms = 0;  // per step, the median over the timed steps
    double min_ms = 0;
    double max_ms = 0;
    double images_per_second() const { return median_ms > 0 ? batch * 1000.0 / median_ms : 0; }
};

std::string to_json(const RunInfo& info, const std::vector<BenchResult>& results,
                    const std::vector<ModelStepResult>& model_steps = {});
std::string model_steps_table(const std::vector<ModelStepResult>& model_steps);
std::string to_csv(const RunInfo& info, const std::vector<BenchResult>& results);
std::string to_table(const RunInfo& info, const std::vector<BenchResult>& results);

}  // namespace convkit::bench
