#pragma once
// The parts of convkit-bench that need a GPU: describing the machine, measuring its peaks, and
// timing one configuration with both backends.
#include <cstddef>
#include <string>
#include <vector>

#include "bench_options.h"
#include "bench_report.h"

namespace convkit::bench {

// Name, driver, CUDA and cuDNN versions and the date; `l2_bytes` receives the L2 cache size.
RunInfo describe_machine(int device, std::size_t& l2_bytes);

// A large device-to-device copy and large cuBLAS products (fp32 strict, tf32, bf16), each the
// median of several runs. A part that cannot run is left at 0 (written as null), with a warning.
Peak measure_peak(int device);

// Compares the two backends' results for every direction and dtype of `entry`, then times the
// ones that agree. Never throws for a configuration that fails: the row says why.
std::vector<BenchResult> run_config(const NamedConfig& entry, const Options& options, std::size_t l2_bytes);

// --model: the median time of one training step of `name` (bench_model.cpp).
ModelStepResult time_model_step(const std::string& name, const Options& options);
// --model with --inference: forwards of `name` in evaluation mode without gradients, bfloat16
// channels-last; for the ResNets also after fold_batch_norms(), timed only if its logits agree
// with the unfolded model's within bfloat16's reach (else its entry's status says by how much).
std::vector<ModelStepResult> time_model_inference(const std::string& name, const Options& options);

}  // namespace convkit::bench
