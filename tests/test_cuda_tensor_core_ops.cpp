// The tensor-core convolution (cuda.igemm) through the public ops and autograd (label gpu; a GPU
// or the emulated device). The CUDA backend's default runs 16-bit channels-last convolutions on
// it natively: without conversions, in the input's format, with float32 accumulation and one
// rounding, forward and every gradient; other problems keep the float32 path. Float32
// channels-last convolutions run there too, on tf32, where the thread's math mode allows it
// (MathMode::AllowTF32), and on cuda.tiled under strict math. Each result is compared with the
// float64 host result on the same inputs.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "backend_api/geometry.h"
#include "backend_api/selection.h"
#include "backend_api/workspace_pieces.h"
#include "conv_epilogue_case.h"
#include "convkit/convkit.h"
#include "test_util.h"
#include "tolerances.h"
#include "variant_runner.h"

namespace convkit {
namespace {

class CudaTensorCoreOps : public testing::WithCuda<> {};

// The forward of a convolution (or a transposed one) and the three gradients of a weighted sum
// of its output (dx, dw and db of the results), on `device` in `dtype` and `format`; results as
// float64 host tensors.
using ConvRun = testing::ConvPassResults;
ConvRun run_conv(bool transposed, const ConvParams& params, const Tensor& x64, const Tensor& w64, const Tensor& b64,
                 const Tensor& dy64, DType dtype, Device device, MemoryFormat format) {
    // New leaves (detach): the inputs' handles are the caller's.
    Tensor x = x64.to(dtype).to(device).to(format).detach();
    Tensor w = w64.to(dtype).to(device).detach();
    Tensor b = b64.to(dtype).to(device).detach();
    for (Tensor* t : {&x, &w, &b}) t->set_requires_grad();
    const Tensor y = transposed ? conv_transpose_forward(x, w, b, params) : conv_forward(x, w, b, params);
    EXPECT_EQ(y.memory_format(), format) << "the result keeps the input's format";
    EXPECT_EQ(y.dtype(), dtype);
    y.backward(dy64.to(dtype).to(device).to(format));
    const auto host = [](const Tensor& t) { return t.to(Device::host()).contiguous().to(DType::Float64); };
    return {host(y), host(x.grad()), host(w.grad()), host(b.grad())};
}

struct Problem {
    std::string name;
    bool transposed;
    ConvParams params;
    Shape x, w;
};

TEST_F(CudaTensorCoreOps, SixteenBitChannelsLastConvolutionsRunNativelyAndMatchFloat64) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<Problem> problems = {
        {"conv2d 3x3", false, ConvParams(2).set_padding(1), Shape{2, 16, 9, 9}, Shape{24, 16, 3, 3}},
        {"conv1d strided", false, ConvParams(1).set_stride(2).set_padding(1), Shape{2, 8, 33}, Shape{16, 8, 3}},
        {"conv3d", false, ConvParams(3).set_padding(1), Shape{1, 8, 4, 5, 6}, Shape{8, 8, 3, 3, 3}},
        {"conv2d groups", false, ConvParams(2).set_groups(2).set_padding(1), Shape{1, 32, 6, 7}, Shape{16, 16, 3, 3}},
        {"conv_transpose2d", true, ConvParams(2).set_stride(2).set_padding(1), Shape{2, 16, 5, 6},
         Shape{16, 8, 4, 4}},
    };
    for (const Problem& p : problems) {
        for (DType dtype : {DType::BFloat16, DType::Float16}) {
            SCOPED_TRACE(p.name + " " + dtype_name(dtype));
            const Tensor x = testing::random_exact_in(dtype, p.x, rng), w = testing::random_exact_in(dtype, p.w, rng);
            const std::int64_t out_channels = p.transposed ? p.w[1] * p.params.groups : p.w[0];
            const Tensor b = testing::random_exact_in(dtype, Shape{out_channels}, rng);
            const Shape y_shape =
                p.transposed ? conv_transpose_forward(x, w, b, p.params).shape() : conv_forward(x, w, b, p.params).shape();
            const Tensor dy = testing::random_exact_in(dtype, y_shape, rng);
            const ConvRun expected = run_conv(p.transposed, p.params, x, w, b, dy, DType::Float64, Device::host(),
                                              MemoryFormat::Contiguous);
            reset_layout_conversions();
            const ConvRun got =
                run_conv(p.transposed, p.params, x, w, b, dy, dtype, Device::cuda(), MemoryFormat::ChannelsLast);
            // The float32 path would convert to contiguous for cuda.direct (counted); the
            // tensor-core path runs channels-last as it is. (The test's own to() calls are not
            // counted: only an op's conversions are.)
            EXPECT_EQ(layout_conversions(), 0U) << "the op or its backward converted a layout";
            testing::expect_conv_passes_close(got, expected, testing::sixteen_bit_tolerance(dtype));
        }
    }
}

// A contiguous 16-bit input is brought to channels-last for the tensor cores (counted) and its
// result and gradient back; 3 input channels run there too, padded to 8 in the workspace; a
// problem they refuse (6 output channels) runs in bfloat16 on the CUDA backend's fallback
// cuda.im2col (channels-last too: cuda.igemm takes its bias gradient). All match float64.
TEST_F(CudaTensorCoreOps, OtherSixteenBitProblemsConvertAndStayCorrect) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_padding(1);
    for (const Shape& w_shape : {Shape{16, 8, 3, 3}, Shape{16, 3, 3, 3}, Shape{6, 3, 3, 3}}) {
        SCOPED_TRACE(w_shape.to_string());
        const DType dtype = DType::BFloat16;
        const Tensor x = testing::random_exact_in(dtype, Shape{2, w_shape[1], 7, 6}, rng),
                     w = testing::random_exact_in(dtype, w_shape, rng),
                     b = testing::random_exact_in(dtype, Shape{w_shape[0]}, rng),
                     dy = testing::random_exact_in(dtype, Shape{2, w_shape[0], 7, 6}, rng);
        const ConvRun expected =
            run_conv(false, params, x, w, b, dy, DType::Float64, Device::host(), MemoryFormat::Contiguous);
        const ConvRun got = run_conv(false, params, x, w, b, dy, dtype, Device::cuda(), MemoryFormat::Contiguous);
        testing::expect_conv_passes_close(got, expected, testing::sixteen_bit_tolerance(dtype));
    }
}

// The public backward entry points run natively too, and a named cuda.igemm refuses strict
// float32 by name instead of computing it some other way.
TEST_F(CudaTensorCoreOps, BackwardEntryPointsRunNativelyAndTheNamedVariantRefusesFloat32) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_padding(1);
    const DType dtype = DType::Float16;
    const Tensor x = testing::random_exact_in(dtype, Shape{1, 8, 5, 5}, rng), w = testing::random_exact_in(dtype, Shape{8, 8, 3, 3}, rng),
                 dy = testing::random_exact_in(dtype, Shape{1, 8, 5, 5}, rng);
    const auto on_gpu = [&](const Tensor& t) {
        return t.to(dtype).to(Device::cuda()).to(MemoryFormat::ChannelsLast);
    };
    const Tensor x_gpu = on_gpu(x), dy_gpu = on_gpu(dy), w_gpu = w.to(dtype).to(Device::cuda());
    reset_layout_conversions();
    const Tensor dx = conv_backward_data(dy_gpu, w_gpu, x.shape(), params);
    const Tensor dw = conv_backward_filter(dy_gpu, x_gpu, w.shape(), params);
    const Tensor db = conv_backward_bias(dy_gpu);
    EXPECT_EQ(layout_conversions(), 0U);
    EXPECT_EQ(dx.memory_format(), MemoryFormat::ChannelsLast);
    const auto host64 = [](const Tensor& t) { return t.to(Device::host()).contiguous().to(DType::Float64); };
    EXPECT_LT(testing::relative_error(host64(dx), conv_backward_data(dy, w, x.shape(), params)),
              testing::sixteen_bit_tolerance(dtype));
    EXPECT_LT(testing::relative_error(host64(dw), conv_backward_filter(dy, x, w.shape(), params)),
              testing::sixteen_bit_tolerance(dtype));
    EXPECT_LT(testing::relative_error(host64(db), conv_backward_bias(dy)), testing::sixteen_bit_tolerance(dtype));

    const VariantGuard named("cuda.igemm");
    const Tensor x32 = x.to(DType::Float32).to(Device::cuda()).to(MemoryFormat::ChannelsLast);
    const Tensor w32 = w.to(DType::Float32).to(Device::cuda());
    try {
        conv_forward(x32, w32, Tensor(), params);
        ADD_FAILURE() << "a named cuda.igemm ran float32";
    } catch (const NotSupported& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("cuda.igemm named for the forward pass computes float32 on tf32 tensor cores only, "
                               "which strict math forbids"),
                  std::string::npos)
            << message;
    }
}

// Float32 under AllowTF32: the default runs channels-last convolutions (channels per group a
// multiple of 4) on cuda.igemm's tf32 kernels natively (no layout conversion), forward and every
// gradient, within the tf32 tolerance of float64; contiguous ones stay on cuda.tiled (the op
// keeps a format some variant runs). Under strict math cuda.igemm refuses, saying why, and the
// channels-last call is converted for cuda.tiled.
TEST_F(CudaTensorCoreOps, Float32RunsOnTf32TensorCoresOnlyUnderAllowTf32) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<Problem> problems = {
        {"conv2d 12 -> 20", false, ConvParams(2).set_padding(1), Shape{2, 12, 7, 6}, Shape{20, 12, 3, 3}},
        {"conv1d groups of 4, strided", false, ConvParams(1).set_groups(2).set_stride(2).set_padding(1),
         Shape{1, 8, 21}, Shape{8, 4, 3}},
        {"conv_transpose2d", true, ConvParams(2).set_stride(2).set_padding(1), Shape{1, 8, 4, 5}, Shape{8, 12, 4, 4}},
    };
    for (const Problem& p : problems) {
        SCOPED_TRACE(p.name);
        const detail::ConvGeometry g =
            p.transposed ? detail::conv_transpose_geometry("conv_transpose2d", p.x, p.w, p.params)
                         : detail::conv_geometry(p.params.spatial_rank == 1 ? "conv1d" : "conv2d", p.x, p.w, p.params);
        const Tensor x = testing::random_tensor(p.x, rng), w = testing::random_tensor(p.w, rng);
        const Tensor b = testing::random_tensor(Shape{p.transposed ? g.in_channels : g.out_channels}, rng);
        const Shape y_shape = p.transposed ? g.input_shape() : g.output_shape();
        const Tensor dy = testing::random_tensor(y_shape, rng);
        const ConvRun expected =
            run_conv(p.transposed, p.params, x, w, b, dy, DType::Float64, Device::host(), MemoryFormat::Contiguous);
        for (MathMode mode : {MathMode::Strict, MathMode::AllowTF32}) {
            SCOPED_TRACE(math_mode_name(mode));
            const testing::MathModeGuard math(mode);
            const bool tf32 = mode == MathMode::AllowTF32;
            detail::ConvProblem problem = detail::conv_problem(g, DType::Float32, Device::cuda());
            for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter}) {
                EXPECT_STREQ(detail::choose_variant("conv", problem, pass).variant->name(), "cuda.tiled");
            }
            problem.x_layout = problem.y_layout = MemoryFormat::ChannelsLast;
            std::string reason;
            EXPECT_EQ(testing::conv_variant_named("cuda.igemm").supports(problem, ConvPass::Forward, &reason), tf32)
                << reason;
            if (!tf32) {
                EXPECT_NE(reason.find("strict math forbids"), std::string::npos) << reason;
            }
            if (tf32) {
                for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter}) {
                    EXPECT_STREQ(detail::choose_variant("conv", problem, pass).variant->name(), "cuda.igemm");
                }
            }
            reset_layout_conversions();
            const ConvRun got = run_conv(p.transposed, p.params, x, w, b, dy, DType::Float32, Device::cuda(),
                                         MemoryFormat::ChannelsLast);
            if (tf32) {
                EXPECT_EQ(layout_conversions(), 0U) << "cuda.igemm runs channels-last as it is";
            } else {
                EXPECT_GT(layout_conversions(), 0U) << "cuda.tiled runs contiguous operands";
            }
            testing::expect_conv_passes_close(
                got, expected, tf32 ? testing::kTf32Tolerance : testing::kCudaStrictFloat32Tolerance);
        }
    }
}

// The epilogue (residual + ReLU after the bias) through conv_forward / conv_transpose_forward on
// CUDA: fused into cuda.igemm's output pass for bfloat16 and for float32 as tf32, applied after
// cuda.tiled's pass under strict float32; forward and every gradient (the residual's included)
// within the dtype's tolerance of the float64 composition relu(conv + b + r) on the host.
TEST_F(CudaTensorCoreOps, ConvolutionEpilogueMatchesTheFloat64Composition) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<testing::EpilogueCase> cases = testing::cuda_epilogue_cases();
    struct Mode {
        DType dtype;
        MathMode math;
        const char* variant;  // the forward's
        double tolerance;
    };
    const Mode modes[] = {
        {DType::BFloat16, MathMode::Strict, "cuda.igemm", testing::kBfloat16VsFloat64Tolerance},
        {DType::Float32, MathMode::AllowTF32, "cuda.igemm", testing::kTf32Tolerance},
        {DType::Float32, MathMode::Strict, "cuda.tiled", testing::kCudaStrictFloat32Tolerance},
    };
    for (const testing::EpilogueCase& c : cases) {
        for (const Mode& mode : modes) {
            SCOPED_TRACE(c.name + " " + dtype_name(mode.dtype) + " " + math_mode_name(mode.math));
            const testing::MathModeGuard math(mode.math);
            const detail::ConvGeometry g = c.transposed
                                               ? detail::conv_transpose_geometry("conv_transpose2d", c.x, c.w, c.params)
                                               : detail::conv_geometry("conv2d", c.x, c.w, c.params);
            detail::ConvProblem problem = detail::conv_problem(g, mode.dtype, Device::cuda());
            const bool tensor_cores = std::string(mode.variant) == "cuda.igemm";
            // cuda.tiled runs contiguous operands: the op converts the channels-last ones for it.
            if (tensor_cores) problem.x_layout = problem.y_layout = MemoryFormat::ChannelsLast;
            const ConvPass pass = c.transposed ? ConvPass::BackwardData : ConvPass::Forward;
            const detail::ConvChoice choice = detail::choose_variant("conv", problem, pass);
            EXPECT_STREQ(choice.variant->name(), mode.variant);
            EXPECT_EQ(choice.variant->fuses_epilogue(), tensor_cores);

            const testing::EpilogueInputs in = testing::random_epilogue_inputs(c, true, true, DType::BFloat16, rng);
            const testing::EpilogueResults expected =
                testing::run_epilogue(c, in, true, false, DType::Float64, Device::host(), MemoryFormat::Contiguous);
            const testing::EpilogueResults got =
                testing::run_epilogue(c, in, true, true, mode.dtype, Device::cuda(), MemoryFormat::ChannelsLast);
            testing::expect_epilogue_results_close(got, expected, mode.tolerance);
        }
    }
}

// A ResNet block folded for inference runs on CUDA in bfloat16 channels-last as two tensor-core
// convolutions whose epilogues add the residual and rectify: the same output as the unfolded
// block in float64 on the host, within bfloat16's tolerance.
TEST_F(CudaTensorCoreOps, FoldedResNetBlockMatchesTheFloat64Block) {
    CONVKIT_SEEDED_RNG(rng);
    nn::init::manual_seed(rng());
    models::BasicBlock block(16, 32, 2);  // with a 1x1 shortcut
    block.to(DType::Float64);
    testing::randomize_batch_norms(block, rng());
    block.eval();
    const Tensor x = testing::random_exact_in(DType::BFloat16, Shape{2, 16, 8, 8}, rng);
    const NoGradGuard no_grad;
    const Tensor expected = block(x);
    block.fold_batch_norms();
    block.to(DType::BFloat16);
    block.to(Device::cuda());
    reset_layout_conversions();
    const Tensor got = block(x.to(DType::BFloat16).to(Device::cuda()).to(MemoryFormat::ChannelsLast));
    EXPECT_EQ(layout_conversions(), 0U) << "the folded block runs channels-last on cuda.igemm throughout";
    EXPECT_LT(testing::relative_error(got.to(Device::host()).contiguous().to(DType::Float64), expected),
              testing::kBfloat16VsFloat64Tolerance);
}

// Split-K's slices come from the variant's workspace: a batch-1 64 -> 64 3x3 at 5x5 splits its 18
// k tiles in 2 on cuda.igemm (kernels' DefaultSplitsFillTheGpuWhereTheTilesDoNot), 2 slices of
// 25 rows x 64 channels of floats more than cuda.igemm.unsplit asks for in the forward and
// backward-data; backward-filter splits alike on both. Both variants' passes match float64 there
// (the variant sweep, which leaves cuda.igemm.unsplit out, runs cuda.igemm on it too).
TEST_F(CudaTensorCoreOps, SplitKSlicesComeFromTheWorkspace) {
    CONVKIT_SEEDED_RNG(rng);
    const detail::ConvGeometry g =
        detail::conv_geometry("conv2d", Shape{1, 64, 5, 5}, Shape{64, 64, 3, 3}, ConvParams(2).set_padding(1));
    detail::ConvProblem problem = detail::conv_problem(g, DType::BFloat16, Device::cuda());
    problem.x_layout = problem.y_layout = MemoryFormat::ChannelsLast;
    const detail::ConvVariant& split = testing::conv_variant_named("cuda.igemm");
    const detail::ConvVariant& unsplit = testing::conv_variant_named("cuda.igemm.unsplit");
    for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData}) {
        EXPECT_EQ(split.workspace(problem, pass) - unsplit.workspace(problem, pass),
                  detail::WorkspacePieces::rounded(2 * 25 * 64 * sizeof(float)));
    }
    EXPECT_EQ(split.workspace(problem, ConvPass::BackwardFilter), unsplit.workspace(problem, ConvPass::BackwardFilter));
    const testing::ConvPassInputs in = testing::random_pass_inputs(g, DType::BFloat16, rng);
    const testing::ConvPassResults expected =
        testing::run_conv_passes(testing::conv_variant_named("host.reference"), g, in, DType::Float64);
    for (const detail::ConvVariant* variant : {&split, &unsplit}) {
        SCOPED_TRACE(variant->name());
        testing::expect_conv_passes_close(
            testing::run_conv_passes(*variant, g, in, DType::BFloat16, Device::cuda(), MemoryFormat::ChannelsLast),
            expected, testing::kBfloat16VsFloat64Tolerance);
    }
}

}  // namespace
}  // namespace convkit
