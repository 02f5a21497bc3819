// Modules (op "module"): a convkit module built from the description under "module.", loaded
// with the PyTorch module's state_dict ("state.<name>" tensors), run forward and backward.
//
// A description is keys under a prefix: "<prefix>type" ("Conv2d", "MaxPool1d", "Sequential",
// ...) and the constructor's arguments by PyTorch's names ("<prefix>in_channels", ...). A
// Sequential has "<prefix>children" = n and its i-th child under "<prefix><i>.".
#include "torch_diff/torch_diff.h"

namespace torch_diff {

namespace {
namespace nn = convkit::nn;
using ModulePtr = std::shared_ptr<nn::Module>;
using Builder = std::function<ModulePtr(const Case&, const std::string& prefix)>;

ModulePtr build_module(const Case& c, const std::string& prefix);

nn::KernelSize kernel_size(const Case& c, const std::string& prefix, int rank) {
    nn::KernelSize kernel(1);
    kernel.sizes = per_dim(prefix + "kernel_size", c.integers(prefix + "kernel_size"), rank);
    return kernel;
}

template <typename Layer>
Builder conv_layer(int rank) {
    return [rank](const Case& c, const std::string& prefix) -> ModulePtr {
        return std::make_shared<Layer>(c.integer(prefix + "in_channels"), c.integer(prefix + "out_channels"),
                                       kernel_size(c, prefix, rank), conv_params_from(c, prefix, rank),
                                       c.flag(prefix + "bias", true));
    };
}

template <typename Layer>
Builder pool_layer(int rank) {
    return [rank](const Case& c, const std::string& prefix) -> ModulePtr {
        return std::make_shared<Layer>(pool_params_from(c, prefix, rank));
    };
}

Builder adaptive_avg_pool_layer(int rank) {
    return [rank](const Case& c, const std::string& prefix) -> ModulePtr {
        return std::make_shared<nn::AdaptiveAvgPool>(
            per_dim(prefix + "output_size", c.integers(prefix + "output_size"), rank));
    };
}

ModulePtr flatten(const Case& c, const std::string& prefix) {
    return std::make_shared<nn::Flatten>(static_cast<int>(c.integer_or(prefix + "start_dim", 1)),
                                         static_cast<int>(c.integer_or(prefix + "end_dim", -1)));
}

template <typename Layer>
Builder batch_norm_layer() {
    return [](const Case& c, const std::string& prefix) -> ModulePtr {
        nn::BatchNormOptions options;
        options.eps = c.number_or(prefix + "eps", options.eps);
        // PyTorch's momentum=None: a cumulative average.
        if (c.text_or(prefix + "momentum", "0.1") == "None") {
            options.momentum = std::nullopt;
        } else {
            options.momentum = c.number_or(prefix + "momentum", 0.1);
        }
        options.affine = c.flag(prefix + "affine", true);
        options.track_running_stats = c.flag(prefix + "track_running_stats", true);
        return std::make_shared<Layer>(c.integer(prefix + "num_features"), options);
    };
}

ModulePtr gelu(const Case& c, const std::string& prefix) {
    const std::string approximate = c.text_or(prefix + "approximate", "none");
    if (approximate != "none" && approximate != "tanh") throw CaseError("unknown approximate '" + approximate + "'");
    return std::make_shared<nn::GELU>(approximate == "tanh" ? convkit::GeluApproximation::Tanh
                                                            : convkit::GeluApproximation::None);
}

ModulePtr sequential(const Case& c, const std::string& prefix) {
    auto model = std::make_shared<nn::Sequential>();
    const std::int64_t children = c.integer(prefix + "children");
    for (std::int64_t i = 0; i < children; ++i) model->push_back(build_module(c, prefix + std::to_string(i) + "."));
    return model;
}

const std::map<std::string, Builder>& builders() {
    static const std::map<std::string, Builder> table = {
        {"Conv1d", conv_layer<nn::Conv1d>(1)},
        {"Conv2d", conv_layer<nn::Conv2d>(2)},
        {"Conv3d", conv_layer<nn::Conv3d>(3)},
        {"ConvTranspose1d", conv_layer<nn::ConvTranspose1d>(1)},
        {"ConvTranspose2d", conv_layer<nn::ConvTranspose2d>(2)},
        {"ConvTranspose3d", conv_layer<nn::ConvTranspose3d>(3)},
        {"MaxPool1d", pool_layer<nn::MaxPool1d>(1)},
        {"MaxPool2d", pool_layer<nn::MaxPool2d>(2)},
        {"MaxPool3d", pool_layer<nn::MaxPool3d>(3)},
        {"AvgPool1d", pool_layer<nn::AvgPool1d>(1)},
        {"AvgPool2d", pool_layer<nn::AvgPool2d>(2)},
        {"AvgPool3d", pool_layer<nn::AvgPool3d>(3)},
        {"AdaptiveAvgPool1d", adaptive_avg_pool_layer(1)},
        {"AdaptiveAvgPool2d", adaptive_avg_pool_layer(2)},
        {"AdaptiveAvgPool3d", adaptive_avg_pool_layer(3)},
        {"Flatten", flatten},
        {"BatchNorm1d", batch_norm_layer<nn::BatchNorm1d>()},
        {"BatchNorm2d", batch_norm_layer<nn::BatchNorm2d>()},
        {"BatchNorm3d", batch_norm_layer<nn::BatchNorm3d>()},
        {"ReLU", [](const Case&, const std::string&) -> ModulePtr { return std::make_shared<nn::ReLU>(); }},
        {"LeakyReLU",
         [](const Case& c, const std::string& prefix) -> ModulePtr {
             return std::make_shared<nn::LeakyReLU>(c.number_or(prefix + "negative_slope", 0.01));
         }},
        {"Sigmoid", [](const Case&, const std::string&) -> ModulePtr { return std::make_shared<nn::Sigmoid>(); }},
        {"Tanh", [](const Case&, const std::string&) -> ModulePtr { return std::make_shared<nn::Tanh>(); }},
        {"GELU", gelu},
        {"Dropout",
         [](const Case& c, const std::string& prefix) -> ModulePtr {
             return std::make_shared<nn::Dropout>(c.number_or(prefix + "p", 0.5));
         }},
        {"Upsample",
         [](const Case& c, const std::string& prefix) -> ModulePtr {
             return std::make_shared<nn::Upsample>(c.integers(prefix + "scale_factor"));
         }},
        {"Sequential", sequential},
    };
    return table;
}

ModulePtr build_module(const Case& c, const std::string& prefix) {
    const std::string& type = c.text(prefix + "type");
    const auto it = builders().find(type);
    if (it == builders().end()) throw CaseError("unknown module type '" + type + "' at '" + prefix + "'");
    return it->second(c, prefix);
}

const std::string kStatePrefix = "state.";

// Buffers (BatchNorm's running statistics) as the forward pass left them.
void add_buffers(const nn::Module& module, convkit::TensorMap& extras) {
    for (const auto& [name, buffer] : module.named_buffers()) extras["after." + kStatePrefix + name] = buffer.clone();
}
}  // namespace

ModulePtr prepared_module(Case& c) {
    ModulePtr module = build_module(c, "module.");
    module->to(convkit::DType::Float64);
    module->train(c.flag("module.training", true));
    nn::StateDict state;
    for (const auto& [name, tensor] : c.tensors()) {
        if (name.rfind(kStatePrefix, 0) == 0) state[name.substr(kStatePrefix.size())] = tensor;
    }
    module->load_state_dict(state, /*strict=*/true);
    for (const auto& [name, parameter] : module->named_parameters()) c.add_differentiable(kStatePrefix + name, parameter);
    return module;
}

namespace {
Run module_forward(Case& c) {
    ModulePtr module = prepared_module(c);
    Run run{(*module)(c.input("input")), {}};
    add_buffers(*module, run.extras);
    return run;
}
}  // namespace

void register_module_ops(OpTable& table) { table["module"] = module_forward; }

}  // namespace torch_diff
