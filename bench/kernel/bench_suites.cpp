#include "bench_suites.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "convkit/error.h"
#include "convkit/models.h"
#include "convkit/nn/summary.h"

namespace convkit::bench {

namespace {

// A suite line and whether --quick keeps it. "{N}" stands for the batch size where a suite is
// run at more than one.
struct SuiteLine {
    std::string line;
    bool quick;
};

// A model's distinct 2-D convolutions at 224x224, taken from the model itself (models::resnet18,
// resnet50: torchvision's layers) by tracing one forward pass; the batch is left as {N}. --quick
// keeps the stem and the 3x3 convolutions of each stage's last block (its steady state).
// "layer2.1.conv1" -> ("layer2", 1): a ResNet stage and the block in it; nothing for other names.
std::optional<std::pair<std::string, int>> stage_and_block(const std::string& name) {
    const auto dot = name.find('.');
    if (name.rfind("layer", 0) != 0 || dot == std::string::npos) return std::nullopt;
    return std::pair{name.substr(0, dot), std::atoi(name.c_str() + dot + 1)};
}

std::vector<SuiteLine> model_convolutions(nn::Module& model) {
    const std::vector<nn::LayerCall> calls = nn::trace(model, Shape{1, 3, 224, 224});
    std::map<std::string, int> last_block;  // "layer2" -> index of its last block
    for (const nn::LayerCall& call : calls) {
        if (const auto at = stage_and_block(call.name)) {
            last_block[at->first] = std::max(last_block[at->first], at->second);
        }
    }
    std::vector<SuiteLine> lines;
    std::map<std::string, std::size_t> index;  // line -> its place in `lines`
    for (const nn::LayerCall& call : calls) {
        const auto* conv = dynamic_cast<const nn::Conv*>(call.module);
        if (conv == nullptr || conv->transposed() || conv->params().spatial_rank != 2) continue;
        const Shape& in = call.input;
        const Shape& w = conv->weight().shape();
        const std::string line = "conv2d in={N}x" + std::to_string(in[1]) + "x" + std::to_string(in[2]) + "x" +
                                 std::to_string(in[3]) + " w=" + std::to_string(w[0]) + "x" + std::to_string(w[1]) +
                                 "x" + std::to_string(w[2]) + "x" + std::to_string(w[3]) + " " +
                                 conv->params().to_string();
        const auto stage = stage_and_block(call.name);
        const bool in_last_block = stage && stage->second == last_block[stage->first];
        const bool quick = lines.empty() || (in_last_block && w[2] == 3 && w[3] == 3);
        const auto [at, added] = index.emplace(line, lines.size());
        if (added) {
            lines.push_back({line, quick});
        } else {
            lines[at->second].quick = lines[at->second].quick || quick;  // a repeat of an earlier block
        }
    }
    return lines;
}

const std::vector<SuiteLine>& resnet18_lines() {
    static const std::vector<SuiteLine> lines = [] {
        auto model = models::resnet18();
        return model_convolutions(*model);
    }();
    return lines;
}

const std::vector<SuiteLine>& resnet50_lines() {
    static const std::vector<SuiteLine> lines = [] {
        auto model = models::resnet50();
        return model_convolutions(*model);
    }();
    return lines;
}

// U-Net with padded 3x3 convolutions on 256x256 images, batch 4: encoder, the 2x2 stride-2
// transposed up-convolutions and decoder convolutions after the skip concatenation.
const std::vector<SuiteLine> kUnet = {
    {"conv2d in=4x3x256x256 w=64x3x3x3 p1", true},
    {"conv2d in=4x64x256x256 w=64x64x3x3 p1", false},
    {"conv2d in=4x64x128x128 w=128x64x3x3 p1", true},
    {"conv2d in=4x128x64x64 w=256x128x3x3 p1", false},
    {"conv2d in=4x256x32x32 w=512x256x3x3 p1", true},
    {"conv2d in=4x512x16x16 w=1024x512x3x3 p1", false},
    {"conv_transpose2d in=4x1024x16x16 w=1024x512x2x2 s2", true},
    {"conv_transpose2d in=4x512x32x32 w=512x256x2x2 s2", false},
    {"conv_transpose2d in=4x256x64x64 w=256x128x2x2 s2", true},
    {"conv_transpose2d in=4x128x128x128 w=128x64x2x2 s2", false},
    {"conv2d in=4x1024x32x32 w=512x1024x3x3 p1", false},
    {"conv2d in=4x128x256x256 w=64x128x3x3 p1", true},
    {"conv2d in=4x64x256x256 w=2x64x1x1", false},
};

// MobileNetV2-style depthwise 3x3 (groups = channels) and the pointwise 1x1 beside them, batch 32;
// then the kernels issue #15 names: ConvNeXt-T's 7x7 (stages 1 and 3), RepLKNet-31B's 31x31 (stage
// 1, batch 8), 1-D (a Mamba block's causal 4-tap convolution over 1,536 channels, and 31 taps over
// long sequences) and 3-D (an X3D-style 3x3x3 over 16 frames).
const std::vector<SuiteLine> kDepthwise = {
    {"conv2d in=32x32x112x112 w=32x1x3x3 p1_g32", true},   {"conv2d in=32x96x112x112 w=96x1x3x3 s2_p1_g96", false},
    {"conv2d in=32x144x56x56 w=144x1x3x3 p1_g144", true},  {"conv2d in=32x192x28x28 w=192x1x3x3 p1_g192", false},
    {"conv2d in=32x384x14x14 w=384x1x3x3 p1_g384", true},  {"conv2d in=32x576x14x14 w=576x1x3x3 s2_p1_g576", false},
    {"conv2d in=32x960x7x7 w=960x1x3x3 p1_g960", true},    {"conv2d in=32x144x56x56 w=24x144x1x1", false},
    {"conv2d in=32x384x14x14 w=64x384x1x1", true},         {"conv2d in=32x96x56x56 w=96x1x7x7 p3_g96", true},
    {"conv2d in=32x384x14x14 w=384x1x7x7 p3_g384", false}, {"conv2d in=8x128x56x56 w=128x1x31x31 p15_g128", false},
    {"conv1d in=16x1536x2048 w=1536x1x4 p3_g1536", true},  {"conv1d in=16x512x4096 w=512x1x31 p15_g512", false},
    {"conv3d in=8x96x16x28x28 w=96x1x3x3x3 p1_g96", true},
};

// WaveNet-style dilated kernel-2 convolutions (the gated pair as one 2x-wide output) and
// wide-channel 1-D convolutions.
const std::vector<SuiteLine> kConv1d = {
    {"conv1d in=8x64x4096 w=128x64x2 d1", true},     {"conv1d in=8x64x4096 w=128x64x2 d8", false},
    {"conv1d in=8x64x4096 w=128x64x2 d64", true},    {"conv1d in=8x64x4096 w=128x64x2 d512", false},
    {"conv1d in=8x64x4096 w=64x64x1", false},        {"conv1d in=16x1024x512 w=1024x1024x3 p1", true},
    {"conv1d in=16x512x1024 w=512x512x5 p2", false}, {"conv1d in=32x2048x128 w=2048x2048x1", false},
};

// C3D (16 frames of 112x112, batch 8) and 3D U-Net (64^3 volumes, batch 2).
const std::vector<SuiteLine> kConv3d = {
    {"conv3d in=8x3x16x112x112 w=64x3x3x3x3 p1", true},
    {"conv3d in=8x64x16x56x56 w=128x64x3x3x3 p1", false},
    {"conv3d in=8x128x8x28x28 w=256x128x3x3x3 p1", true},
    {"conv3d in=8x256x4x14x14 w=512x256x3x3x3 p1", false},
    {"conv3d in=8x512x2x7x7 w=512x512x3x3x3 p1", false},
    {"conv3d in=2x1x64x64x64 w=32x1x3x3x3 p1", false},
    {"conv3d in=2x32x64x64x64 w=64x32x3x3x3 p1", true},
    {"conv3d in=2x128x16x16x16 w=256x128x3x3x3 p1", false},
    {"conv_transpose3d in=2x256x16x16x16 w=256x256x2x2x2 s2", true},
    {"conv_transpose3d in=2x128x32x32x32 w=128x128x2x2x2 s2", false},
};

// The DCGAN generator (nz 100, 64x64 output), batch 64.
const std::vector<SuiteLine> kTransposed = {
    {"conv_transpose2d in=64x100x1x1 w=100x512x4x4", true},
    {"conv_transpose2d in=64x512x4x4 w=512x256x4x4 s2_p1", true},
    {"conv_transpose2d in=64x256x8x8 w=256x128x4x4 s2_p1", false},
    {"conv_transpose2d in=64x128x16x16 w=128x64x4x4 s2_p1", true},
    {"conv_transpose2d in=64x64x32x32 w=64x3x4x4 s2_p1", false},
};

// Convolutions with the epilogue their layers fuse into them, forward only (issue #15 "fusion"):
// convkit's output pass applies it (cuda.igemm in bf16 and tf32; after cuda.tiled's pass in strict
// f32), cuDNN's side runs cudnnConvolutionBiasActivationForward or, where it refuses that, its
// separate calls (each row's note says which). ResNet-50 folded for inference (BatchNorm as a bias;
// the block's last convolution adds the shortcut), a U-Net decoder convolution, a DCGAN layer and
// a wide 1-D convolution, batch as in their suites.
const std::vector<SuiteLine> kFused = {
    {"conv2d in=32x64x56x56 w=256x64x1x1 epilogue=bias+residual+relu", true},  // layer1's expansion: bytes
    {"conv2d in=32x128x28x28 w=128x128x3x3 p1 epilogue=bias+relu", true},      // layer2's 3x3
    {"conv2d in=32x256x14x14 w=1024x256x1x1 epilogue=bias+residual+relu", false},
    {"conv2d in=32x512x7x7 w=512x512x3x3 p1 epilogue=bias+relu", false},
    {"conv2d in=4x128x256x256 w=64x128x3x3 p1 epilogue=bias+relu", true},
    {"conv_transpose2d in=64x512x4x4 w=512x256x4x4 s2_p1 epilogue=bias+relu", false},
    {"conv1d in=16x1024x512 w=1024x1024x3 p1 epilogue=bias+relu", false},
};

const std::vector<SuiteLine> kPooling = {
    {"max_pool2d in=32x64x112x112 k3x3_s2x2_p1x1", true},  // ResNet stem
    {"max_pool2d in=4x64x256x256 k2x2", true},             // U-Net
    {"max_pool2d in=32x64x56x56 k2x2", false},
    {"avg_pool2d in=32x256x56x56 k2x2", true},  // DenseNet transition
    {"avg_pool2d in=32x512x7x7 k7x7", false},   // global average as a 7x7 window
    {"avg_pool2d in=32x64x56x56 k3x3_s1x1_p1x1_excludepad", false},
    {"max_pool1d in=16x256x4096 k3_s2_p1", false},
    {"max_pool3d in=8x64x16x112x112 k1x2x2", true},  // C3D pool1
    {"avg_pool3d in=2x64x64x64x64 k2x2x2", false},
    // Channels-last (both sides: cuDNN's NHWC pooling), where convkit's kernels take 16-byte
    // packs of adjacent channels: the same stem, transition and global average, and C3D's pool.
    {"max_pool2d in=32x64x112x112 k3x3_s2x2_p1x1 layout=nhwc", true},
    {"avg_pool2d in=32x256x56x56 k2x2 layout=nhwc", true},
    {"avg_pool2d in=32x512x7x7 k7x7 layout=nhwc", false},
    {"max_pool3d in=8x64x16x112x112 k1x2x2 layout=nhwc", false},
    // ResNet-50's global average as the model runs it (GlobalAvgPool: adaptive pooling to 1x1;
    // cuDNN's side is the 7x7 average pooling), where each window is shared by a team of threads.
    {"adaptive_avg_pool2d in=32x2048x7x7 out=1x1 layout=nhwc", true},
    {"adaptive_avg_pool2d in=128x2048x7x7 out=1x1 layout=nhwc", false},
    {"adaptive_avg_pool2d in=32x2048x7x7 out=1x1", false},
};

// The bandwidth-bound layers of issue #15 ("at least 85% of the copy bandwidth on large
// tensors, float32 and BF16, both layouts"): batch norm in training (ResNet-50's widest
// activation and its stem's, a late wide layer, 1-D and 3-D), ReLU and the residual add on the
// widest activation, and an add of a per-channel addend. No cuDNN side: the rate against the
// copy bandwidth is the row's measure.
const std::vector<SuiteLine> kLayers = {
    {"batch_norm2d in=32x256x56x56 layout=nhwc", true},
    {"batch_norm2d in=32x256x56x56", true},
    {"batch_norm2d in=32x64x112x112 layout=nhwc", false},
    {"batch_norm2d in=32x2048x7x7 layout=nhwc", false},
    {"batch_norm1d in=16x512x4096", false},
    {"batch_norm3d in=8x64x16x56x56 layout=nhwc", false},
    {"relu in=32x256x56x56 layout=nhwc", true},
    {"relu in=32x256x56x56", false},
    {"add in=32x256x56x56 layout=nhwc", true},
    // A per-channel addend (a bias or ConvNeXt's layer scale, as add): the broadcasting kernel,
    // and in its backward the addend's gradient, dy summed over all but the channels (on a
    // channels-last dy, the column sums).
    {"add in=32x256x56x56 with=1x256x1x1 layout=nhwc", true},
    {"add in=32x256x56x56 with=1x256x1x1", false},
};

struct SuiteSpec {
    const std::vector<SuiteLine>& (*lines)();  // built on first use (the ResNets trace a model)
    std::vector<int> batches;                  // substituted for {N}; empty: the lines have none
};

template <const std::vector<SuiteLine>& Lines>
const std::vector<SuiteLine>& fixed() {
    return Lines;
}

const std::map<std::string, SuiteSpec>& suites() {
    static const std::map<std::string, SuiteSpec> table = {
        {"resnet18", {resnet18_lines, {32, 1}}},
        {"resnet50", {resnet50_lines, {32, 1}}},
        {"unet", {fixed<kUnet>, {}}},
        {"depthwise", {fixed<kDepthwise>, {}}},
        {"conv1d", {fixed<kConv1d>, {}}},
        {"conv3d", {fixed<kConv3d>, {}}},
        {"transposed", {fixed<kTransposed>, {}}},
        {"pooling", {fixed<kPooling>, {}}},
        {"fused", {fixed<kFused>, {}}},
        {"layers", {fixed<kLayers>, {}}},
    };
    return table;
}

std::string with_batch(std::string line, int batch) {
    const std::string mark = "{N}";
    for (auto at = line.find(mark); at != std::string::npos; at = line.find(mark)) {
        line.replace(at, mark.size(), std::to_string(batch));
    }
    return line;
}

}  // namespace

const std::vector<std::string>& standard_suite_names() {
    // The layers last: a GPU window cut short by its time limit loses them before the convolutions.
    static const std::vector<std::string> names = {"resnet18", "resnet50",   "unet",    "depthwise", "conv1d",
                                                   "conv3d",   "transposed", "pooling", "fused",     "layers"};
    return names;
}

std::vector<BenchConfig> suite_configs(const std::string& suite, bool quick) {
    const auto found = suites().find(suite);
    if (found == suites().end()) {
        std::string choices;
        for (const std::string& name : standard_suite_names()) choices += (choices.empty() ? "" : ", ") + name;
        throw InvalidArgument("--suite: unknown suite '" + suite + "' (choose from " + choices + ")");
    }
    const SuiteSpec& spec = found->second;
    const std::vector<int> batches = spec.batches.empty() ? std::vector<int>{0} : spec.batches;
    std::vector<BenchConfig> configs;
    for (int batch : batches) {
        const std::vector<SuiteLine>& lines = spec.lines();
        for (std::size_t i = 0; i < lines.size(); ++i) {
            const SuiteLine& entry = lines[i];
            if (quick && !entry.quick) continue;
            const std::string where = "suite " + suite + " line " + std::to_string(i + 1);
            configs.push_back(parse_config_line(with_batch(entry.line, batch), where));
        }
    }
    return configs;
}

namespace {
using ModelFactory = std::shared_ptr<nn::Module> (*)();
template <auto Make>
std::shared_ptr<nn::Module> make() {
    return Make({});
}
// --model's networks and how to build each (1000 classes), in the order --help lists them.
const std::vector<std::pair<std::string, ModelFactory>>& bench_models() {
    static const std::vector<std::pair<std::string, ModelFactory>> table = {{"resnet18", make<models::resnet18>},
                                                                            {"resnet34", make<models::resnet34>},
                                                                            {"resnet50", make<models::resnet50>},
                                                                            {"vgg11_bn", make<models::vgg11_bn>},
                                                                            {"vgg16_bn", make<models::vgg16_bn>}};
    return table;
}
ModelFactory bench_model_factory(const std::string& name) {
    std::string choices;
    for (const auto& [known, factory] : bench_models()) {
        if (known == name) return factory;
        choices += (choices.empty() ? "" : ", ") + known;
    }
    throw InvalidArgument("--model: unknown model '" + name + "' (choose from " + choices + ")");
}
}  // namespace

void check_bench_model_name(const std::string& name) {
    (void)bench_model_factory(name);
}

std::shared_ptr<nn::Module> make_bench_model(const std::string& name) {
    return bench_model_factory(name)();
}

}  // namespace convkit::bench
