#pragma once
// The options every sample shares, and the error handling of its main():
//
//   int main(int argc, char** argv) {
//       CLI::App app{"What the sample does"};
//       samples::SampleOptions common;
//       samples::add_sample_options(app, common, "fashion-mnist-out", data::kDefaultFashionMnistDirectory);
//       ... the sample's own options ...
//       CLI11_PARSE(app, argc, argv);
//       return samples::run_sample("fashion_mnist", [&] { return train(common, ...); });
//   }
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "convkit/device.h"

namespace convkit::samples {

struct SampleOptions {
    std::string device;  // "cuda" or "cpu"; defaults to "cuda" when a CUDA device is present
    std::uint64_t seed = 1;
    std::string out_dir;
    std::string data_dir;  // only for samples that read a dataset
};

// Adds --device cuda|cpu, --seed N, --out DIR (default `default_out_dir`) and, when
// `default_data_dir` is given, --data-dir DIR.
void add_sample_options(CLI::App& app, SampleOptions& options, const std::string& default_out_dir,
                        const std::optional<std::string>& default_data_dir = std::nullopt);

// The device the options name. --device cuda without a usable GPU is a NotSupported error
// carrying the runtime's reason.
Device sample_device(const SampleOptions& options);

// Creates --out (and its parents) if missing; an IoError if it cannot.
void create_out_dir(const SampleOptions& options);

// Runs a sample's body and returns its exit code. Any exception becomes one line on stderr,
// "<name>: error: <message>", and exit code 1: the user sees what went wrong, not a trace.
int run_sample(const std::string& name, const std::function<int()>& body);

}  // namespace convkit::samples
