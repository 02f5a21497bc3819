#pragma once
// convkit-bench's command line (CLI11; usage() lists it). Parsed without a GPU so the host
// tests can check it; every error names the option.
#include <string>
#include <vector>

#include "bench_config.h"

namespace convkit::bench {

struct NamedConfig {
    std::string suite;  // a standard suite's name, or "custom" for --config / --config-file
    BenchConfig config;
};

struct Options {
    bool help = false;
    bool list = false;                       // print the configurations and exit (no GPU needed)
    bool list_variants = false;              // print the registered variants and exit (no GPU needed)
    std::string variant;                     // --variant: convkit's side runs this variant (default: the backend's)
    bool quick = false;                      // the quick subsets, fewer repetitions, a smaller time budget
    std::vector<NamedConfig> configs;        // in run order
    std::vector<std::string> dtypes{"f32"};  // f32 (strict float32), tf32; bf16, fp16 (convolutions, channels-last)
    std::vector<Direction> directions;       // empty: every direction an op has
    int warmup = 5;
    int repeat = 50;              // most timed runs per pass
    int min_repeat = 5;           // fewest timed runs per pass, however slow
    double budget_ms = 2000;      // time per pass and backend that sets the number of runs
    double tolerance_f32 = 1e-4;  // relative L2 difference allowed between the backends
    double tolerance_tf32 = 1e-2;
    double tolerance_16bit = 2e-2;  // bf16 and fp16: each side rounds its result once
    bool measure_peak = true;
    int device = 0;
    std::string json_path;  // "-" is stdout
    std::string csv_path;
    // --model: time whole training steps of a model zoo network instead of (or with) layers.
    std::vector<std::string> models;  // resnet18, resnet34, resnet50, vgg11_bn, vgg16_bn
    int model_batch = 32;
    int model_steps = 20;  // timed steps (after as many warm-up steps as --warmup)
    // --inference: forward passes in evaluation mode (bfloat16, channels-last), and for the
    // ResNets the same after fold_batch_norms(), instead of training steps.
    bool model_inference = false;
};

// `arguments` excludes the program name. Without --suite, --config or --config-file, every
// standard suite runs. Throws InvalidArgument naming the option and the bad value.
// Values of repeated list options (--suite, --config, --config-file, --model) accumulate; a
// repeated single-value option keeps its last value. --config lines come before
// --config-file ones.
Options parse_options(const std::vector<std::string>& arguments);
std::string usage();
// "conv\tforward\tcuda.direct\tcuda": one line per registered variant and pass (--list-variants).
std::string variants_table();

}  // namespace convkit::bench
