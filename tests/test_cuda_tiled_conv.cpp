// The tiled implicit-GEMM convolution (cuda.tiled, kernels/conv_tiled.cu) on shapes that cross
// its tile edges (label gpu; a GPU or the emulated device): GEMMs of several 128 x 64 tiles with
// partial last tiles, reductions split over blocks (every backward-filter here, and forward and
// backward-data with few output tiles), groups, strides, dilation, asymmetric padding, 1-D to
// 3-D, float32 and float64, each pass against the float64 host reference. The variant sweep
// (test_variant_sweep_gpu) adds the kernel sweep's small geometries. A split reduction must give
// the same bits on every run, and it must be the CUDA backend's default for float32.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kernels/conv_tiled.h"
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

// M = batch x positions past 128 (several row tiles, the last partial), N past 64 where the
// emulator can afford it, and reductions long enough to split.
std::vector<TiledCase> tiled_cases() {
    const std::int64_t wide = testing::gpu_or_emulated(160, 72);
    return {
        {"conv2d 3x3 two row tiles", ConvParams(2).set_padding(1), Shape{2, 8, 9, 11}, Shape{wide, 8, 3, 3}},
        {"conv2d strided dilated asymmetric", ConvParams(2).set_stride({2, 1}).set_dilation({1, 2}).set_padding({2, 1}),
         Shape{3, 6, 13, 10}, Shape{12, 6, 3, 2}},
        {"conv2d same even kernel", ConvParams(2).set_same_padding(), Shape{1, 5, 12, 12}, Shape{7, 5, 4, 4}},
        {"conv2d groups", ConvParams(2).set_groups(3).set_padding(1), Shape{2, 12, 7, 9}, Shape{9, 4, 3, 3}},
        {"conv1d long", ConvParams(1).set_padding(2).set_stride(2), Shape{2, 6, testing::gpu_or_emulated(2000, 301)},
         Shape{10, 6, 5}},
        {"conv3d", ConvParams(3).set_padding(1).set_stride({1, 2, 1}), Shape{1, 4, 5, 7, 6}, Shape{6, 4, 3, 3, 3}},
        {"conv2d 1x1 deep", ConvParams(2), Shape{1, testing::gpu_or_emulated(512, 96), 3, 3}, Shape{16, testing::gpu_or_emulated(512, 96), 1, 1}},
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

}  // namespace
}  // namespace convkit
