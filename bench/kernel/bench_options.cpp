#include "bench_options.h"

#include <charconv>
#include <sstream>

#include "bench_suites.h"
#include "convkit/error.h"

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

}  // namespace

Options parse_options(const std::vector<std::string>& arguments) {
    Options options;
    std::vector<std::string> suites;
    std::vector<NamedConfig> custom;
    bool repeat_given = false, warmup_given = false, budget_given = false, min_repeat_given = false;
    for (std::size_t i = 0; i < arguments.size(); ++i) {
        std::string option = arguments[i];
        std::string value;
        bool has_value = false;
        if (const auto eq = option.find('='); option.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = option.substr(eq + 1);
            option = option.substr(0, eq);
            has_value = true;
        }
        const auto take_value = [&]() -> std::string {
            if (has_value) return value;
            if (i + 1 >= arguments.size()) fail(option, "needs a value");
            return arguments[++i];
        };
        if (option == "--help" || option == "-h") {
            options.help = true;
        } else if (option == "--list") {
            options.list = true;
        } else if (option == "--quick") {
            options.quick = true;
        } else if (option == "--no-peak") {
            options.measure_peak = false;
        } else if (option == "--suite") {
            for (const std::string& name : split_list(take_value())) {
                if (name == "all") {
                    suites.insert(suites.end(), standard_suite_names().begin(), standard_suite_names().end());
                } else {
                    (void)suite_configs(name, true);  // throws, naming the choices, if unknown
                    suites.push_back(name);
                }
            }
        } else if (option == "--config") {
            custom.push_back({"custom", parse_config_line(take_value(), "--config")});
        } else if (option == "--config-file") {
            for (const BenchConfig& config : read_config_file(take_value())) custom.push_back({"custom", config});
        } else if (option == "--dtype") {
            options.dtypes = split_list(take_value());
            for (const std::string& dtype : options.dtypes) {
                if (dtype != "f32" && dtype != "tf32" && dtype != "bf16" && dtype != "fp16") {
                    fail(option, "'" + dtype + "' is not one of f32, tf32, bf16, fp16");
                }
            }
            if (options.dtypes.empty()) fail(option, "needs at least one dtype");
        } else if (option == "--direction") {
            options.directions.clear();
            for (const std::string& name : split_list(take_value())) {
                try {
                    options.directions.push_back(parse_direction(name));
                } catch (const InvalidArgument& error) {
                    fail(option, error.what());
                }
            }
        } else if (option == "--warmup") {
            options.warmup = parse_int(option, take_value(), 0);
            warmup_given = true;
        } else if (option == "--repeat") {
            options.repeat = parse_int(option, take_value(), 1);
            repeat_given = true;
        } else if (option == "--min-repeat") {
            options.min_repeat = parse_int(option, take_value(), 1);
            min_repeat_given = true;
        } else if (option == "--budget-ms") {
            options.budget_ms = parse_positive_double(option, take_value());
            budget_given = true;
        } else if (option == "--tolerance") {
            options.tolerance_f32 = parse_positive_double(option, take_value());
        } else if (option == "--tolerance-tf32") {
            options.tolerance_tf32 = parse_positive_double(option, take_value());
        } else if (option == "--device") {
            options.device = parse_int(option, take_value(), 0);
        } else if (option == "--json") {
            options.json_path = take_value();
        } else if (option == "--csv") {
            options.csv_path = take_value();
        } else if (option == "--model") {
            for (const std::string& name : split_list(take_value())) {
                check_bench_model_name(name);  // throws, naming the choices, if unknown
                options.models.push_back(name);
            }
        } else if (option == "--batch") {
            options.model_batch = parse_int(option, take_value(), 1);
        } else if (option == "--steps") {
            options.model_steps = parse_int(option, take_value(), 1);
        } else {
            fail(option, "unknown option (see --help)");
        }
    }
    // Quick mode: fewer runs per pass; options given explicitly still win.
    if (options.quick) {
        if (!warmup_given) options.warmup = 2;
        if (!repeat_given) options.repeat = 15;
        if (!min_repeat_given) options.min_repeat = 3;
        if (!budget_given) options.budget_ms = 250;
    }
    if (options.min_repeat > options.repeat) {
        fail("--min-repeat",
             std::to_string(options.min_repeat) + " exceeds --repeat " + std::to_string(options.repeat));
    }
    // --model alone times the models only; with --suite or --config, both.
    if (suites.empty() && custom.empty() && options.models.empty()) suites = standard_suite_names();
    for (const std::string& suite : suites) {
        for (const BenchConfig& config : suite_configs(suite, options.quick))
            options.configs.push_back({suite, config});
    }
    options.configs.insert(options.configs.end(), custom.begin(), custom.end());
    return options;
}

std::string usage() {
    return R"(convkit-bench: times convkit's hand-written CUDA kernels against cuDNN (docs/benchmarks.md)

usage: convkit-bench [options]
  --suite NAMES         comma-separated: resnet18, resnet50, unet, depthwise, conv1d, conv3d,
                        transposed, pooling, all (default: all, unless --config/--config-file)
  --config LINE         one configuration, e.g. "conv2d in=32x64x56x56 w=64x64x3x3 s1_p1"
  --config-file PATH    one configuration per line; '#' starts a comment
  --quick               the quick subset of each suite, fewer runs (a few minutes on an H100)
  --dtype LIST          f32 (strict float32, default), tf32; bf16, fp16 are reported unsupported
  --direction LIST      fwd, bwd_data, bwd_filter (default: all the op has)
  --warmup N            untimed runs per pass (default 5; quick 2)
  --repeat N            most timed runs per pass (default 50; quick 15)
  --min-repeat N        fewest timed runs per pass (default 5; quick 3)
  --budget-ms MS        time per pass and backend that sets the runs (default 2000; quick 250)
  --tolerance X         relative L2 difference allowed between the backends in f32 (1e-4)
  --tolerance-tf32 X    the same in tf32 (1e-2)
  --no-peak             skip measuring the copy bandwidth and the cuBLAS peaks
  --device N            the CUDA device (default 0)
  --json PATH           write the results as JSON ("-": stdout, the table then goes to stderr)
  --csv PATH            write the results as CSV ("-": stdout)
  --model NAMES         time whole training steps (forward, backward, SGD step; float32,
                        3x224x224, 1000 classes) of resnet18, resnet34, resnet50, vgg11_bn,
                        vgg16_bn from convkit's model zoo; alone, only these run
  --batch N             images per model step (default 32)
  --steps N             timed model steps, after --warmup untimed ones (default 20)
  --list                print the configurations that would run, and exit (needs no GPU)
  --help                this text
exit status: 0 all compared results agree; 1 a mismatch; 2 bad arguments or no usable GPU
)";
}

}  // namespace convkit::bench
