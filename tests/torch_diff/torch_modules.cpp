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

// The model zoo, by torchvision's names where torchvision has the model (docs/models.md).
template <typename Make>
Builder resnet(Make make) {
    return [make](const Case& c, const std::string& prefix) -> ModulePtr {
        return make(convkit::models::ResNetOptions{.num_classes = c.integer_or(prefix + "num_classes", 1000)});
    };
}

template <typename Make>
Builder torchvision_vgg(Make make) {
    return [make](const Case& c, const std::string& prefix) -> ModulePtr {
        return make(convkit::models::VggOptions{.num_classes = c.integer_or(prefix + "num_classes", 1000)});
    };
}

// A VGG-style network: convolution widths (0: max pooling) and a classifier of `hidden` units.
ModulePtr vgg(const Case& c, const std::string& prefix) {
    return convkit::models::vgg(c.integers(prefix + "layers"), {.num_classes = c.integer(prefix + "num_classes"),
                                                                .hidden = c.integer(prefix + "hidden"),
                                                                .pool_size = c.integer(prefix + "pool_size"),
                                                                .dropout = c.number_or(prefix + "dropout", 0.5)});
}

ModulePtr unet(const Case& c, const std::string& prefix) {
    const std::string decoder = c.text(prefix + "decoder");
    if (decoder != "transposed" && decoder != "upsample") throw CaseError("unknown U-Net decoder '" + decoder + "'");
    return std::make_shared<convkit::models::UNet>(
        convkit::models::UNetOptions{.in_channels = c.integer(prefix + "in_channels"),
                                     .num_classes = c.integer(prefix + "num_classes"),
                                     .width = c.integer(prefix + "width"),
                                     .depth = static_cast<int>(c.integer(prefix + "depth")),
                                     .decoder = decoder == "transposed" ? convkit::models::UNetDecoder::TransposedConv
                                                                        : convkit::models::UNetDecoder::Upsample});
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
        {"resnet18", resnet(convkit::models::resnet18)},
        {"resnet34", resnet(convkit::models::resnet34)},
        {"resnet50", resnet(convkit::models::resnet50)},
        {"vgg11_bn", torchvision_vgg(convkit::models::vgg11_bn)},
        {"vgg16_bn", torchvision_vgg(convkit::models::vgg16_bn)},
        {"VGG", vgg},
        {"UNet", unet},
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
    // float64 unless the case says float32 (its tensors are then float32 too).
    const std::string dtype = c.text_or("module.dtype", "float64");
    if (dtype != "float64" && dtype != "float32") throw CaseError("unknown module.dtype '" + dtype + "'");
    module->to(dtype == "float32" ? convkit::DType::Float32 : convkit::DType::Float64);
    module->train(c.flag("module.training", true));
    nn::StateDict state;
    for (const auto& [name, tensor] : c.tensors()) {
        if (name.rfind(kStatePrefix, 0) == 0) state[name.substr(kStatePrefix.size())] = tensor;
    }
    module->load_state_dict(state, /*strict=*/true);
    for (const auto& [name, parameter] : module->named_parameters())
        c.add_differentiable(kStatePrefix + name, parameter);
    return module;
}

namespace {
Run module_forward(Case& c) {
    ModulePtr module = prepared_module(c);
    Run run{(*module)(c.input("input")), {}};
    add_buffers(*module, run.extras);
    return run;
}

// The names, shapes and dtypes of a module's state dict, without its values (a full-size VGG's
// would be half a gigabyte): "layout.<name>", the shape as int64, and "dtype.<name>", an empty
// tensor of the entry's dtype.
Run module_layout(Case& c) {
    ModulePtr module = build_module(c, "module.");
    Run run{Tensor::zeros(convkit::Shape{1}, convkit::DType::Float64), {}};
    for (const auto& [name, tensor] : module->state_dict()) {
        const std::vector<std::int64_t> dims(tensor.shape().begin(), tensor.shape().end());
        run.extras["layout." + name] =
            Tensor::from_vector(convkit::Shape{static_cast<std::int64_t>(dims.size())}, dims);
        run.extras["dtype." + name] = Tensor::zeros(convkit::Shape{0}, tensor.dtype());
    }
    return run;
}
}  // namespace

namespace {
// A module that meets PyTorch through a file, in float32 and evaluation mode: "load_path" (e.g.
// scripts/export-torchvision's output) is read by nn::load, strictly; "save_path" is written by
// nn::save, for PyTorch to load. The output on "input" is compared with PyTorch's on the same
// weights. Without load_path the module keeps its own initialisation, seeded by "seed".
Run module_file(Case& c) {
    convkit::nn::init::manual_seed(static_cast<std::uint64_t>(c.integer_or("seed", 0)));
    ModulePtr module = build_module(c, "module.");
    module->eval();
    if (c.has("load_path")) convkit::nn::load(*module, c.text("load_path"));
    if (c.has("save_path")) convkit::nn::save(*module, c.text("save_path"));
    convkit::NoGradGuard no_grad;
    return Run{(*module)(c.input("input")), {}};
}
}  // namespace

void register_module_ops(OpTable& table) {
    table["module"] = module_forward;
    table["module_layout"] = module_layout;
    table["module_file"] = module_file;
}

}  // namespace torch_diff
