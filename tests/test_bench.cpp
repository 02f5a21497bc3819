// convkit-bench's host-side logic (label host): the one-line configuration format and its
// errors, the suites, the FLOP and byte counts against hand-computed values, the statistics and
// buffer rotation of the timing harness, the command line, and the JSON / CSV / table formats.
// The timing itself needs a GPU and is not tested here (docs/benchmarks.md).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench_config.h"
#include "bench_counts.h"
#include "bench_options.h"
#include "bench_passes.h"
#include "bench_report.h"
#include "bench_stats.h"
#include "bench_suites.h"
#include "convkit/convkit.h"
#include "convkit/error.h"
#include "temp_dir.h"

namespace convkit::bench {
namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const InvalidArgument& error) {
        return error.what();
    }
    return "(no error)";
}

// ---- the one-line format ----------------------------------------------------------------------

TEST(BenchConfig, DefaultsAreFilledInAndWrittenOutInFull) {
    EXPECT_EQ(parse_config_line("conv2d in=1x3x8x8 w=4x3x3x3 p1", "t").to_line(),
              "conv2d in=1x3x8x8 w=4x3x3x3 s1x1_p1x1_d1x1_g1");
    EXPECT_EQ(parse_config_line("conv1d w=8x4x3 in=2x4x50 d2_s3", "t").to_line(),
              "conv1d in=2x4x50 w=8x4x3 s3_p0_d2_g1");
    // A pool's stride defaults to its kernel, as in PyTorch.
    EXPECT_EQ(parse_config_line("max_pool2d in=1x1x8x8 k2", "t").to_line(), "max_pool2d in=1x1x8x8 k2x2_s2x2_p0x0");
    // A pool's layout defaults to nchw, which is not written out.
    EXPECT_EQ(parse_config_line("max_pool2d layout=nchw in=1x1x8x8 k2", "t").to_line(),
              "max_pool2d in=1x1x8x8 k2x2_s2x2_p0x0");
}

TEST(BenchConfig, TextFormRoundTripsForEveryKindOfParameter) {
    const std::vector<std::string> lines = {
        "conv2d in=2x6x9x11 w=9x2x3x5 s2x1_p1x2_d1x2_g3",
        "conv2d in=2x6x9x11 w=6x6x3x3 s1x1_p1x1_d1x1_g1_reflect",
        "conv2d in=1x3x8x8 w=4x3x4x4 s1x1_psame_d1x1_g1",
        "conv3d in=1x2x6x7x8 w=3x2x3x3x3 s2x2x2_p1x1x1_d1x1x1_g1",
        "conv_transpose2d in=1x4x5x5 w=4x2x3x3 s2x2_p1x1_d1x1_g2_op1x1",
        "conv_transpose1d in=3x4x10 w=4x5x4 s2_p1_d1_g1",
        "max_pool3d in=1x2x8x8x8 k3x3x3_s2x2x2_p1x1x1_d2x2x2_ceil",
        "avg_pool2d in=2x3x9x9 k3x3_s1x1_p1x1_excludepad",
        "avg_pool1d in=2x3x20 k4_s3_p2",
        "max_pool2d in=2x16x9x9 k3x3_s2x2_p1x1 layout=nhwc",
        "conv2d in=2x8x9x9 w=16x8x3x3 s1x1_p1x1_d1x1_g1 epilogue=bias+residual+relu",
        "conv_transpose2d in=2x8x4x4 w=8x4x4x4 s2x2_p1x1_d1x1_g1 epilogue=relu",
        "batch_norm2d in=32x256x56x56 layout=nhwc",
        "batch_norm1d in=8x64x100",
        "batch_norm3d in=2x16x4x8x8",
        "relu in=2x8x4x4 layout=nhwc",
        "relu in=2x8x40",
        "add in=2x8x4x4x4 layout=nhwc",
        "add in=2x8x4x4 with=1x8x1x1",
        "add in=2x8x4x4 with=1x8x1x1 layout=nhwc",
        "add in=2x8x4x4 with=2x8x4x4 layout=nhwc",
    };
    for (const std::string& line : lines) {
        SCOPED_TRACE(line);
        const BenchConfig config = parse_config_line(line, "t");
        EXPECT_EQ(config.to_line(), line);
        EXPECT_EQ(parse_config_line(config.to_line(), "t"), config);
    }
    // The parameter text is exactly ConvParams / PoolParams::to_string().
    const BenchConfig conv = parse_config_line(lines[4], "t");
    EXPECT_EQ(conv.conv.to_string(), "s2x2_p1x1_d1x1_g2_op1x1");
    EXPECT_EQ(conv.conv.output_padding[0], 1);
    EXPECT_EQ(conv.conv.groups, 2);
    EXPECT_EQ(parse_config_line(lines[1], "t").conv.padding_mode, PaddingMode::Reflect);
    EXPECT_TRUE(parse_config_line(lines[2], "t").conv.same_padding);
    const BenchConfig pool = parse_config_line(lines[6], "t");
    EXPECT_EQ(pool.op, BenchOp::MaxPool);
    EXPECT_TRUE(pool.pool.ceil_mode);
    EXPECT_EQ(pool.pool.dilation[2], 2);
    EXPECT_FALSE(parse_config_line(lines[7], "t").pool.count_include_pad);
    // The layers' rank is their input's: batch_norm's name says it too, relu's and add's do not.
    EXPECT_EQ(parse_config_line("batch_norm3d in=2x16x4x8x8", "t").spatial_rank(), 3);
    EXPECT_EQ(parse_config_line("relu in=2x8x40", "t").spatial_rank(), 1);
    EXPECT_EQ(parse_config_line("add in=2x8x4x4x4", "t").op, BenchOp::Add);
}

TEST(BenchConfig, ErrorsNameTheLineAndTheField) {
    const std::string text =
        "# a comment\nconv2d in=1x3x8x8 w=4x3x3x3   # trailing comment\n\n"
        "conv2d in=1x3x8 w=4x3x3x3\n";
    const std::string message = error_of([&] { (void)parse_config_text(text, "layers.txt"); });
    EXPECT_NE(message.find("layers.txt:4"), std::string::npos) << message;
    EXPECT_NE(message.find("field 'in'"), std::string::npos) << message;
    EXPECT_NE(message.find("expected 4 sizes"), std::string::npos) << message;

    const std::vector<std::pair<std::string, std::string>> cases = {
        {"conv4d in=1x3x8x8 w=4x3x3x3", "field 'op'"},
        {"", "field 'op'"},
        {"conv2d in=1x3x8x8", "field 'w': missing"},
        {"conv2d w=4x3x3x3", "field 'in': missing"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 s0", "field 'stride'"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 p1x2x3", "field 'padding'"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 d1_q2", "field 'params': 'q2'"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 gx", "field 'groups'"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 x=2", "field 'x': unknown"},
        {"conv2d in=1x3x8x8 in=1x3x8x8 w=4x3x3x3", "field 'in': given twice"},
        {"conv2d in=1x3x2x2 w=4x3x3x3", "field 'geometry'"},
        {"conv2d in=1x3x8x8 w=4x2x3x3", "field 'geometry'"},
        {"max_pool2d in=1x3x8x8 w=1x1x1x1 k2", "field 'w': only convolutions have a weight"},
        {"batch_norm2d in=1x3x8x8 w=1x1x1x1", "field 'w': only convolutions have a weight"},
        {"batch_norm2d in=1x3x8", "field 'in'"},
        {"relu in=1x3", "field 'in': expected N x C and 1 to 3 spatial sizes"},
        {"add in=1x3x2x2x2x2", "field 'in': expected N x C and 1 to 3 spatial sizes"},
        {"relu in=1x3x8x8 k2", "field 'params': relu takes none"},
        {"add in=1x3x8x8 epilogue=relu", "field 'epilogue': only convolutions"},
        {"relu in=1x3x8x8 layout=nhwc layout=nhwc", "field 'layout': given twice"},
        {"relu", "field 'in': missing"},
        {"relu in=1x3x8x8 with=1x3x1x1", "field 'with': only add"},
        {"add in=1x3x8x8 with=1x4x1x1", "field 'with': 1x4x1x1 does not broadcast to the input 1x3x8x8"},
        {"add in=1x3x8x8 with=3x1x1", "field 'with': 3x1x1 does not broadcast"},
        {"add in=1x3x8x8 with=1x3x1x1 with=1x3x1x1", "field 'with': given twice"},
        {"max_pool2d in=1x3x8x8 s2", "field 'kernel': missing"},
        {"avg_pool2d in=1x3x8x8 k2_d2", "field 'geometry'"},            // dilation is max pooling only
        {"conv2d in=1x3x8x8 w=4x3x3x3 layout=nhwc", "field 'layout'"},  // the dtype decides
        {"max_pool2d in=1x3x8x8 k2 layout=cl", "field 'layout'"},
        {"max_pool2d in=1x3x8x8 k2 layout=nhwc layout=nchw", "field 'layout'"},
        {"adaptive_avg_pool2d in=1x3x7x7", "field 'out': missing"},
        {"adaptive_avg_pool2d in=1x3x7x7 out=2x1", "not a multiple of 2"},  // no cuDNN equivalent
        {"adaptive_avg_pool2d in=1x3x7x7 out=1 out=1", "field 'out': given twice"},
        {"adaptive_avg_pool2d in=1x3x7x7 out=1x1x1", "field 'out'"},
        {"adaptive_avg_pool2d in=1x3x7x7 k7", "adaptive pooling takes out="},
        {"avg_pool2d in=1x3x7x7 k7 out=1x1", "only adaptive pooling"},
        {"max_pool2d in=1x3x8x8 k2 epilogue=relu", "field 'epilogue': only convolutions"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 epilogue=", "field 'epilogue': empty"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 epilogue=bias+gelu", "'gelu' in 'bias+gelu' is not bias, residual or relu"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 epilogue=relu+bias", "at most once, in that order"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 epilogue=relu+relu", "at most once, in that order"},
        {"conv2d in=1x3x8x8 w=4x3x3x3 epilogue=relu epilogue=bias", "field 'epilogue': given twice"},
    };
    for (const auto& [line, expected] : cases) {
        const std::string error = error_of([&] { (void)parse_config_line(line, "--config"); });
        EXPECT_EQ(error.rfind("--config: ", 0), 0u) << line << " -> " << error;
        EXPECT_NE(error.find(expected), std::string::npos) << line << " -> " << error;
    }
}

// Adaptive average pooling's rows: its output's extents (one for all dims, as elsewhere), its
// text form back, and for cuDNN's side the average pooling with the same windows, whose output
// shape is the adaptive one's.
TEST(BenchConfig, AdaptivePoolingRowsCarryTheirEqualWindowAveragePooling) {
    const BenchConfig global = parse_config_line("adaptive_avg_pool2d in=32x2048x7x7 out=1 layout=nhwc", "t");
    EXPECT_EQ(global.op, BenchOp::AdaptiveAvgPool);
    EXPECT_TRUE(is_pool(global.op));
    EXPECT_EQ(global.to_line(), "adaptive_avg_pool2d in=32x2048x7x7 out=1x1 layout=nhwc");
    EXPECT_EQ(parse_config_line(global.to_line(), "t"), global);
    EXPECT_EQ(global.pool.to_string(), PoolParams(2, 7).to_string());
    EXPECT_EQ(global.output_shape(), (Shape{32, 2048, 1, 1}));
    EXPECT_EQ(global.layout, MemoryFormat::ChannelsLast);
    EXPECT_EQ(global.directions().size(), 2u);

    const BenchConfig volume = parse_config_line("adaptive_avg_pool3d in=2x8x8x6x9 out=2x3x3", "t");
    EXPECT_EQ(volume.op_name(), "adaptive_avg_pool3d");
    EXPECT_EQ(volume.pool.kernel[0], 4);
    EXPECT_EQ(volume.pool.kernel[1], 2);
    EXPECT_EQ(volume.pool.kernel[2], 3);
    EXPECT_EQ(volume.pool.stride[2], 3);
    EXPECT_EQ(volume.output_shape(), (Shape{2, 8, 2, 3, 3}));
    EXPECT_EQ(volume.layout, MemoryFormat::Contiguous);
    EXPECT_EQ(volume.to_line(), "adaptive_avg_pool3d in=2x8x8x6x9 out=2x3x3");
}

TEST(BenchConfig, BlankLinesAndCommentsAreSkipped) {
    const auto configs =
        parse_config_text("\n# header\nmax_pool1d in=1x1x8 k2\n  \nconv1d in=1x1x8 w=1x1x3 # c\n", "f");
    ASSERT_EQ(configs.size(), 2u);
    EXPECT_EQ(configs[0].op, BenchOp::MaxPool);
    EXPECT_EQ(configs[1].op, BenchOp::Conv);
}

// ---- suites --------------------------------------------------------------------------------------

// What each row gives both sides: tf32, bf16 and fp16 convolutions channels-last (the tensor
// cores' layout), strict f32 contiguous (cuda.tiled's), pooling its line's layout in every dtype
// (contiguous unless layout=nhwc), each in its element type; so do the layer rows.
TEST(BenchConfig, RowsGiveTheTensorCoresChannelsLastActivations) {
    const std::vector<std::string> lines = {"conv2d in=1x8x8x8 w=8x8x3x3",
                                            "conv_transpose2d in=1x8x8x8 w=8x8x2x2 s2",
                                            "max_pool2d in=1x8x8x8 k2",
                                            "avg_pool2d in=1x8x8x8 k2",
                                            "max_pool2d in=1x8x8x8 k2 layout=nhwc",
                                            "avg_pool3d in=1x8x4x4x4 k2 layout=nhwc",
                                            "batch_norm2d in=2x8x4x4 layout=nhwc",
                                            "batch_norm1d in=2x8x4",
                                            "relu in=2x8x4x4x4 layout=nhwc",
                                            "add in=2x8x4"};
    for (const std::string& line : lines) {
        SCOPED_TRACE(line);
        const BenchConfig config = parse_config_line(line, "t");
        const MemoryFormat f32_format = !is_conv(config.op) ? config.layout : MemoryFormat::Contiguous;
        const MemoryFormat tensor_core_format = !is_conv(config.op) ? config.layout : MemoryFormat::ChannelsLast;
        EXPECT_EQ(config.layout,
                  line.find("nhwc") != std::string::npos ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous);
        EXPECT_EQ(row_operands("f32", config).element, DType::Float32);
        EXPECT_EQ(row_operands("f32", config).activations, f32_format);
        EXPECT_EQ(row_operands("tf32", config).element, DType::Float32);
        EXPECT_EQ(row_operands("tf32", config).activations, tensor_core_format);
        EXPECT_EQ(row_operands("bf16", config).element, DType::BFloat16);
        EXPECT_EQ(row_operands("bf16", config).activations, tensor_core_format);
        EXPECT_EQ(row_operands("fp16", config).element, DType::Float16);
        EXPECT_EQ(row_operands("fp16", config).activations, tensor_core_format);
    }
}

TEST(BenchSuites, EverySuiteParsesAndQuickIsASubset) {
    for (const std::string& suite : standard_suite_names()) {
        SCOPED_TRACE(suite);
        const auto full = suite_configs(suite, false);
        const auto quick = suite_configs(suite, true);
        ASSERT_FALSE(quick.empty());
        EXPECT_LT(quick.size(), full.size());
        for (const BenchConfig& q : quick) {
            EXPECT_NE(std::find(full.begin(), full.end(), q), full.end()) << q.to_line();
            EXPECT_EQ(parse_config_line(q.to_line(), "t"), q);
        }
    }
    EXPECT_NE(error_of([] { (void)suite_configs("vgg", false); }).find("resnet18"), std::string::npos);
}

TEST(BenchSuites, SuitesHoldWhatTheyPromise) {
    const auto resnet = suite_configs("resnet50", false);
    EXPECT_EQ(resnet.front().input[0], 32);
    EXPECT_EQ(resnet.back().input[0], 1);  // batch 32, then batch 1
    const auto has = [](const std::vector<BenchConfig>& configs, auto predicate) {
        return std::any_of(configs.begin(), configs.end(), predicate);
    };
    EXPECT_TRUE(has(suite_configs("unet", true), [](const BenchConfig& c) { return c.op == BenchOp::ConvTranspose; }));
    for (const BenchConfig& c : suite_configs("transposed", false)) EXPECT_EQ(c.op, BenchOp::ConvTranspose);
    for (const BenchConfig& c : suite_configs("pooling", false)) EXPECT_TRUE(is_pool(c.op));
    for (const BenchConfig& c : suite_configs("fused", false)) EXPECT_TRUE(c.epilogue.relu) << c.to_line();
    EXPECT_TRUE(has(suite_configs("fused", true), [](const BenchConfig& c) { return c.epilogue.residual; }));
    for (const BenchConfig& c : suite_configs("conv1d", false)) EXPECT_EQ(c.spatial_rank(), 1);
    for (const BenchConfig& c : suite_configs("conv3d", false)) EXPECT_EQ(c.spatial_rank(), 3);
    for (const BenchConfig& c : suite_configs("depthwise", false)) {
        EXPECT_TRUE(c.conv.groups == c.input[1] || c.weight[2] == 1) << c.to_line();  // depthwise or pointwise
    }
    EXPECT_TRUE(has(suite_configs("conv1d", false), [](const BenchConfig& c) { return c.conv.dilation[0] > 1; }));
    // The layers: every one of them in --quick, batch norm in both layouts, all of it on large
    // tensors (the target is about the copy rate, which small ones do not reach).
    const auto layers = suite_configs("layers", true);
    for (const BenchConfig& c : suite_configs("layers", false)) {
        EXPECT_TRUE(is_layer(c.op)) << c.to_line();
        EXPECT_GE(c.input.numel(), 3'000'000) << c.to_line();
    }
    for (BenchOp op : {BenchOp::BatchNorm, BenchOp::Relu, BenchOp::Add}) {
        EXPECT_TRUE(has(layers, [op](const BenchConfig& c) { return c.op == op; }));
    }
    for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
        EXPECT_TRUE(
            has(layers, [format](const BenchConfig& c) { return c.op == BenchOp::BatchNorm && c.layout == format; }));
    }
}

// The ResNet suites come from models::resnet18/50 (traced at 224x224): every distinct convolution
// once per batch size, torchvision's v1.5 stride placement, and a quick subset of the stem plus
// each stage's steady-state 3x3.
TEST(BenchSuites, ResnetSuitesAreTheModelsConvolutions) {
    const auto count_at = [](const std::vector<BenchConfig>& configs, std::int64_t batch) {
        return std::count_if(configs.begin(), configs.end(), [&](const BenchConfig& c) { return c.input[0] == batch; });
    };
    EXPECT_EQ(count_at(suite_configs("resnet18", false), 32), 11);
    EXPECT_EQ(count_at(suite_configs("resnet50", false), 32), 23);
    EXPECT_EQ(count_at(suite_configs("resnet50", true), 32), 5);
    const auto resnet50 = suite_configs("resnet50", false);
    const auto v15 = parse_config_line("conv2d in=32x128x56x56 w=128x128x3x3 s2_p1", "t");  // layer2.0.conv2
    const auto stem = parse_config_line("conv2d in=1x3x224x224 w=64x3x7x7 s2_p3", "t");
    const auto projection = parse_config_line("conv2d in=32x1024x14x14 w=2048x1024x1x1 s2", "t");
    for (const BenchConfig& expected : {v15, stem, projection}) {
        EXPECT_NE(std::find(resnet50.begin(), resnet50.end(), expected), resnet50.end()) << expected.to_line();
    }
}

// ---- FLOP and byte counts --------------------------------------------------------------------------

TEST(BenchCounts, ConvolutionFlopsMatchHandComputedValues) {
    // ResNet-50 conv1, batch 32: 2 N C_out H_out W_out C_in k k = 2*32*64*112*112*3*7*7.
    const BenchConfig conv1 = parse_config_line("conv2d in=32x3x224x224 w=64x3x7x7 s2_p3", "t");
    for (Direction d : conv1.directions()) EXPECT_DOUBLE_EQ(work_counts(conv1, d).flops, 7552892928.0);
    EXPECT_DOUBLE_EQ(work_counts(conv1, Direction::Forward).bytes,
                     4.0 * (32 * 3 * 224 * 224 + 64 * 3 * 7 * 7 + 32 * 64 * 112 * 112));
    // Depthwise 3x3 (groups = channels): one input channel per output: 2*32*32*112*112*1*9.
    const BenchConfig depthwise = parse_config_line("conv2d in=32x32x112x112 w=32x1x3x3 p1_g32", "t");
    EXPECT_DOUBLE_EQ(work_counts(depthwise, Direction::BackwardFilter).flops, 231211008.0);
    // DCGAN's second layer: [64,512,4,4] -> [64,256,8,8]: each input element meets 256 x 4 x 4
    // weights, 2*64*512*4*4*256*4*4.
    const BenchConfig dcgan = parse_config_line("conv_transpose2d in=64x512x4x4 w=512x256x4x4 s2_p1", "t");
    EXPECT_EQ(shape_text(dcgan.output_shape()), "64x256x8x8");
    EXPECT_DOUBLE_EQ(work_counts(dcgan, Direction::Forward).flops, 4294967296.0);
    EXPECT_DOUBLE_EQ(work_counts(dcgan, Direction::BackwardData).bytes,
                     4.0 * (64 * 256 * 8 * 8 + 512 * 256 * 4 * 4 + 64 * 512 * 4 * 4));
    // WaveNet dilation 64, kernel 2, no padding: L_out = 4096 - 64.
    const BenchConfig wavenet = parse_config_line("conv1d in=8x64x4096 w=128x64x2 d64", "t");
    EXPECT_DOUBLE_EQ(work_counts(wavenet, Direction::Forward).flops, 2.0 * 8 * 128 * 4032 * 64 * 2);
    // C3D conv2, 3x3x3 'same': 2*8*128*16*56*56*64*27.
    const BenchConfig c3d = parse_config_line("conv3d in=8x64x16x56x56 w=128x64x3x3x3 p1", "t");
    EXPECT_DOUBLE_EQ(work_counts(c3d, Direction::Forward).flops, 2.0 * 8 * 128 * 16 * 56 * 56 * 64 * 27);
}

// An epilogue row: forward only, its text read back, its bias and residual read once more.
TEST(BenchCounts, EpilogueRowsAreForwardOnlyAndReadTheBiasAndResidual) {
    const BenchConfig plain = parse_config_line("conv2d in=32x64x56x56 w=256x64x1x1", "t");
    const BenchConfig block = parse_config_line("conv2d in=32x64x56x56 w=256x64x1x1 epilogue=bias+residual+relu", "t");
    EXPECT_TRUE(block.epilogue.bias && block.epilogue.residual && block.epilogue.relu);
    EXPECT_FALSE(plain.epilogue.any());
    EXPECT_EQ(plain.directions().size(), 3u);
    ASSERT_EQ(block.directions().size(), 1u);
    EXPECT_EQ(block.directions()[0], Direction::Forward);
    EXPECT_NE(plain, block);
    const double y = 32.0 * 256 * 56 * 56;
    EXPECT_DOUBLE_EQ(work_counts(block, Direction::Forward).flops, work_counts(plain, Direction::Forward).flops);
    EXPECT_DOUBLE_EQ(work_counts(block, Direction::Forward).bytes,
                     work_counts(plain, Direction::Forward).bytes + 4.0 * (y + 256));  // 4-byte elements
    const BenchConfig relu_only = parse_config_line("conv2d in=32x64x56x56 w=256x64x1x1 epilogue=relu", "t");
    EXPECT_DOUBLE_EQ(work_counts(relu_only, Direction::Forward, 2).bytes,
                     work_counts(plain, Direction::Forward, 2).bytes);
    EXPECT_EQ(relu_only.epilogue.text(), "relu");
}

TEST(BenchCounts, PoolingBytesCountWhatEachPassReadsAndWrites) {
    const double in = 32.0 * 64 * 112 * 112, out = 32.0 * 64 * 56 * 56;
    const BenchConfig max_pool = parse_config_line("max_pool2d in=32x64x112x112 k3x3_s2x2_p1x1", "t");
    EXPECT_EQ(work_counts(max_pool, Direction::Forward).flops, 0);
    EXPECT_DOUBLE_EQ(work_counts(max_pool, Direction::Forward).bytes, 4 * (in + out));
    EXPECT_DOUBLE_EQ(work_counts(max_pool, Direction::BackwardData).bytes, 4 * (out + in + in));  // dy, x -> dx
    const BenchConfig avg_pool = parse_config_line("avg_pool2d in=32x64x112x112 k2x2", "t");
    EXPECT_DOUBLE_EQ(work_counts(avg_pool, Direction::BackwardData).bytes, 4 * (out + in));  // dy -> dx
    EXPECT_EQ(max_pool.directions().size(), 2u);
}

TEST(BenchCounts, LayerRowsCountEachTensorTheyMoveAndReportBandwidth) {
    const double n = 32.0 * 256 * 56 * 56;
    const BenchConfig norm = parse_config_line("batch_norm2d in=32x256x56x56 layout=nhwc", "t");
    EXPECT_EQ(work_counts(norm, Direction::Forward).flops, 0);
    EXPECT_DOUBLE_EQ(work_counts(norm, Direction::Forward, 2).bytes, 2 * 3 * n);       // x twice -> y
    EXPECT_DOUBLE_EQ(work_counts(norm, Direction::BackwardData, 2).bytes, 2 * 5 * n);  // dy, x twice -> dx
    const BenchConfig relu = parse_config_line("relu in=32x256x56x56", "t");
    EXPECT_DOUBLE_EQ(work_counts(relu, Direction::Forward).bytes, 4 * 2 * n);       // x -> y
    EXPECT_DOUBLE_EQ(work_counts(relu, Direction::BackwardData).bytes, 4 * 3 * n);  // y, dy -> dx
    const BenchConfig add = parse_config_line("add in=32x256x56x56", "t");
    EXPECT_DOUBLE_EQ(work_counts(add, Direction::Forward).bytes, 4 * 3 * n);  // a, b -> y
    const BenchConfig scale = parse_config_line("add in=32x256x56x56 with=1x256x1x1", "t");
    EXPECT_DOUBLE_EQ(work_counts(scale, Direction::Forward).bytes, 4 * (2 * n + 256));   // x, addend -> y
    EXPECT_DOUBLE_EQ(work_counts(scale, Direction::BackwardData).bytes, 4 * (n + 256));  // dy -> its sum
    EXPECT_EQ(scale.directions(), (std::vector<Direction>{Direction::Forward, Direction::BackwardData}));
    EXPECT_EQ(norm.directions(), (std::vector<Direction>{Direction::Forward, Direction::BackwardData}));
    EXPECT_EQ(relu.directions(), (std::vector<Direction>{Direction::Forward, Direction::BackwardData}));
    EXPECT_EQ(add.directions(), std::vector<Direction>{Direction::Forward});
    for (const BenchConfig& c : {norm, relu, add}) {
        EXPECT_FALSE(reports_flops(c.op));
        EXPECT_STREQ(op_family_name(c.op), "layer");
        EXPECT_EQ(c.output_shape(), c.input);
    }
}

// The layer rows' passes as the bench runs them, here on host tensors (the bench's are on the
// GPU, and its reference is this host run in float64): the backward runs the recorded forward
// again and again, each time writing the same gradient rather than adding to the last, in the
// input's layout; the float64 reference agrees with the float32 pass.
TEST(BenchPasses, LayerRowsRunTheirRecordedBackwardAgainAndMatchTheReference) {
    for (const char* line : {"batch_norm2d in=2x16x6x5 layout=nhwc", "batch_norm1d in=3x8x7", "relu in=2x8x3x3",
                             "relu in=2x8x3x3x2 layout=nhwc", "add in=2x8x5 layout=nhwc", "add in=2x8x3x5 with=1x8x1x1",
                             "add in=3x8x5 with=3x1x5"}) {
        SCOPED_TRACE(line);
        const BenchConfig config = parse_config_line(line, "t");
        const Shape channels{config.input[1]};
        InputSet s;
        s.x = Tensor::uniform(config.input, -1, 1, 1).to(config.layout);
        s.dy = Tensor::uniform(config.input, -1, 1, 2).to(config.layout);
        s.residual = Tensor::uniform(config.addend_shape(), -1, 1, 3).to(config.layout);
        s.w = Tensor::uniform(channels, 0.5, 2, 4);
        s.bias = Tensor::uniform(channels, -1, 1, 5);
        s.running_mean = Tensor::zeros(channels);
        s.running_var = Tensor::full(channels, 1.0);
        const auto difference = [](const Tensor& a, const Tensor& b) {
            const std::vector<double> u = a.to(DType::Float64).to_vector(), v = b.to_vector();
            double squared = 0, norm = 0;
            for (std::size_t i = 0; i < u.size(); ++i) {
                squared += (u[i] - v[i]) * (u[i] - v[i]);
                norm += v[i] * v[i];
            }
            return std::sqrt(squared / norm);
        };
        for (Direction direction : config.directions()) {
            SCOPED_TRACE(direction_name(direction));
            const Tensor reference = host_layer_reference(config, direction, s);
            EXPECT_EQ(reference.dtype(), DType::Float64);
            if (direction == Direction::Forward) {
                EXPECT_LT(difference(layer_forward(config, s), reference), 1e-6);
                continue;
            }
            const InputSet recorded = with_recorded_forward(config, s);
            const Tensor first = layer_backward(recorded).clone();
            const Tensor second = layer_backward(recorded);
            EXPECT_EQ(second.memory_format(), config.layout);
            EXPECT_EQ(difference(second, first.to(DType::Float64)), 0.0) << "the second pass added to the first";
            EXPECT_LT(difference(first, reference), 1e-6);
            const std::vector<double> values = first.to_vector();
            EXPECT_TRUE(std::any_of(values.begin(), values.end(), [](double v) { return v != 0; }));
        }
    }
}

TEST(BenchCounts, FloorIsTheSlowerOfComputeAndMemory) {
    const WorkCounts work{2e12, 1e9};
    EXPECT_DOUBLE_EQ(floor_ms(work, 1.0, 1000.0), 2000.0);  // 2e12 FLOP at 1 TFLOP/s
    EXPECT_DOUBLE_EQ(floor_ms(work, 1e6, 1000.0), 1.0);     // 1e9 B at 1000 GB/s
    EXPECT_DOUBLE_EQ(floor_ms(work, 0, 0), 0.0);            // nothing measured
}

// ---- the timing harness's arithmetic -------------------------------------------------------------

TEST(BenchStats, MedianMinMax) {
    const TimingStats odd = summarize({3.0, 1.0, 2.0});
    EXPECT_EQ(odd.median_ms, 2.0);
    EXPECT_EQ(odd.min_ms, 1.0);
    EXPECT_EQ(odd.max_ms, 3.0);
    EXPECT_EQ(odd.runs, 3);
    EXPECT_EQ(summarize({4.0, 1.0, 3.0, 2.0}).median_ms, 2.5);
    EXPECT_EQ(summarize({7.0}).median_ms, 7.0);
    EXPECT_THROW((void)summarize({}), InvalidArgument);
}

TEST(BenchStats, RotationCoversTwiceTheL2Cache) {
    const std::size_t mib = 1 << 20;
    EXPECT_EQ(rotation_count(10 * mib, 50 * mib), 10);  // H100: 50 MiB L2, 10 MiB of inputs
    EXPECT_EQ(rotation_count(30 * mib, 50 * mib), 4);   // rounds up: 4 x 30 >= 100
    EXPECT_EQ(rotation_count(100 * mib, 50 * mib), 1);
    EXPECT_EQ(rotation_count(400 * mib, 50 * mib), 1);
    EXPECT_EQ(rotation_count(1024, 50 * mib), 64);  // capped
    EXPECT_EQ(rotation_count(1024, 50 * mib, 8), 8);
}

TEST(BenchStats, RepetitionsFitTheBudget) {
    EXPECT_EQ(repetitions_for(1.0, 250, 3, 15), 15);   // fast: the most
    EXPECT_EQ(repetitions_for(25.0, 250, 3, 15), 10);  // 10 fit
    EXPECT_EQ(repetitions_for(200.0, 250, 3, 15), 3);  // slow: the fewest
    EXPECT_EQ(repetitions_for(0.0, 250, 3, 15), 15);
}

TEST(BenchStats, RelativeErrorAndNan) {
    EXPECT_DOUBLE_EQ(relative_l2_error(4, 16), 0.5);
    EXPECT_DOUBLE_EQ(relative_l2_error(9, 0), 3.0);
    EXPECT_FALSE(relative_l2_error(std::nan(""), 1) <= 1.0);
}

// ---- the command line ---------------------------------------------------------------------------

TEST(BenchOptions, DefaultsRunEveryStandardSuite) {
    const Options options = parse_options({});
    std::size_t expected = 0;
    for (const std::string& suite : standard_suite_names()) expected += suite_configs(suite, false).size();
    EXPECT_EQ(options.configs.size(), expected);
    EXPECT_EQ(options.dtypes, std::vector<std::string>{"f32"});
    EXPECT_EQ(options.repeat, 50);
}

TEST(BenchOptions, QuickSuitesConfigsAndOverrides) {
    const Options quick = parse_options({"--quick", "--suite", "resnet18,pooling", "--repeat=7"});
    EXPECT_EQ(quick.configs.size(), suite_configs("resnet18", true).size() + suite_configs("pooling", true).size());
    EXPECT_EQ(quick.configs.front().suite, "resnet18");
    EXPECT_EQ(quick.repeat, 7);  // given explicitly: wins over quick's 15
    EXPECT_EQ(quick.warmup, 2);
    EXPECT_EQ(quick.budget_ms, 250);

    testing::TempDir dir;
    {
        std::ofstream file(dir.file("layers.txt"));
        file << "# mine\nconv2d in=1x3x8x8 w=4x3x3x3 p1\nmax_pool2d in=1x3x8x8 k2\n";
    }
    const Options custom =
        parse_options({"--config", "conv1d in=1x2x9 w=3x2x3", "--config-file", dir.file("layers.txt"), "--dtype",
                       "f32,tf32", "--direction", "fwd,bwd_filter", "--json", "-"});
    ASSERT_EQ(custom.configs.size(), 3u);  // only the custom ones: no --suite given
    EXPECT_EQ(custom.configs[0].suite, "custom");
    EXPECT_EQ(custom.configs[0].config.to_line(), "conv1d in=1x2x9 w=3x2x3 s1_p0_d1_g1");
    EXPECT_EQ(custom.configs[2].config.op, BenchOp::MaxPool);
    EXPECT_EQ(custom.dtypes, (std::vector<std::string>{"f32", "tf32"}));
    EXPECT_EQ(custom.directions, (std::vector<Direction>{Direction::Forward, Direction::BackwardFilter}));
    EXPECT_EQ(custom.json_path, "-");
}

TEST(BenchOptions, VariantsAreNamedAndListed) {
    EXPECT_EQ(parse_options({}).variant, "");
    const Options named = parse_options({"--variant", "cuda.direct", "--list-variants"});
    EXPECT_EQ(named.variant, "cuda.direct");
    EXPECT_TRUE(named.list_variants);
    const std::string table = variants_table();
    EXPECT_NE(table.find("conv\tforward\tcuda.direct\tcuda\n"), std::string::npos) << table;
    EXPECT_NE(table.find("pool\tbackward\thost.reference\thost\n"), std::string::npos) << table;
    EXPECT_NE(usage().find("--variant"), std::string::npos);
}

TEST(BenchOptions, ErrorsNameTheOption) {
    testing::TempDir dir;
    {
        std::ofstream file(dir.file("bad.txt"));
        file << "conv2d in=1x3x8x8 w=4x3x3x3\nconv2d in=1x3x8x8 w=4x3x3x3 g0\n";
    }
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--repeat", "0"}, "--repeat: expected an integer of at least 1, got '0'"},
        {{"--warmup=x"}, "--warmup: expected an integer"},
        {{"--suite", "vgg"}, "--suite: unknown suite 'vgg'"},
        {{"--dtype", "int8"}, "--dtype: 'int8' is not one of"},
        {{"--direction", "bwd"}, "--direction: direction 'bwd'"},
        {{"--json"}, "--json"},              // CLI11's message: a value is missing
        {{"--frobnicate"}, "--frobnicate"},  // CLI11's message: not expected
        {{"--variant", "host.blas"}, "--variant: 'host.blas' is not a registered CUDA variant"},
        {{"--budget-ms", "-1"}, "--budget-ms: expected a positive number"},
        {{"--config", "conv2d in=1x3x8x8"}, "--config: field 'w': missing"},
        {{"--config-file", dir.file("bad.txt")}, dir.file("bad.txt") + ":2: field 'groups'"},
        {{"--config-file", dir.file("absent.txt")}, "--config-file: cannot read"},
        {{"--repeat", "2", "--min-repeat", "3"}, "--min-repeat: 3 exceeds --repeat 2"},
    };
    for (const auto& [arguments, expected] : cases) {
        const std::string error = error_of([&] { (void)parse_options(arguments); });
        EXPECT_NE(error.find(expected), std::string::npos) << arguments[0] << " -> " << error;
    }
    EXPECT_NE(usage().find("--config-file"), std::string::npos);
}

// ---- the report formats -------------------------------------------------------------------------

RunInfo sample_info() {
    RunInfo info;
    info.gpu = "NVIDIA H100 80GB HBM3";
    info.date = "2025-01-02T03:04:05Z";
    info.driver = "550.54.15";
    info.cuda = "12.4";
    info.cudnn = "9.1.0";
    info.peak = {3000.0, 700.0, 400.0, 50.0};
    return info;
}

std::vector<BenchResult> sample_results() {
    BenchResult conv;
    conv.suite = "resnet50";
    conv.config = parse_config_line("conv2d in=32x3x224x224 w=64x3x7x7 s2_p3", "t");
    conv.direction = Direction::Forward;
    conv.work = work_counts(conv.config, conv.direction);
    conv.convkit = TimingStats{2.0, 1.5, 3.0, 10};
    conv.cudnn = TimingStats{1.0, 0.9, 1.2, 10};
    conv.convkit_variant = "cuda.igemm";
    BenchResult pool;
    pool.suite = "pooling";
    pool.config = parse_config_line("max_pool2d in=32x64x112x112 k3x3_s2x2_p1x1", "t");
    pool.direction = Direction::BackwardData;
    pool.work = work_counts(pool.config, pool.direction);
    pool.convkit = TimingStats{0.5, 0.4, 0.6, 15};
    pool.cudnn = TimingStats{0.25, 0.2, 0.3, 15};
    BenchResult bad = conv;
    bad.direction = Direction::BackwardFilter;
    bad.status = Status::Mismatch;
    bad.convkit.reset();
    bad.cudnn.reset();
    bad.convkit_variant = "cuda.wgmma";
    bad.note = "relative L2 difference 0.1 exceeds 0.0001 (not timed)";
    return {conv, pool, bad};
}

TEST(BenchReport, JsonHasTheIssuesFieldsAndParsesBack) {
    const nlohmann::ordered_json root = nlohmann::ordered_json::parse(to_json(sample_info(), sample_results()));
    std::vector<std::string> keys;
    for (const auto& [key, value] : root.items()) keys.push_back(key);
    EXPECT_EQ(keys, (std::vector<std::string>{"gpu", "date", "driver", "cuda", "cudnn", "peak", "results"}));
    EXPECT_EQ(root["gpu"], "NVIDIA H100 80GB HBM3");
    EXPECT_EQ(root["peak"]["copy_gbps"], 3000.0);
    EXPECT_EQ(root["peak"]["fp32_tflops"], 50.0);
    ASSERT_EQ(root["results"].size(), 3u);
    const auto& conv = root["results"][0];
    EXPECT_EQ(conv["suite"], "resnet50");
    EXPECT_EQ(conv["name"], "conv2d in=32x3x224x224 w=64x3x7x7 s2x2_p3x3_d1x1_g1");
    EXPECT_EQ(conv["op"], "conv");
    EXPECT_EQ(conv["direction"], "fwd");
    EXPECT_EQ(conv["dtype"], "f32");
    EXPECT_EQ(conv["convkit_ms"], 2.0);
    EXPECT_EQ(conv["cudnn_ms"], 1.0);
    EXPECT_EQ(conv["ratio"], 0.5);
    EXPECT_NEAR(conv["tflops"].get<double>(), 7552892928.0 / 2e-3 / 1e12, 1e-12);
    EXPECT_FALSE(conv.contains("gbps"));
    EXPECT_EQ(conv["status"], "ok");
    EXPECT_EQ(conv["convkit_variant"], "cuda.igemm");
    EXPECT_FALSE(conv.contains("note"));
    const auto& pool = root["results"][1];
    EXPECT_TRUE(pool["convkit_variant"].is_null());
    EXPECT_EQ(pool["op"], "pool");
    EXPECT_EQ(pool["direction"], "bwd_data");
    EXPECT_NEAR(pool["gbps"].get<double>(),
                work_counts(sample_results()[1].config, Direction::BackwardData).bytes / 5e-4 / 1e9, 1e-9);
    EXPECT_FALSE(pool.contains("tflops"));
    const auto& bad = root["results"][2];
    EXPECT_EQ(bad["status"], "mismatch");
    EXPECT_EQ(bad["convkit_variant"], "cuda.wgmma");
    EXPECT_EQ(bad["note"], "relative L2 difference 0.1 exceeds 0.0001 (not timed)");
    EXPECT_TRUE(bad["convkit_ms"].is_null());
    EXPECT_TRUE(bad["ratio"].is_null());
    EXPECT_TRUE(bad["tflops"].is_null());
    RunInfo unmeasured = sample_info();
    unmeasured.peak = Peak{};
    EXPECT_TRUE(nlohmann::json::parse(to_json(unmeasured, {}))["peak"]["bf16_tflops"].is_null());
}

// --model with --inference: the option is parsed, and each whole-model entry in the JSON says
// its mode and dtype (a training step in float32, an inference forward in bfloat16).
TEST(BenchReport, ModelEntriesNameTheirModeAndDtype) {
    const Options inference = parse_options({"--model", "resnet50", "--inference", "--batch", "8"});
    EXPECT_TRUE(inference.model_inference);
    EXPECT_EQ(inference.models, std::vector<std::string>{"resnet50"});
    EXPECT_EQ(inference.model_batch, 8);
    EXPECT_FALSE(parse_options({"--model", "resnet50"}).model_inference);
    const std::string alone = error_of([] { (void)parse_options({"--inference"}); });
    EXPECT_NE(alone.find("--inference"), std::string::npos) << alone;
    EXPECT_NE(alone.find("needs --model"), std::string::npos) << alone;

    ModelStepResult train;
    train.model = "resnet50";
    train.batch = 32;
    train.steps = 20;
    train.median_ms = 100;
    ModelStepResult folded = train;
    folded.mode = "inference folded";
    folded.dtype = "bf16";
    folded.median_ms = 8;
    const nlohmann::json root = nlohmann::json::parse(to_json(sample_info(), {}, {train, folded}));
    ASSERT_EQ(root["model_steps"].size(), 2u);
    EXPECT_EQ(root["model_steps"][0]["mode"], "train");
    EXPECT_EQ(root["model_steps"][0]["dtype"], "f32");
    EXPECT_EQ(root["model_steps"][1]["mode"], "inference folded");
    EXPECT_EQ(root["model_steps"][1]["dtype"], "bf16");
    EXPECT_EQ(root["model_steps"][1]["images_per_second"], 4000.0);
    EXPECT_NE(model_steps_table({folded}).find("resnet50 inference folded batch 32: 8 ms/step"), std::string::npos)
        << model_steps_table({folded});
    EXPECT_EQ(root["model_steps"][1]["status"], "ok");
    ModelStepResult mismatch = folded;
    mismatch.status = "mismatch: the folded model's logits differ";
    EXPECT_EQ(model_steps_table({mismatch}),
              "whole models, 3x224x224 (train: forward, backward, SGD in float32; "
              "inference: a forward in bfloat16):\n  resnet50 inference folded batch "
              "32: mismatch: the folded model's logits differ\n");
}

TEST(BenchReport, CsvGolden) {
    const std::string csv = to_csv(sample_info(), sample_results());
    std::istringstream lines(csv);
    std::string header, conv, pool, bad;
    std::getline(lines, header);
    std::getline(lines, conv);
    std::getline(lines, pool);
    std::getline(lines, bad);
    EXPECT_EQ(header,
              "suite,name,op,direction,dtype,status,convkit_ms,convkit_min_ms,convkit_max_ms,cudnn_ms,cudnn_min_ms,"
              "cudnn_max_ms,ratio,tflops,gbps,cudnn_tflops,cudnn_gbps,peak_percent,cudnn_peak_percent,flops,bytes,"
              "floor_ms,note");
    // 7.55 GFLOP in 2 ms = 3.776 TFLOP/s = 7.55% of 50; floor: 7.55e9 / 50e12 = 0.151 ms (compute
    // bound: the 122 MB at 3000 GB/s take 0.041 ms).
    EXPECT_EQ(conv,
              "resnet50,conv2d in=32x3x224x224 w=64x3x7x7 s2x2_p3x3_d1x1_g1,conv,fwd,f32,ok,2,1.5,3,1,0.9,1.2,0.5,"
              "3.77645,,7.55289,,7.55289,15.1058,7552892928,122065664,0.151058,\"\"");
    EXPECT_EQ(pool.substr(0, pool.find(",0.5,")),
              "pooling,max_pool2d in=32x64x112x112 k3x3_s2x2_p1x1,pool,bwd_data,f32,ok");
    EXPECT_EQ(bad,
              "resnet50,conv2d in=32x3x224x224 w=64x3x7x7 s2x2_p3x3_d1x1_g1,conv,bwd_filter,f32,mismatch,,,,,,,,,,,"
              ",,,7552892928,122065664,0.151058,\"relative L2 difference 0.1 exceeds 0.0001 (not timed)\"");
}

TEST(BenchReport, TableShowsTimesRatesRatioAndNotes) {
    const std::string table = to_table(sample_info(), sample_results());
    EXPECT_NE(table.find("GPU NVIDIA H100 80GB HBM3 | driver 550.54.15 | CUDA 12.4 | cuDNN 9.1.0"), std::string::npos);
    EXPECT_NE(table.find("[resnet50]"), std::string::npos);
    EXPECT_NE(table.find("[pooling]"), std::string::npos);
    EXPECT_NE(table.find("2 [1.5-3]"), std::string::npos) << table;  // convkit median [min-max]
    EXPECT_NE(table.find("3.78 (8%)"), std::string::npos) << table;  // TFLOP/s and % of fp32 peak
    EXPECT_NE(table.find("0.50"), std::string::npos) << table;       // the ratio
    EXPECT_NE(table.find("mismatch"), std::string::npos);
    EXPECT_NE(table.find("note: relative L2 difference"), std::string::npos);
    EXPECT_NE(table.find("convkit ran cuda.igemm"), std::string::npos) << table;
}

}  // namespace
}  // namespace convkit::bench
