#include "bench_options.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <functional>
#include <sstream>

#include "bench_suites.h"
#include "convkit/error.h"
#include "convkit/variants.h"

namespace convkit::bench {

namespace {

[[noreturn]] void fail(const std::string& option, const std::string& message) {
    throw InvalidArgument(option + ": " + message);
}

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> items;
    std::istringstream stream(text);
    for (std::string item; std::getline(stream, item, ',');) {
        if (!item.empty()) items.push_back(item);
    }
    return items;
}

int parse_int(const std::string& option, const std::string& text, int lowest) {
    int value = 0;
    const auto [ptr, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || ptr != text.data() + text.size() || value < lowest) {
        fail(option, "expected an integer of at least " + std::to_string(lowest) + ", got '" + text + "'");
    }
    return value;
}

double parse_positive_double(const std::string& option, const std::string& text) {
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != text.size() || !(value > 0)) fail(option, "expected a positive number, got '" + text + "'");
    return value;
}

// The names of the registered convolution and pooling variants that run CUDA tensors.
std::vector<std::string> cuda_variant_names() {
    std::vector<std::string> names;
    for (const VariantInfo& v : registered_variants()) {
        if (v.device == DeviceType::CUDA && std::find(names.begin(), names.end(), v.name) == names.end()) {
            names.push_back(v.name);
        }
    }
    return names;
}

// What the options' callbacks collect before the options are finished.
struct Collected {
    std::vector<std::string> suites;
    std::vector<NamedConfig> custom;
    bool repeat_given = false, warmup_given = false, budget_given = false, min_repeat_given = false;
};

// Every option, with its checks (each error names the option). Shared by parsing and --help.
void add_options(CLI::App& app, Options& options, Collected& collected) {
    app.set_help_flag();  // --help is an option like the others: it prints usage() and exits 0
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    const auto list_option = [&](const std::string& name, const char* type, std::function<void(const std::string&)> each,
                                 const std::string& description) {
        return app
            .add_option_function<std::vector<std::string>>(
                name,
                [each](const std::vector<std::string>& values) {
                    for (const std::string& value : values) each(value);
                },
                description)
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
            ->allow_extra_args(false)
            ->type_name(type);
    };
    const auto int_option = [&](const std::string& name, int& target, int lowest, bool* given,
                                const std::string& description) {
        app.add_option_function<std::string>(
            name,
            [&target, lowest, given, name](const std::string& text) {
                target = parse_int(name, text, lowest);
                if (given != nullptr) *given = true;
            },
            description)
            ->type_name("N");
    };
    const auto number_option = [&](const std::string& name, double& target, bool* given,
                                   const std::string& description) {
        app.add_option_function<std::string>(
            name,
            [&target, given, name](const std::string& text) {
                target = parse_positive_double(name, text);
                if (given != nullptr) *given = true;
            },
            description)
            ->type_name("X");
    };

    app.add_flag("-h,--help", options.help, "this text");
    app.add_flag("--list", options.list, "print the configurations that would run, and exit (needs no GPU)");
    app.add_flag("--list-variants", options.list_variants,
                 "print every registered variant per op and pass, and exit (needs no GPU)");
    app.add_flag("--quick", options.quick, "the quick subset of each suite, fewer runs (a few minutes on an H100)");
    app.add_flag_function(
        "--no-peak", [&options](std::int64_t) { options.measure_peak = false; },
        "skip measuring the copy bandwidth and the cuBLAS peaks");
    list_option(
        "--suite", "NAMES",
        [&collected](const std::string& value) {
            for (const std::string& name : split_list(value)) {
                if (name == "all") {
                    collected.suites.insert(collected.suites.end(), standard_suite_names().begin(),
                                            standard_suite_names().end());
                } else {
                    (void)suite_configs(name, true);  // throws, naming the choices, if unknown
                    collected.suites.push_back(name);
                }
            }
        },
        "comma-separated: resnet18, resnet50, unet, depthwise, conv1d, conv3d, transposed, pooling, all "
        "(default: all, unless --config/--config-file)");
    list_option(
        "--config", "LINE",
        [&collected](const std::string& value) {
            collected.custom.push_back({"custom", parse_config_line(value, "--config")});
        },
        "one configuration, e.g. \"conv2d in=32x64x56x56 w=64x64x3x3 s1_p1\"");
    list_option(
        "--config-file", "PATH",
        [&collected](const std::string& value) {
            for (const BenchConfig& config : read_config_file(value)) collected.custom.push_back({"custom", config});
        },
        "one configuration per line; '#' starts a comment");
    app.add_option_function<std::string>(
        "--dtype",
        [&options](const std::string& value) {
            options.dtypes = split_list(value);
            for (const std::string& dtype : options.dtypes) {
                if (dtype != "f32" && dtype != "tf32" && dtype != "bf16" && dtype != "fp16") {
                    fail("--dtype", "'" + dtype + "' is not one of f32, tf32, bf16, fp16");
                }
            }
            if (options.dtypes.empty()) fail("--dtype", "needs at least one dtype");
        },
        "f32 (strict float32, default), tf32; bf16, fp16 (convolutions, channels-last activations)")
        ->type_name("LIST");
    app.add_option_function<std::string>(
        "--direction",
        [&options](const std::string& value) {
            options.directions.clear();
            for (const std::string& name : split_list(value)) {
                try {
                    options.directions.push_back(parse_direction(name));
                } catch (const InvalidArgument& error) {
                    fail("--direction", error.what());
                }
            }
        },
        "fwd, bwd_data, bwd_filter (default: all the op has)")
        ->type_name("LIST");
    app.add_option_function<std::string>(
        "--variant",
        [&options](const std::string& name) {
            const std::vector<std::string> names = cuda_variant_names();
            if (std::find(names.begin(), names.end(), name) == names.end()) {
                std::string known;
                for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
                fail("--variant", "'" + name + "' is not a registered CUDA variant (choose " + known + ")");
            }
            options.variant = name;
        },
        "run convkit's side of every comparison with this variant named (default: the hand-written kernels, "
        "cuda.direct; --list-variants shows the names)")
        ->type_name("NAME");
    int_option("--warmup", options.warmup, 0, &collected.warmup_given, "untimed runs per pass (default 5; quick 2)");
    int_option("--repeat", options.repeat, 1, &collected.repeat_given,
               "most timed runs per pass (default 50; quick 15)");
    int_option("--min-repeat", options.min_repeat, 1, &collected.min_repeat_given,
               "fewest timed runs per pass (default 5; quick 3)");
    number_option("--budget-ms", options.budget_ms, &collected.budget_given,
                  "time per pass and backend that sets the runs (default 2000; quick 250)");
    number_option("--tolerance", options.tolerance_f32, nullptr,
                  "relative L2 difference allowed between the backends in f32 (1e-4)");
    number_option("--tolerance-tf32", options.tolerance_tf32, nullptr, "the same in tf32 (1e-2)");
    number_option("--tolerance-16bit", options.tolerance_16bit, nullptr, "the same in bf16 and fp16 (2e-2)");
    int_option("--device", options.device, 0, nullptr, "the CUDA device (default 0)");
    app.add_option("--json", options.json_path,
                   "write the results as JSON (\"-\": stdout, the table then goes to stderr)")
        ->type_name("PATH");
    app.add_option("--csv", options.csv_path, "write the results as CSV (\"-\": stdout)")->type_name("PATH");
    list_option(
        "--model", "NAMES",
        [&options](const std::string& value) {
            for (const std::string& name : split_list(value)) {
                check_bench_model_name(name);  // throws, naming the choices, if unknown
                options.models.push_back(name);
            }
        },
        "time whole training steps (forward, backward, SGD step; float32, 3x224x224, 1000 classes) of "
        "resnet18, resnet34, resnet50, vgg11_bn, vgg16_bn from convkit's model zoo; alone, only these run");
    app.add_flag("--inference", options.model_inference,
                 "with --model: time inference forwards (evaluation mode, no gradients, bfloat16 channels-last) "
                 "instead of training steps; the ResNets also with their BatchNorms folded (fold_batch_norms)");
    int_option("--batch", options.model_batch, 1, nullptr, "images per model step (default 32)");
    int_option("--steps", options.model_steps, 1, nullptr, "timed model steps, after --warmup untimed ones (default 20)");
}

}  // namespace

Options parse_options(const std::vector<std::string>& arguments) {
    Options options;
    Collected collected;
    CLI::App app{"convkit-bench", "convkit-bench"};
    add_options(app, options, collected);
    // CLI11 takes the arguments last first.
    std::vector<std::string> reversed(arguments.rbegin(), arguments.rend());
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& error) {
        // CLI11's own messages name the option ("--json: 1 required TEXT missing").
        throw InvalidArgument(error.what());
    }
    // Quick mode: fewer runs per pass; options given explicitly still win.
    if (options.quick) {
        if (!collected.warmup_given) options.warmup = 2;
        if (!collected.repeat_given) options.repeat = 15;
        if (!collected.min_repeat_given) options.min_repeat = 3;
        if (!collected.budget_given) options.budget_ms = 250;
    }
    if (options.min_repeat > options.repeat) {
        fail("--min-repeat",
             std::to_string(options.min_repeat) + " exceeds --repeat " + std::to_string(options.repeat));
    }
    if (options.model_inference && options.models.empty()) fail("--inference", "needs --model: the models to run");
    // --model alone times the models only; with --suite or --config, both.
    std::vector<std::string>& suites = collected.suites;
    if (suites.empty() && collected.custom.empty() && options.models.empty()) suites = standard_suite_names();
    for (const std::string& suite : suites) {
        for (const BenchConfig& config : suite_configs(suite, options.quick))
            options.configs.push_back({suite, config});
    }
    options.configs.insert(options.configs.end(), collected.custom.begin(), collected.custom.end());
    return options;
}

std::string usage() {
    Options options;
    Collected collected;
    CLI::App app{"convkit-bench: times convkit's CUDA kernels (or the --variant named) against cuDNN "
                 "(docs/benchmarks.md)",
                 "convkit-bench"};
    add_options(app, options, collected);
    return app.help() +
           "exit status: 0 all compared results agree; 1 a mismatch; 2 bad arguments or no usable GPU\n";
}

std::string variants_table() {
    std::string text;
    for (const VariantInfo& v : registered_variants()) {
        text += v.family + "\t" + v.pass + "\t" + v.name + "\t" + (v.device == DeviceType::CUDA ? "cuda" : "host") +
                "\n";
    }
    return text;
}

}  // namespace convkit::bench
