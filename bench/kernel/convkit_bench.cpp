// convkit-bench: convkit's hand-written CUDA kernels against cuDNN, pass by pass, on the standard
// suites or any configuration (docs/benchmarks.md). `convkit-bench --help` lists the options.
#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>

#include <cuda_runtime_api.h>

#include "bench_gpu.h"
#include "bench_options.h"
#include "bench_report.h"
#include "convkit/convkit.h"

namespace {
using namespace convkit;
using namespace convkit::bench;

// Set by SIGTERM (what `timeout` sends when a time limit runs out): the run stops after the
// configuration in progress and still writes what it measured, so a limited run is not lost.
std::atomic<bool> stop_requested{false};
extern "C" void request_stop(int) { stop_requested.store(true); }

void write_output(const std::string& path, const std::string& text) {
    if (path == "-") {
        std::cout << text << std::flush;
        return;
    }
    std::ofstream file(path);
    file << text;
    if (!file) throw IoError("convkit-bench: cannot write '" + path + "'");
}

int run(const Options& options) {
    if (options.device >= cuda_device_count()) {
        const std::string reason = cuda_is_available()
                                       ? "device " + std::to_string(options.device) + " does not exist (" +
                                             std::to_string(cuda_device_count()) + " present)"
                                       : cuda_unavailable_reason();
        std::cerr << "convkit-bench: no usable CUDA device: " << reason
                  << "\nconvkit-bench times GPU kernels and needs one; --list shows the configurations without.\n";
        return 2;
    }
    if (cudaSetDevice(options.device) != cudaSuccess) {
        std::cerr << "convkit-bench: cannot select CUDA device " << options.device << "\n";
        return 2;
    }
    // With a machine format on stdout, everything for people goes to stderr.
    const bool stdout_taken = options.json_path == "-" || options.csv_path == "-";
    std::ostream& human = stdout_taken ? std::cerr : std::cout;

    std::size_t l2_bytes = 0;
    RunInfo info = describe_machine(options.device, l2_bytes);
    std::cerr << "convkit-bench: " << info.gpu << ", L2 " << l2_bytes / (1024 * 1024) << " MiB, cuDNN " << info.cudnn
              << "; " << options.configs.size() << " configurations; convkit's side: "
              << (options.variant.empty() ? std::string("the CUDA backend's default variants") : options.variant)
              << "\n";
    std::signal(SIGTERM, request_stop);
    if (options.measure_peak) info.peak = measure_peak(options.device);

    std::vector<BenchResult> results;
    for (std::size_t i = 0; i < options.configs.size(); ++i) {
        if (stop_requested.load()) {
            std::cerr << "convkit-bench: stopped by SIGTERM after " << i << " of " << options.configs.size()
                      << " configurations; writing what was measured" << std::endl;
            break;
        }
        const NamedConfig& entry = options.configs[i];
        std::cerr << "[" << i + 1 << "/" << options.configs.size() << "] " << entry.suite << ": "
                  << entry.config.to_line() << std::endl;
        for (BenchResult& result : run_config(entry, options, l2_bytes)) results.push_back(std::move(result));
    }

    std::vector<ModelStepResult> model_steps;
    for (const std::string& model : stop_requested.load() ? std::vector<std::string>{} : options.models) {
        std::cerr << "model " << model << ", batch " << options.model_batch << ": "
                  << (options.model_inference ? "inference" : "training steps") << std::endl;
        if (!options.model_inference) {
            model_steps.push_back(time_model_step(model, options));
            continue;
        }
        for (ModelStepResult& result : time_model_inference(model, options)) model_steps.push_back(std::move(result));
    }

    if (!options.json_path.empty()) write_output(options.json_path, to_json(info, results, model_steps));
    if (!options.csv_path.empty()) write_output(options.csv_path, to_csv(info, results));
    human << to_table(info, results);
    if (!model_steps.empty()) human << model_steps_table(model_steps);
    int ok = 0, mismatched = 0, unsupported = 0;
    for (const BenchResult& r : results) {
        (r.status == Status::Ok ? ok : r.status == Status::Mismatch ? mismatched : unsupported)++;
    }
    human << "\n"
          << results.size() << " results: " << ok << " ok, " << mismatched << " mismatch, " << unsupported
          << " unsupported\n";
    return mismatched > 0 ? 1 : 0;
}
}  // namespace

int main(int argc, char** argv) {
    Options options;
    try {
        options = parse_options(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const InvalidArgument& error) {
        std::cerr << "convkit-bench: " << error.what() << "\n(convkit-bench --help lists the options)\n";
        return 2;
    }
    if (options.help) {
        std::cout << usage();
        return 0;
    }
    if (options.list_variants) {
        std::cout << variants_table();
        return 0;
    }
    if (options.list) {
        for (const NamedConfig& entry : options.configs)
            std::cout << entry.suite << "\t" << entry.config.to_line() << "\n";
        for (const std::string& model : options.models) {
            std::cout << "model\t" << model << " batch " << options.model_batch << " training step\n";
        }
        return 0;
    }
    try {
        return run(options);
    } catch (const Error& error) {
        std::cerr << "convkit-bench: " << error.what() << "\n";
        return 2;
    }
}
