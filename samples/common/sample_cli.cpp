#include "common/sample_cli.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <system_error>

#include "convkit/error.h"

namespace convkit::samples {

void add_sample_options(CLI::App& app, SampleOptions& options, const std::string& default_out_dir,
                        const std::optional<std::string>& default_data_dir) {
    options.device = cuda_device_count() > 0 ? "cuda" : "cpu";
    options.out_dir = default_out_dir;
    app.add_option("--device", options.device, "where to train: cuda (the default when a GPU is present) or cpu")
        ->check(CLI::IsMember({"cuda", "cpu"}))
        ->capture_default_str();
    app.add_option("--seed", options.seed, "seed of the initial weights, the shuffling and the augmentation")
        ->capture_default_str();
    app.add_option("--out", options.out_dir, "folder for the metrics, checkpoint and pictures (created if missing)")
        ->capture_default_str();
    if (default_data_dir) {
        options.data_dir = *default_data_dir;
        app.add_option("--data-dir", options.data_dir, "folder of the dataset's files")->capture_default_str();
    }
}

Device sample_device(const SampleOptions& options) {
    if (options.device == "cpu") return Device::host();
    if (cuda_device_count() == 0)
        throw NotSupported("--device cuda: " + cuda_unavailable_reason() + " (use --device cpu)");
    return Device::cuda();
}

void create_out_dir(const SampleOptions& options) {
    std::error_code error;
    std::filesystem::create_directories(options.out_dir, error);
    if (error) throw IoError("cannot create the output folder '" + options.out_dir + "': " + error.message());
}

int run_sample(const std::string& name, const std::function<int()>& body) {
    try {
        return body();
    } catch (const std::exception& e) {
        std::fflush(stdout);  // the error after whatever progress was printed
        std::fprintf(stderr, "%s: error: %s\n", name.c_str(), e.what());
        return 1;
    }
}

}  // namespace convkit::samples
