// The tiled implicit-GEMM convolution (cuda.tiled, kernels/conv_tiled.cu) on shapes that cross
// its tile edges (label gpu; a GPU or the emulated device): GEMMs of several 128 x 64 tiles with
// partial last tiles, reductions split over blocks (every backward-filter here, and forward and
// backward-data with few output tiles), groups, strides, dilation, asymmetric padding, 1-D to
// 3-D, float32 and float64, each pass against the float64 host reference. The variant sweep
// (test_variant_sweep_gpu) adds the kernel sweep's small geometries. Strided backward-data (the
// forward of a transposed convolution) runs per phase of the stride (sub-pixel): its own sweep
// below, and the plan the launcher runs must skip the taps that fall between dy samples. A split
// reduction must give the same bits on every run, and it must be the CUDA backend's default for
// float32.
#include <gtest/gtest.h>

#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/conv_tiled.h"
#include "kernels/fast_division.h"
#include "test_util.h"
#include "tolerances.h"
#include "variant_runner.h"

namespace convkit {
namespace {

class CudaTiledConv : public testing::WithCuda<> {};

struct TiledCase {
    std::string name;
    ConvParams params;
    Shape x, w;
};

// M = batch x positions past 128 (several row tiles, the last partial), N past 128 (two of the
// wide tile's columns) in the first, at most 64 (the narrow tile) in others, and reductions long
// enough to split.
std::vector<TiledCase> tiled_cases() {
    const std::int64_t wide = 160;  // two 128-column tiles, the second partial
    return {
        {"conv2d 3x3 two row tiles", ConvParams(2).set_padding(1), Shape{2, 8, 9, 11}, Shape{wide, 8, 3, 3}},
        {"conv2d strided dilated asymmetric", ConvParams(2).set_stride({2, 1}).set_dilation({1, 2}).set_padding({2, 1}),
         Shape{3, 6, 13, 10}, Shape{12, 6, 3, 2}},
        {"conv2d same even kernel", ConvParams(2).set_same_padding(), Shape{1, 5, 12, 12}, Shape{7, 5, 4, 4}},
        {"conv2d groups", ConvParams(2).set_groups(3).set_padding(1), Shape{2, 12, 7, 9}, Shape{9, 4, 3, 3}},
        // 1x1 at stride 1 without padding, grouped: every pass's pointwise operands (forward on the
        // wide tile, backward-filter not transposed).
        {"conv2d 1x1 pointwise groups", ConvParams(2).set_groups(2), Shape{2, 80, 5, 7}, Shape{160, 40, 1, 1}},
        // Pointwise with reductions long enough to split: forward (K = 256) 2 slices, the
        // transposed filter gradient (512 positions) 4.
        {"conv2d 1x1 pointwise split", ConvParams(2), Shape{2, 256, 16, 16}, Shape{32, 256, 1, 1}},
        // The 128 x 128 tile with the general gather, and split (CudaTiledPlan pins these): forward
        // 288 x 160 x 288 and the filter gradient 160 x 288 x 288, 2 slices each;
        {"conv2d 3x3 wide tile split", ConvParams(2).set_padding(1), Shape{2, 32, 12, 12}, Shape{160, 32, 3, 3}},
        // backward-data 720 x 96 x 288 in 2 slices, the filter gradient transposed in 5;
        {"conv2d 3x3 wide backward-data split", ConvParams(2).set_padding(1), Shape{5, 96, 12, 12},
         Shape{32, 96, 3, 3}},
        // each stride phase's backward-data 800 x 80 on the wide tile.
        {"conv2d 3x3/2 wide phases", ConvParams(2).set_padding(1).set_stride(2), Shape{2, 80, 40, 40},
         Shape{16, 80, 3, 3}},
        // 8 output channels a group over 40 x 9 patch rows: backward-filter runs transposed.
        {"conv2d groups transposed filter gradient", ConvParams(2).set_groups(2).set_padding(1), Shape{2, 80, 6, 7},
         Shape{16, 40, 3, 3}},
        {"conv1d long", ConvParams(1).set_padding(2).set_stride(2), Shape{2, 6, testing::gpu_or_emulated(2000, 301)},
         Shape{10, 6, 5}},
        {"conv3d", ConvParams(3).set_padding(1).set_stride({1, 2, 1}), Shape{1, 4, 5, 7, 6}, Shape{6, 4, 3, 3, 3}},
        {"conv2d 1x1 deep", ConvParams(2), Shape{1, testing::gpu_or_emulated(512, 96), 3, 3},
         Shape{16, testing::gpu_or_emulated(512, 96), 1, 1}},
    };
}

TEST_F(CudaTiledConv, EveryPassMatchesTheFloat64ReferenceAcrossTileEdges) {
    CONVKIT_SEEDED_RNG(rng);
    const detail::ConvVariant& tiled = testing::conv_variant_named("cuda.tiled");
    const detail::ConvVariant& reference = testing::conv_variant_named("host.reference");
    for (const TiledCase& c : tiled_cases()) {
        SCOPED_TRACE(c.name);
        const detail::ConvGeometry g = detail::conv_geometry("conv", c.x, c.w, c.params);
        const testing::ConvPassInputs in = testing::random_pass_inputs(g, DType::Float32, rng);
        const testing::ConvPassResults expected = testing::run_conv_passes(reference, g, in, DType::Float64);
        for (DType dtype : {DType::Float32, DType::Float64}) {
            SCOPED_TRACE(dtype_name(dtype));
            const testing::ConvPassResults got = testing::run_conv_passes(tiled, g, in, dtype, Device::cuda());
            const double tol = dtype == DType::Float64 ? testing::kFloat64Tolerance : testing::kCudaStrictFloat32Tolerance;
            testing::expect_conv_passes_close(got, expected, tol);
        }
    }
}

// ---- strided backward-data, per phase -------------------------------------------------------

// A strided convolution (its backward-data) or a transposed convolution (its forward, the same
// pass), with x and w shaped as the op takes them.
struct StridedCase {
    std::string label;
    bool transposed;
    ConvParams params;
    Shape x, w;

    detail::ConvGeometry geometry() const {
        return transposed ? detail::conv_transpose_geometry("conv_transpose", x, w, params)
                          : detail::conv_geometry("conv", x, w, params);
    }
    std::string name() const {
        return testing::test_name(label + (transposed ? "_transposed_" : "_conv_") + params.to_string());
    }
};
void PrintTo(const StridedCase& c, std::ostream* os) {
    *os << c.name();
}

// Strides 2-3 per dim, kernels smaller than, equal to and larger than the stride, dilation 1-3
// (gcd(dilation, stride) > 1 leaves phases with no tap), padding, output_padding (positions no
// tap reaches), groups, batch 1, inputs smaller than the stride, and phases of more than one
// 128-row tile.
std::vector<StridedCase> strided_cases() {
    const std::int64_t deep = testing::gpu_or_emulated(80, 12);
    return {
        {"1d_k2_lt_s3", false, ConvParams(1).set_stride(3), Shape{1, 3, 17}, Shape{4, 3, 2}},
        {"1d_k5_s2_d2_gcd2", false, ConvParams(1).set_stride(2).set_dilation(2).set_padding(1), Shape{2, 4, 23},
         Shape{5, 4, 5}},
        {"1d_k3_s3_d3_gcd3_op2_g2", true,
         ConvParams(1).set_stride(3).set_dilation(3).set_padding(1).set_output_padding(2).set_groups(2), Shape{1, 4, 9},
         Shape{4, 3, 3}},
        {"1d_input_below_stride", false, ConvParams(1).set_stride(3).set_padding(2), Shape{1, 2, 2}, Shape{3, 2, 4}},
        {"2d_dcgan_k4_s2_p1", true, ConvParams(2).set_stride(2).set_padding(1), Shape{1, 6, 9, 7}, Shape{6, 5, 4, 4}},
        {"2d_unet_k2_s2", true, ConvParams(2).set_stride(2), Shape{2, 5, 6, 5}, Shape{5, 3, 2, 2}},
        {"2d_k2_s2_op1", true, ConvParams(2).set_stride(2).set_output_padding(1), Shape{1, 3, 5, 4}, Shape{3, 4, 2, 2}},
        {"2d_asymmetric_g2", true,
         ConvParams(2)
             .set_stride({2, 3})
             .set_dilation({3, 2})
             .set_padding({2, 1})
             .set_output_padding({1, 2})
             .set_groups(2),
         Shape{1, 4, 5, 6}, Shape{4, 3, 3, 4}},
        {"2d_k3_s2_d2_gcd2", false, ConvParams(2).set_stride(2).set_dilation(2).set_padding({2, 1}),
         Shape{1, 3, 11, 12}, Shape{4, 3, 3, 3}},
        {"2d_k7_s3_d1", false, ConvParams(2).set_stride({3, 2}).set_padding(3), Shape{1, 2, 14, 13}, Shape{3, 2, 7, 5}},
        {"2d_tile_edges", true, ConvParams(2).set_stride(2).set_padding(1), Shape{2, 5, 12, 11}, Shape{5, deep, 4, 4}},
        {"3d_s223_d121", false, ConvParams(3).set_stride({2, 2, 3}).set_dilation({1, 2, 1}).set_padding({1, 0, 1}),
         Shape{1, 3, 6, 5, 7}, Shape{4, 3, 3, 2, 3}},
        {"3d_k2_s2_op1_g3", true, ConvParams(3).set_stride(2).set_output_padding({1, 0, 1}).set_groups(3),
         Shape{1, 6, 3, 4, 3}, Shape{6, 2, 2, 2, 2}},
    };
}

class CudaTiledStridedBackwardData : public testing::WithCuda<::testing::TestWithParam<StridedCase>> {};

// Only the backward-data pass: dx = conv^T(dy, w) + bias, into NaN (every phase, every position
// no tap reaches, must be written).
Tensor backward_data(const detail::ConvVariant& variant, const detail::ConvGeometry& g, const Tensor& dy,
                     const Tensor& w, const Tensor& bias, DType dtype, Device device) {
    const auto on = [&](const Tensor& t) { return t.to(dtype).to(device); };
    const Tensor dy_on = on(dy), w_on = on(w), bias_on = on(bias);
    const Tensor dx = testing::nan_tensor(g.input_shape(), dtype, device);
    const detail::ConvProblem problem = detail::conv_problem(g, dtype, device);
    const std::size_t bytes = variant.workspace(problem, ConvPass::BackwardData);
    const Tensor scratch =
        testing::nan_tensor(Shape{static_cast<std::int64_t>((bytes + 7) / 8)}, DType::Float64, device);
    variant.run(problem, ConvPass::BackwardData,
                {.w = w_on.raw_data(), .dy = dy_on.raw_data(), .bias = bias_on.raw_data(), .out = dx.raw_data()},
                {bytes == 0 ? nullptr : scratch.raw_data(), bytes}, testing::stream_for(device));
    return dx.to(Device::host());
}

TEST_P(CudaTiledStridedBackwardData, MatchesTheFloat64Reference) {
    CONVKIT_SEEDED_RNG(rng);
    const detail::ConvGeometry g = GetParam().geometry();
    ASSERT_TRUE(
        kernels::conv_tiled_plan(g, kernels::TiledConvPass::BackwardData, DType::Float32).launches.front().per_phase);
    const Tensor dy = testing::random_exact_in(DType::Float32, g.output_shape(), rng);
    const Tensor w = testing::random_exact_in(DType::Float32, g.weight_shape(), rng);
    const Tensor bias = testing::random_exact_in(DType::Float32, Shape{g.in_channels}, rng);
    const Tensor expected =
        backward_data(testing::conv_variant_named("host.reference"), g, dy, w, bias, DType::Float64, Device::host());
    for (DType dtype : {DType::Float32, DType::Float64}) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor got =
            backward_data(testing::conv_variant_named("cuda.tiled"), g, dy, w, bias, dtype, Device::cuda());
        const double tol = dtype == DType::Float64 ? testing::kFloat64Tolerance : testing::kCudaStrictFloat32Tolerance;
        EXPECT_LT(testing::relative_error(got.to(DType::Float64), expected), tol);
    }
}

INSTANTIATE_TEST_SUITE_P(Geometries, CudaTiledStridedBackwardData, ::testing::ValuesIn(strided_cases()),
                         [](const ::testing::TestParamInfo<StridedCase>& info) { return info.param.name(); });

// The dense gather's multiply-adds for backward-data: every dx position times every tap.
std::int64_t dense_backward_data_multiply_adds(const detail::ConvGeometry& g) {
    return g.batch * g.input_spatial() * g.in_channels_per_group() * g.out_channels_per_group() * g.kernel_spatial() *
           g.groups;
}

// The plan computes only the taps that land on each phase: a 4x4/stride-2 transposed convolution
// (DCGAN) and a 2x2/stride-2 one (U-Net) a quarter of the dense multiply-adds, four taps and one
// per phase; a dilation sharing the stride's factor leaves whole phases with an empty reduction;
// stride 1 keeps the one dense GEMM.
TEST(CudaTiledPlan, StridedBackwardDataComputesOnlyTheTapsOfEachPhase) {
    using kernels::TiledConvPass;
    const auto plan_of = [](const detail::ConvGeometry& g) {
        return kernels::conv_tiled_plan(g, TiledConvPass::BackwardData, DType::Float32);
    };
    const detail::ConvGeometry dcgan = detail::conv_transpose_geometry(
        "conv_transpose", Shape{64, 512, 4, 4}, Shape{512, 256, 4, 4}, ConvParams(2).set_stride(2).set_padding(1));
    const kernels::TiledConvPlan dcgan_plan = plan_of(dcgan);
    ASSERT_EQ(dcgan_plan.launches.size(), 4U);
    for (const kernels::TiledGemmLaunch& l : dcgan_plan.launches) {
        EXPECT_TRUE(l.per_phase);
        EXPECT_EQ(l.m, 64 * 4 * 4);  // a quarter of the 8x8 dx positions per image
        EXPECT_EQ(l.k, 512 * 4);     // two taps per dim
    }
    EXPECT_EQ(dcgan_plan.multiply_adds() * 4, dense_backward_data_multiply_adds(dcgan));

    const detail::ConvGeometry unet = detail::conv_transpose_geometry(
        "conv_transpose", Shape{1, 128, 32, 32}, Shape{128, 64, 2, 2}, ConvParams(2).set_stride(2));
    const kernels::TiledConvPlan unet_plan = plan_of(unet);
    ASSERT_EQ(unet_plan.launches.size(), 4U);
    for (const kernels::TiledGemmLaunch& l : unet_plan.launches) EXPECT_EQ(l.k, 128);
    EXPECT_EQ(unet_plan.multiply_adds() * 4, dense_backward_data_multiply_adds(unet));

    // Stride 2, dilation 2, kernel 3, no padding: even positions get all three taps, odd none.
    const detail::ConvGeometry gcd =
        detail::conv_geometry("conv", Shape{1, 2, 10}, Shape{3, 2, 3}, ConvParams(1).set_stride(2).set_dilation(2));
    const kernels::TiledConvPlan gcd_plan = plan_of(gcd);
    ASSERT_EQ(gcd_plan.launches.size(), 2U);
    EXPECT_EQ(gcd_plan.launches[0].k, 3 * 3);
    EXPECT_EQ(gcd_plan.launches[1].k, 0);
    EXPECT_EQ(gcd_plan.launches[0].m + gcd_plan.launches[1].m, 10);

    const detail::ConvGeometry unit =
        detail::conv_geometry("conv", Shape{2, 8, 9, 9}, Shape{4, 8, 3, 3}, ConvParams(2).set_padding(1));
    const kernels::TiledConvPlan unit_plan = plan_of(unit);
    ASSERT_EQ(unit_plan.launches.size(), 1U);
    EXPECT_FALSE(unit_plan.launches[0].per_phase);
    EXPECT_EQ(unit_plan.multiply_adds(), dense_backward_data_multiply_adds(unit));
}

// A GEMM of at most 64 columns runs the 128 x 64 tile (the wide one would leave half its
// columns idle), a wider one the 128 x 128 tile unless its tiles are too few to fill the GPU
// even split; float64 always the narrow one (its 64 accumulators a thread would not fit the wide
// tile's registers). The splits count the tiles of the width chosen.
TEST(CudaTiledPlan, ColumnWidthFollowsTheGemmAndTheDtype) {
    using kernels::TiledConvPass;
    const auto forward = [](std::int64_t out_channels, DType dtype) {
        const detail::ConvGeometry g = detail::conv_geometry(
            "conv", Shape{32, 64, 56, 56}, Shape{out_channels, 64, 3, 3}, ConvParams(2).set_padding(1));
        const kernels::TiledConvPlan plan = kernels::conv_tiled_plan(g, TiledConvPass::Forward, dtype);
        EXPECT_EQ(plan.launches.size(), 1U);
        return plan.launches.front();
    };
    EXPECT_EQ(forward(64, DType::Float32).tile_n, 64);
    EXPECT_EQ(forward(65, DType::Float32).tile_n, 128);
    EXPECT_EQ(forward(256, DType::Float32).tile_n, 128);
    EXPECT_EQ(forward(256, DType::Float64).tile_n, 64);
    // ResNet-50's layer4 3x3 at batch 32: 1568 x 512, 13 x 4 = 52 wide tiles, split to reach about
    // 264 blocks: 6 slices of 96 steps of 8 (the 128 x 64 tile gave 104 tiles and 3 slices).
    const detail::ConvGeometry layer4 =
        detail::conv_geometry("conv", Shape{32, 512, 7, 7}, Shape{512, 512, 3, 3}, ConvParams(2).set_padding(1));
    const kernels::TiledGemmLaunch l =
        kernels::conv_tiled_plan(layer4, TiledConvPass::Forward, DType::Float32).launches.front();
    EXPECT_EQ(l.tile_n, 128);
    EXPECT_EQ(l.splits, 6);
    // WaveNet's filter gradient: dw 128 x 128 over 32768 positions is one wide tile, 64 blocks
    // even split 64 ways; the narrow tile gives two tiles, 128 blocks.
    const detail::ConvGeometry wavenet =
        detail::conv_geometry("conv", Shape{8, 64, 4096}, Shape{128, 64, 2}, ConvParams(1));
    const kernels::TiledGemmLaunch f =
        kernels::conv_tiled_plan(wavenet, TiledConvPass::BackwardFilter, DType::Float32).launches.front();
    EXPECT_EQ(f.tile_n, 64);
    EXPECT_EQ(f.splits, 64);
}

// A 1x1 kernel at stride 1 without padding reads its operands as the tensors themselves in every
// pass (float32); a stride, padding, a wider kernel or float64 keep the general gather.
TEST(CudaTiledPlan, PointwiseConvolutionsSkipTheGather) {
    using kernels::TiledConvPass;
    const auto pointwise = [](const Shape& w, const ConvParams& params, TiledConvPass pass, DType dtype) {
        const detail::ConvGeometry g = detail::conv_geometry("conv", Shape{4, 32, 14, 14}, w, params);
        const kernels::TiledConvPlan plan = kernels::conv_tiled_plan(g, pass, dtype);
        bool all = !plan.launches.empty();
        for (const kernels::TiledGemmLaunch& l : plan.launches) all = all && l.pointwise;
        return all;
    };
    for (TiledConvPass pass : {TiledConvPass::Forward, TiledConvPass::BackwardData, TiledConvPass::BackwardFilter}) {
        EXPECT_TRUE(pointwise(Shape{64, 32, 1, 1}, ConvParams(2), pass, DType::Float32));
        EXPECT_FALSE(pointwise(Shape{64, 32, 1, 1}, ConvParams(2), pass, DType::Float64));
        EXPECT_FALSE(pointwise(Shape{64, 32, 1, 1}, ConvParams(2).set_stride(2), pass, DType::Float32));
        EXPECT_FALSE(pointwise(Shape{64, 32, 1, 1}, ConvParams(2).set_padding(1), pass, DType::Float32));
        EXPECT_FALSE(pointwise(Shape{64, 32, 3, 3}, ConvParams(2).set_padding(1), pass, DType::Float32));
    }
    // The sweep's split pointwise case ("conv2d 1x1 pointwise split") does split, in two passes.
    const detail::ConvGeometry split =
        detail::conv_geometry("conv", Shape{2, 256, 16, 16}, Shape{32, 256, 1, 1}, ConvParams(2));
    const kernels::TiledGemmLaunch forward =
        kernels::conv_tiled_plan(split, TiledConvPass::Forward, DType::Float32).launches.front();
    EXPECT_TRUE(forward.pointwise);
    EXPECT_EQ(forward.splits, 2);
    const kernels::TiledGemmLaunch filter =
        kernels::conv_tiled_plan(split, TiledConvPass::BackwardFilter, DType::Float32).launches.front();
    EXPECT_TRUE(filter.pointwise);
    EXPECT_TRUE(filter.transposed);
    EXPECT_EQ(filter.splits, 4);
}

// The sweep's wide-tile cases run what they say: the 128 x 128 tile with the general gather, split
// (so a change of the plan's rules cannot move them off it unnoticed).
TEST(CudaTiledPlan, TheSweepsWideCasesRunTheWideTileSplit) {
    using kernels::TiledConvPass;
    const auto launches = [](const Shape& x, const Shape& w, const ConvParams& params, TiledConvPass pass) {
        return kernels::conv_tiled_plan(detail::conv_geometry("conv", x, w, params), pass, DType::Float32).launches;
    };
    const ConvParams same = ConvParams(2).set_padding(1);
    const auto forward = launches(Shape{2, 32, 12, 12}, Shape{160, 32, 3, 3}, same, TiledConvPass::Forward).front();
    EXPECT_EQ(forward.tile_n, 128);
    EXPECT_EQ(forward.splits, 2);
    EXPECT_FALSE(forward.pointwise);
    const auto filter =
        launches(Shape{2, 32, 12, 12}, Shape{160, 32, 3, 3}, same, TiledConvPass::BackwardFilter).front();
    EXPECT_EQ(filter.tile_n, 128);
    EXPECT_EQ(filter.splits, 2);
    EXPECT_FALSE(filter.transposed);
    const auto data = launches(Shape{5, 96, 12, 12}, Shape{32, 96, 3, 3}, same, TiledConvPass::BackwardData).front();
    EXPECT_EQ(data.tile_n, 128);
    EXPECT_EQ(data.splits, 2);
    const auto transposed =
        launches(Shape{5, 96, 12, 12}, Shape{32, 96, 3, 3}, same, TiledConvPass::BackwardFilter).front();
    EXPECT_TRUE(transposed.transposed);
    EXPECT_EQ(transposed.splits, 5);
    const auto phases = launches(Shape{2, 80, 40, 40}, Shape{16, 80, 3, 3}, ConvParams(2).set_padding(1).set_stride(2),
                                 TiledConvPass::BackwardData);
    ASSERT_EQ(phases.size(), 4U);
    for (const kernels::TiledGemmLaunch& l : phases) {
        EXPECT_TRUE(l.per_phase);
        EXPECT_EQ(l.tile_n, 128);
    }
}

// Backward-filter runs as dw^T = x-patches^T · dy where that wastes fewer tile elements: a filter
// of 64 output channels (ResNet's layer1) puts them in the 64 columns of the narrow tile instead
// of half of a 128-row tile; 256 of them stay dw = dy^T · x-patches.
TEST(CudaTiledPlan, FilterGradientOfFewOutputChannelsRunsTransposed) {
    const auto filter_launch = [](std::int64_t out_channels) {
        const detail::ConvGeometry g = detail::conv_geometry(
            "conv", Shape{32, 64, 56, 56}, Shape{out_channels, 64, 3, 3}, ConvParams(2).set_padding(1));
        return kernels::conv_tiled_plan(g, kernels::TiledConvPass::BackwardFilter, DType::Float32).launches.front();
    };
    const kernels::TiledGemmLaunch few = filter_launch(64);
    EXPECT_TRUE(few.transposed);
    EXPECT_EQ(few.m, 64 * 9);
    EXPECT_EQ(few.n, 64);
    EXPECT_EQ(few.tile_n, 64);
    const kernels::TiledGemmLaunch many = filter_launch(256);
    EXPECT_FALSE(many.transposed);
    EXPECT_EQ(many.m, 256);
    EXPECT_EQ(many.n, 64 * 9);
}

// The phase gather divides by multiply-shift (kernels/fast_division.h): exact for every dividend
// below 2^31, checked at the edges of every quotient for small divisors and at random dividends
// and the range's end for large ones.
TEST(FastDivisor, DividesEveryNonNegativeIntExactly) {
    CONVKIT_SEEDED_RNG(rng);
    constexpr int kMax = 0x7fffffff;
    std::uniform_int_distribution<int> any(0, kMax);
    std::vector<int> divisors;
    for (int d = 1; d <= 1100; ++d) divisors.push_back(d);
    for (int d : {4095, 4096, 4097, 65535, 65536, 65537, 1 << 30, (1 << 30) + 1, kMax - 1, kMax}) divisors.push_back(d);
    for (int i = 0; i < 200; ++i) divisors.push_back(any(rng) | 1);
    for (int d : divisors) {
        const kernels::FastDivisor fast(d);
        std::vector<int> dividends = {0, 1, d - 1, d, kMax, kMax - 1, kMax - kMax % d, kMax - kMax % d - 1};
        for (int q = 1; q < 64 && static_cast<std::int64_t>(q) * d <= kMax; ++q) {
            dividends.push_back(q * d - 1);
            dividends.push_back(q * d);
        }
        for (int i = 0; i < 64; ++i) dividends.push_back(any(rng));
        for (int n : dividends) {
            if (n < 0) continue;
            ASSERT_EQ(fast.divide(n), n / d) << n << " / " << d;
        }
    }
}

// Backward-filter reduces over the whole batch in slices added in a fixed order: the same bits
// every run (and a split does happen here: the variant asks for the slices' scratch).
TEST_F(CudaTiledConv, SplitReductionsAreBitIdenticalAcrossRuns) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_padding(1);
    const detail::ConvGeometry g = detail::conv_geometry("conv", Shape{4, 8, 16, 16}, Shape{8, 8, 3, 3}, params);
    ASSERT_GT(kernels::conv_tiled_workspace_bytes(g, kernels::TiledConvPass::BackwardFilter, DType::Float32), 0U);
    const testing::ConvPassInputs in{testing::random_tensor(g.input_shape(), rng),
                                     testing::random_tensor(g.weight_shape(), rng),
                                     testing::random_tensor(g.output_shape(), rng),
                                     testing::random_tensor(Shape{g.out_channels}, rng),
                                     testing::random_tensor(Shape{g.in_channels}, rng)};
    const detail::ConvVariant& tiled = testing::conv_variant_named("cuda.tiled");
    const testing::ConvPassResults first = testing::run_conv_passes(tiled, g, in, DType::Float32, Device::cuda());
    const testing::ConvPassResults second = testing::run_conv_passes(tiled, g, in, DType::Float32, Device::cuda());
    EXPECT_TRUE(testing::exactly_equal(first.dw, second.dw));
    EXPECT_TRUE(testing::exactly_equal(first.y, second.y));
    EXPECT_TRUE(testing::exactly_equal(first.dx, second.dx));
}

// A phase of strided backward-data splits its reduction too (few dx rows per phase, many dy
// channels): the same bits every run.
TEST_F(CudaTiledConv, SplitReductionsWithinAPhaseAreBitIdenticalAcrossRuns) {
    CONVKIT_SEEDED_RNG(rng);
    const detail::ConvGeometry g = detail::conv_transpose_geometry(
        "conv_transpose", Shape{1, 128, 4, 4}, Shape{128, 4, 4, 4}, ConvParams(2).set_stride(2).set_padding(1));
    const kernels::TiledConvPlan plan =
        kernels::conv_tiled_plan(g, kernels::TiledConvPass::BackwardData, DType::Float32);
    ASSERT_GT(plan.launches.front().splits, 1);
    ASSERT_TRUE(plan.launches.front().per_phase);
    const Tensor dy = testing::random_tensor(g.output_shape(), rng);
    const Tensor w = testing::random_tensor(g.weight_shape(), rng);
    const Tensor bias = testing::random_tensor(Shape{g.in_channels}, rng);
    const detail::ConvVariant& tiled = testing::conv_variant_named("cuda.tiled");
    const Tensor first = backward_data(tiled, g, dy, w, bias, DType::Float32, Device::cuda());
    const Tensor second = backward_data(tiled, g, dy, w, bias, DType::Float32, Device::cuda());
    EXPECT_TRUE(testing::exactly_equal(first, second));
    const Tensor expected =
        backward_data(testing::conv_variant_named("host.reference"), g, dy, w, bias, DType::Float64, Device::host());
    EXPECT_LT(testing::relative_error(first.to(DType::Float64), expected), testing::kCudaStrictFloat32Tolerance);
}

// The public op on float32 CUDA tensors runs cuda.tiled by default (the direct kernels would
// give other bits), and a reflect-padded convolution, which it refuses, still runs (direct).
TEST_F(CudaTiledConv, IsTheDefaultForStrictFloat32AndLeavesOtherPaddingToTheDirectKernels) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = testing::random_tensor(Shape{2, 8, 9, 9}, rng).to(DType::Float32);
    const Tensor w = testing::random_tensor(Shape{16, 8, 3, 3}, rng).to(DType::Float32);
    const ConvParams params = ConvParams(2).set_padding(1);
    const Tensor by_default = conv_forward(x.to(Device::cuda()), w.to(Device::cuda()), Tensor(), params);
    Tensor named;
    {
        const VariantGuard guard("cuda.tiled");
        named = conv_forward(x.to(Device::cuda()), w.to(Device::cuda()), Tensor(), params);
    }
    EXPECT_TRUE(testing::exactly_equal(by_default.to(Device::host()), named.to(Device::host())));
    const ConvParams reflect = ConvParams(2).set_padding(1).set_padding_mode(PaddingMode::Reflect);
    const Tensor reflected = conv_forward(x.to(Device::cuda()), w.to(Device::cuda()), Tensor(), reflect);
    EXPECT_LT(testing::relative_error(reflected.to(Device::host()).to(DType::Float64),
                                      conv_forward(x.to(DType::Float64), w.to(DType::Float64), Tensor(), reflect)),
              testing::kCudaStrictFloat32Tolerance);
}

// The public transposed convolution on float32 CUDA tensors (stride 2 with output_padding,
// groups, bias) runs cuda.tiled's per-phase GEMMs by default: the same bits as the named
// variant, and the float64 host result within the strict float32 tolerance.
TEST_F(CudaTiledConv, PublicTransposedConvolutionRunsThePhasesByDefault) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = testing::random_tensor(Shape{2, 6, 5, 7}, rng);
    const Tensor w = testing::random_tensor(Shape{6, 4, 4, 3}, rng);
    const Tensor b = testing::random_tensor(Shape{8}, rng);
    const ConvParams params = ConvParams(2).set_stride(2).set_padding({1, 0}).set_output_padding(1).set_groups(2);
    const auto on_cuda = [](const Tensor& t) { return t.to(DType::Float32).to(Device::cuda()); };
    const Tensor by_default = conv_transpose_forward(on_cuda(x), on_cuda(w), on_cuda(b), params).to(Device::host());
    Tensor named;
    {
        const VariantGuard guard("cuda.tiled");
        named = conv_transpose_forward(on_cuda(x), on_cuda(w), on_cuda(b), params).to(Device::host());
    }
    EXPECT_TRUE(testing::exactly_equal(by_default, named));
    EXPECT_LT(testing::relative_error(by_default.to(DType::Float64), conv_transpose_forward(x, w, b, params)),
              testing::kCudaStrictFloat32Tolerance);
}

}  // namespace
}  // namespace convkit
