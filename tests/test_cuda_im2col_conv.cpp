// The unfolding convolution variant cuda.im2col (src/backends/cuda/conv_im2col_variant.cpp,
// kernels/conv_im2col.cu) on a CUDA device, a GPU or the emulated one (label gpu): every pass
// of 1-D to 3-D convolutions and transposed convolutions (strides, dilations, groups, depthwise,
// batch 1, odd channel counts, every padding mode, asymmetric padding, output_padding) in
// bfloat16, float16, float32 strict and tf32, and float64, both activation layouts, outputs
// NaN-poisoned, each against the float64 host reference by relative error. Blocks of images:
// a budget of one image per block must give the same result as one block, bit for bit
// across runs. The inverse tap enumeration col2im gathers with is checked against brute force.
// The public ops: named, with bias, epilogue and autograd; and the CUDA backend's default for
// 16-bit problems the tensor cores refuse.
#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend_api/selection.h"
#include "backends/cuda/conv_im2col_budget.h"
#include "convkit/autograd.h"
#include "convkit/ops/activation.h"
#include "convkit/ops/conv.h"
#include "convkit/ops/reduce.h"
#include "kernel_sweeps.h"
#include "test_util.h"
#include "tolerances.h"
#include "variant_runner.h"

namespace convkit {
namespace {

using testing::ConvCase;

detail::ConvGeometry geometry_of(const ConvCase& c) {
    const std::string op = conv_op_name(c.params.spatial_rank, c.transposed);
    return c.transposed ? detail::conv_transpose_geometry(op, c.input, c.weight, c.params)
                        : detail::conv_geometry(op, c.input, c.weight, c.params);
}

// 1-D to 3-D, strides 2-3, dilation 2, groups 2-3, depthwise, 1x1, batch 1, odd channel counts,
// every padding mode, 'same' with an even kernel, transposed with output_padding.
std::vector<ConvCase> im2col_cases() {
    using PM = PaddingMode;
    using testing::conv;
    using testing::transposed;
    return {
        conv(ConvParams(1).set_stride(2).set_padding(1), Shape{2, 3, 13}, Shape{5, 3, 3}),
        conv(ConvParams(1).set_dilation(2).set_padding(2).set_padding_mode(PM::Reflect),
             Shape{2, 4, 9}, Shape{3, 4, 3}),
        conv(ConvParams(1).set_stride(3).set_padding(3).set_padding_mode(PM::Circular),
             Shape{1, 2, 10}, Shape{4, 2, 4}),
        conv(ConvParams(2).set_padding(1), Shape{1, 3, 7, 6}, Shape{5, 3, 3, 3}),
        conv(ConvParams(2).set_stride({2, 1}).set_dilation({1, 2}).set_padding({2, 1}), Shape{2, 5, 9, 8},
             Shape{6, 5, 3, 2}),
        conv(ConvParams(2).set_groups(3).set_padding(1).set_padding_mode(PM::Circular),
             Shape{2, 6, 5, 7}, Shape{9, 2, 3, 3}),
        conv(ConvParams(2).set_same_padding().set_padding_mode(PM::Replicate), Shape{1, 3, 6, 6}, Shape{4, 3, 4, 4}),
        conv(ConvParams(2).set_stride(2).set_padding(2).set_padding_mode(PM::Reflect),
             Shape{2, 2, 7, 9}, Shape{3, 2, 3, 3}),
        conv(ConvParams(2).set_groups(4).set_padding(1).set_stride(2), Shape{2, 4, 7, 7},
             Shape{4, 1, 3, 3}),
        conv(ConvParams(2), Shape{2, 7, 4, 5}, Shape{6, 7, 1, 1}),
        conv(ConvParams(3).set_padding(1).set_stride({1, 2, 1}).set_groups(2), Shape{1, 4, 4, 5, 4},
             Shape{6, 2, 3, 3, 3}),
        conv(ConvParams(3).set_padding({1, 2, 0}).set_dilation({1, 2, 1}).set_padding_mode(PM::Replicate),
             Shape{2, 2, 3, 6, 4}, Shape{3, 2, 2, 3, 2}),
        transposed(ConvParams(2).set_stride(2).set_padding(1).set_output_padding(1).set_groups(2), Shape{2, 4, 4, 3},
             Shape{4, 3, 4, 4}),
        transposed(ConvParams(1).set_stride(3).set_dilation(3).set_padding(1).set_output_padding(2),
             Shape{1, 3, 5}, Shape{3, 2, 3}),
        transposed(ConvParams(3).set_stride(2), Shape{1, 2, 2, 3, 2}, Shape{2, 3, 2, 2, 2}),
    };
}

struct DtypeMode {
    DType dtype;
    MathMode math;
    double tolerance;
    const char* label;
};

// float32 strict at the strict tolerance; under AllowTF32 a GPU's cuBLAS may round the operands
// to tf32 (the emulated device's kernel multiplies exactly either way).
const std::vector<DtypeMode>& dtype_modes() {
    static const std::vector<DtypeMode> modes = {
        {DType::BFloat16, MathMode::Strict, testing::kBfloat16VsFloat64Tolerance, "bfloat16"},
        {DType::Float16, MathMode::Strict, testing::kFloat16VsFloat64Tolerance, "float16"},
        {DType::Float32, MathMode::Strict, testing::kCudaStrictFloat32Tolerance, "float32 strict"},
        {DType::Float32, MathMode::AllowTF32, testing::kTf32Tolerance, "float32 tf32"},
        {DType::Float64, MathMode::Strict, testing::kFloat64Tolerance, "float64"},
    };
    return modes;
}

// Every pass of the case against the float64 reference on inputs exact in `dtype`.
void expect_every_pass_matches(const ConvCase& c, const DtypeMode& mode, MemoryFormat layout,
                               std::mt19937_64& rng) {
    SCOPED_TRACE(std::string(mode.label) + " " + memory_format_name(layout));
    const detail::ConvGeometry g = geometry_of(c);
    const DType exact_in = mode.dtype == DType::Float64 ? DType::Float32 : mode.dtype;
    const testing::ConvPassInputs in = testing::random_pass_inputs(g, exact_in, rng);
    const testing::ConvPassResults expected =
        testing::run_conv_passes(testing::conv_variant_named("host.reference"), g, in, DType::Float64);
    const testing::MathModeGuard math(mode.math);
    const testing::ConvPassResults got = testing::run_conv_passes(testing::conv_variant_named("cuda.im2col"), g, in,
                                                                  mode.dtype, Device::cuda(), layout);
    ASSERT_TRUE(got.y.defined() && got.dx.defined() && got.dw.defined() && got.db.defined());
    // Each element against the sum of its terms' magnitudes: the transposed 3-D case's bias
    // gradient (over dy, its input) is two sums of 12 random terms, which both cancel to near zero
    // often enough that float32's rounding left no relative accuracy by the norm (seed
    // 7074829158760995853: float32 strict contiguous, 1.7e-5).
    testing::expect_conv_passes_close(got, expected, testing::conv_pass_magnitudes(g, in), mode.tolerance);
}

class CudaIm2colSweep : public testing::WithCuda<::testing::TestWithParam<ConvCase>> {};

TEST_P(CudaIm2colSweep, EveryPassMatchesTheFloat64Reference) {
    CONVKIT_SEEDED_RNG(rng);
    for (const DtypeMode& mode : dtype_modes()) {
        for (MemoryFormat layout : {MemoryFormat::ChannelsLast, MemoryFormat::Contiguous}) {
            expect_every_pass_matches(GetParam(), mode, layout, rng);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Geometries, CudaIm2colSweep, ::testing::ValuesIn(im2col_cases()),
                         [](const ::testing::TestParamInfo<ConvCase>& info) { return info.param.name(); });

// Sets cuda.im2col's column budget for a scope.
class ColumnBudget {
public:
    explicit ColumnBudget(std::size_t bytes) { detail::set_im2col_column_budget(bytes); }
    ~ColumnBudget() { detail::set_im2col_column_budget(0); }
    ColumnBudget(const ColumnBudget&) = delete;
    ColumnBudget& operator=(const ColumnBudget&) = delete;
};

class CudaIm2colConv : public testing::WithCuda<> {};

// A budget below one image's columns runs every image as a block of its own (the block offsets
// of im2col, the products and col2im; backward-filter summing over blocks); two images' worth
// runs blocks of two and a last one of one. Each matches the reference, and every run gives the
// same bits as the last.
TEST_F(CudaIm2colConv, BlocksOfImagesMatchTheReferenceAndRepeatBitForBit) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvCase c = testing::conv(ConvParams(2).set_padding(1).set_stride({1, 2}).set_groups(2), Shape{5, 4, 6, 7},
                                     Shape{6, 2, 3, 3});
    const detail::ConvGeometry g = geometry_of(c);
    const std::size_t image_columns_bf16 =
        static_cast<std::size_t>(g.output_spatial() * g.in_channels * g.kernel_spatial()) * 2;
    for (DType dtype : {DType::BFloat16, DType::Float32}) {
        for (MemoryFormat layout : {MemoryFormat::ChannelsLast, MemoryFormat::Contiguous}) {
            SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + memory_format_name(layout));
            const testing::ConvPassInputs in = testing::random_pass_inputs(g, dtype, rng);
            const testing::ConvPassResults expected =
                testing::run_conv_passes(testing::conv_variant_named("host.reference"), g, in, DType::Float64);
            const auto run = [&] {
                return testing::run_conv_passes(testing::conv_variant_named("cuda.im2col"), g, in, dtype,
                                                Device::cuda(), layout);
            };
            const double tol =
                dtype == DType::BFloat16 ? testing::kBfloat16VsFloat64Tolerance : testing::kCudaStrictFloat32Tolerance;
            for (std::size_t budget : {std::size_t{1}, 2 * image_columns_bf16 * (dtype == DType::Float32 ? 2 : 1)}) {
                SCOPED_TRACE("budget " + std::to_string(budget));
                const ColumnBudget small(budget);
                const testing::ConvPassResults first = run();
                testing::expect_conv_passes_close(first, expected, tol);
                const testing::ConvPassResults second = run();
                EXPECT_TRUE(testing::exactly_equal(first.dw, second.dw));
                EXPECT_TRUE(testing::exactly_equal(first.dx, second.dx));
                EXPECT_TRUE(testing::exactly_equal(first.y, second.y));
            }
        }
    }
}

// Small integers: every product and sum is exact in float32, so the forward and both gradients
// equal the reference bit for bit (an index error cannot hide in a tolerance).
TEST_F(CudaIm2colConv, SmallIntegersGiveTheReferenceExactly) {
    for (const ConvCase& c : im2col_cases()) {
        SCOPED_TRACE(c.name());
        const detail::ConvGeometry g = geometry_of(c);
        const testing::ConvPassInputs in{testing::small_integer_tensor(g.input_shape(), 1),
                                         testing::small_integer_tensor(g.weight_shape(), 2),
                                         testing::small_integer_tensor(g.output_shape(), 3),
                                         testing::small_integer_tensor(Shape{g.out_channels}, 4),
                                         testing::small_integer_tensor(Shape{g.in_channels}, 5)};
        const testing::ConvPassResults expected =
            testing::run_conv_passes(testing::conv_variant_named("host.reference"), g, in, DType::Float64);
        const testing::ConvPassResults got = testing::run_conv_passes(
            testing::conv_variant_named("cuda.im2col"), g, in, DType::Float32, Device::cuda(), MemoryFormat::ChannelsLast);
        EXPECT_TRUE(testing::exactly_equal(got.y.to(DType::Float64), expected.y)) << "forward";
        EXPECT_TRUE(testing::exactly_equal(got.dx.to(DType::Float64), expected.dx)) << "backward data";
        EXPECT_TRUE(testing::exactly_equal(got.dw.to(DType::Float64), expected.dw)) << "backward filter";
    }
}

// The public ops with the variant named: a bfloat16 channels-last convolution with bias and the
// unfused epilogue (residual, ReLU), and the gradients autograd takes through it (residual only:
// a ReLU's mask may differ where bfloat16 rounds a value near zero across it), against the same
// ops on float64 host tensors; a transposed convolution's forward (its backward-data).
TEST_F(CudaIm2colConv, PublicOpsAndAutogradRunOnTheNamedVariant) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_padding(1).set_stride(2).set_groups(3);
    const Tensor x = testing::random_exact_in(DType::BFloat16, Shape{2, 6, 7, 6}, rng);
    const Tensor w = testing::random_exact_in(DType::BFloat16, Shape{9, 2, 3, 3}, rng);
    const Tensor b = testing::random_exact_in(DType::BFloat16, Shape{9}, rng);
    const Tensor residual = testing::random_exact_in(DType::BFloat16, Shape{2, 9, 4, 3}, rng);
    const auto on_cuda = [](const Tensor& t, bool grad) {
        Tensor c = t.to(DType::BFloat16).to(Device::cuda()).to(MemoryFormat::ChannelsLast).detach();
        c.set_requires_grad(grad);
        return c;
    };
    const auto on_host = [](const Tensor& t) {
        Tensor h = t.detach();
        h.set_requires_grad(true);
        return h;
    };
    const Tensor xh = on_host(x), wh = on_host(w), bh = on_host(b);
    const Tensor expected = conv_forward(xh, wh, bh, params, {residual, false});
    sum(expected).backward();
    const auto weight_on_cuda = [](const Tensor& t) {
        Tensor c = t.to(DType::BFloat16).to(Device::cuda()).detach();
        c.set_requires_grad(true);
        return c;
    };
    const Tensor xc = on_cuda(x, true), wc = weight_on_cuda(w), bc = weight_on_cuda(b);
    Tensor got, rectified;
    {
        const VariantGuard guard("cuda.im2col");
        got = conv_forward(xc, wc, bc, params, {on_cuda(residual, false), false});
        sum(got).backward();
        rectified = conv_forward(xc, wc, bc, params, {on_cuda(residual, false), true});
    }
    const auto back = [](const Tensor& t) { return t.to(Device::host()).to(DType::Float64).contiguous(); };
    EXPECT_LT(testing::relative_error(back(got), expected), testing::kBfloat16VsFloat64Tolerance);
    EXPECT_LT(testing::relative_error(back(rectified), relu(expected)), testing::kBfloat16VsFloat64Tolerance);
    EXPECT_LT(testing::relative_error(back(xc.grad()), xh.grad()), testing::kBfloat16VsFloat64Tolerance);
    EXPECT_LT(testing::relative_error(back(wc.grad()), wh.grad()), testing::kBfloat16VsFloat64Tolerance);
    EXPECT_LT(testing::relative_error(back(bc.grad()), bh.grad()), testing::kBfloat16VsFloat64Tolerance);

    const ConvParams up = ConvParams(2).set_stride(2).set_output_padding(1);
    const Tensor tw = testing::random_exact_in(DType::BFloat16, Shape{6, 4, 3, 3}, rng);
    Tensor transposed;
    {
        const VariantGuard guard("cuda.im2col");
        transposed = conv_transpose_forward(on_cuda(x, false), tw.to(DType::BFloat16).to(Device::cuda()), up);
    }
    EXPECT_LT(testing::relative_error(back(transposed), conv_transpose_forward(x, tw, up)),
              testing::kBfloat16VsFloat64Tolerance);
}

// A bfloat16 convolution the tensor cores refuse (6 output channels, not a multiple of 8; reflect
// padding) runs natively on cuda.im2col by default, not widened to float32: the same bits as the
// named variant.
TEST_F(CudaIm2colConv, IsTheDefaultForSixteenBitProblemsTheTensorCoresRefuse) {
    CONVKIT_SEEDED_RNG(rng);
    for (const ConvParams& params : {ConvParams(2).set_padding(1),
                                     ConvParams(2).set_padding(1).set_padding_mode(PaddingMode::Reflect)}) {
        SCOPED_TRACE(params.to_string());
        const Tensor x = testing::random_exact_in(DType::BFloat16, Shape{2, 3, 6, 5}, rng)
                             .to(DType::BFloat16)
                             .to(Device::cuda())
                             .to(MemoryFormat::ChannelsLast);
        const Tensor w =
            testing::random_exact_in(DType::BFloat16, Shape{6, 3, 3, 3}, rng).to(DType::BFloat16).to(Device::cuda());
        const Tensor by_default = conv_forward(x, w, params).to(Device::host());
        Tensor named;
        {
            const VariantGuard guard("cuda.im2col");
            named = conv_forward(x, w, params).to(Device::host());
        }
        EXPECT_TRUE(testing::exactly_equal(by_default, named));
    }
}

// The default policy's choice, pass by pass: cuda.im2col only where no variant of the CUDA
// backend's own list runs the problem in either layout. A 16-bit problem the tensor cores refuse
// (6 output channels; reflect padding) runs on it in its own layout; one they run only
// channels-last (8 channels, or 3 padded to 8) is not run contiguous (the op converts it to
// channels-last for cuda.igemm); float32 problems keep their variants (channels-last float32 is
// converted for cuda.tiled, as before).
TEST_F(CudaIm2colConv, TheDefaultFallsBackOnItOnlyWhereNoOtherVariantRunsEitherLayout) {
    const BackendGuard cuda(Backend::Cuda);
    const VariantGuard nothing_named;
    set_conv_variant("");
    set_variant_selection(VariantSelection::Default);
    const auto problem = [](const Shape& x, const Shape& w, const ConvParams& params, DType dtype, MemoryFormat layout) {
        detail::ConvProblem p = detail::conv_problem(detail::conv_geometry("conv2d", x, w, params), dtype, Device::cuda());
        p.x_layout = p.y_layout = layout;
        p.bias_grad = {p.geometry.batch, p.geometry.out_channels, p.geometry.output_spatial()};
        return p;
    };
    const auto chosen = [](const detail::ConvProblem& p, ConvPass pass) {
        return std::string(detail::choose_variant("conv2d", p, pass).variant->name());
    };
    const ConvParams zeros = ConvParams(2).set_padding(1);
    const ConvParams reflect = ConvParams(2).set_padding(1).set_padding_mode(PaddingMode::Reflect);
    for (DType dtype : {DType::BFloat16, DType::Float16}) {
        for (MemoryFormat layout : {MemoryFormat::ChannelsLast, MemoryFormat::Contiguous}) {
            for (const ConvParams& params : {zeros, reflect}) {
                SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + memory_format_name(layout) + " " +
                             params.to_string());
                const detail::ConvProblem refused =
                    problem(Shape{2, 3, 6, 5}, Shape{6, 3, 3, 3}, params, dtype, layout);
                for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter}) {
                    EXPECT_TRUE(detail::policy_supports(refused, pass));
                    EXPECT_EQ(chosen(refused, pass), "cuda.im2col") << conv_pass_name(pass);
                }
                // cuda.igemm's bias gradient takes any channels-last 16-bit dy, so a recorded
                // contiguous call is converted to channels-last.
                EXPECT_EQ(detail::policy_supports(refused, ConvPass::BackwardBias),
                          layout == MemoryFormat::ChannelsLast);
            }
            for (const Shape& x : {Shape{2, 8, 6, 5}, Shape{2, 3, 6, 5}}) {
                const detail::ConvProblem tensor_core = problem(x, Shape{8, x[1], 3, 3}, zeros, dtype, layout);
                EXPECT_EQ(detail::policy_supports(tensor_core, ConvPass::Forward),
                          layout == MemoryFormat::ChannelsLast);
                if (layout == MemoryFormat::ChannelsLast) {
                    for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter}) {
                        EXPECT_EQ(chosen(tensor_core, pass), "cuda.igemm") << x.to_string() << conv_pass_name(pass);
                    }
                }
            }
        }
    }
    const detail::ConvProblem float32_channels_last =
        problem(Shape{2, 3, 6, 5}, Shape{8, 3, 3, 3}, zeros, DType::Float32, MemoryFormat::ChannelsLast);
    EXPECT_FALSE(detail::policy_supports(float32_channels_last, ConvPass::Forward));
    const detail::ConvProblem float32_reflect =
        problem(Shape{2, 3, 6, 5}, Shape{8, 3, 3, 3}, reflect, DType::Float32, MemoryFormat::Contiguous);
    EXPECT_EQ(chosen(float32_reflect, ConvPass::Forward), "cuda.direct");
}

// A convolution that is one matrix product (a fully connected layer as a 4x4 convolution; DCGAN's
// first layer, 1x1 -> 4x4 transposed) runs on cuda.im2col by default, its three GEMM passes, in
// each dtype and layout, with no column matrix for a contiguous forward (x is read in place, one
// product for the batch); the bias gradient stays with the list's channel sums (the same bits in
// either layout); the public transposed op there matches float64 on the host.
TEST_F(CudaIm2colConv, TheDefaultRunsMatrixProductsOnIt) {
    CONVKIT_SEEDED_RNG(rng);
    const BackendGuard cuda(Backend::Cuda);
    const VariantGuard nothing_named;
    set_conv_variant("");
    set_variant_selection(VariantSelection::Default);
    const detail::ConvGeometry fully_connected =
        detail::conv_geometry("conv2d", Shape{3, 5, 4, 4}, Shape{7, 5, 4, 4}, ConvParams(2));
    const detail::ConvGeometry dcgan =
        detail::conv_transpose_geometry("conv_transpose2d", Shape{3, 16, 1, 1}, Shape{16, 8, 4, 4}, ConvParams(2));
    for (const detail::ConvGeometry* g : {&fully_connected, &dcgan}) {
        for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16}) {
            for (MemoryFormat layout : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
                SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + memory_format_name(layout));
                detail::ConvProblem p = detail::conv_problem(*g, dtype, Device::cuda());
                p.x_layout = p.y_layout = layout;
                p.bias_grad = {g->batch, g->out_channels, g->output_spatial()};
                for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter}) {
                    EXPECT_STREQ(detail::choose_variant("conv2d", p, pass).variant->name(), "cuda.im2col")
                        << conv_pass_name(pass);
                }
                if (detail::policy_supports(p, ConvPass::BackwardBias)) {
                    EXPECT_STRNE(detail::choose_variant("conv2d", p, ConvPass::BackwardBias).variant->name(),
                                 "cuda.im2col");
                }
                if (layout == MemoryFormat::Contiguous) {
                    EXPECT_EQ(testing::conv_variant_named("cuda.im2col").workspace(p, ConvPass::Forward), 0u);
                }
            }
        }
    }
    const Tensor x = testing::random_exact_in(DType::Float32, Shape{3, 16, 1, 1}, rng),
                 w = testing::random_exact_in(DType::Float32, Shape{16, 8, 4, 4}, rng);
    const Tensor expected = conv_transpose_forward(x.to(DType::Float64), w.to(DType::Float64), ConvParams(2));
    const Tensor got = conv_transpose_forward(x.to(Device::cuda()), w.to(Device::cuda()), ConvParams(2));
    EXPECT_LT(testing::relative_error(got.to(Device::host()).to(DType::Float64), expected),
              testing::kCudaStrictFloat32Tolerance);
}

// for_each_tap_reading, the inverse col2im gathers with, enumerates exactly the (output, tap)
// pairs whose conv_tap_source is the input position, each once, over every padding mode,
// stride, dilation and padding the geometry allows on a dim of 7.
TEST(ConvTapInverse, EnumeratesExactlyThePairsThatReadEachPosition) {
    int checked = 0;
    for (PaddingMode mode : {PaddingMode::Zeros, PaddingMode::Reflect, PaddingMode::Replicate, PaddingMode::Circular}) {
        for (std::int64_t kernel = 1; kernel <= 4; ++kernel) {
            for (std::int64_t stride = 1; stride <= 3; ++stride) {
                for (std::int64_t dilation = 1; dilation <= 2; ++dilation) {
                    for (std::int64_t pad = 0; pad <= 3; ++pad) {
                        ConvParams params(1);
                        params.set_stride(stride).set_dilation(dilation).set_padding(pad).set_padding_mode(mode);
                        detail::ConvGeometry g;
                        try {
                            g = detail::conv_geometry("conv", Shape{1, 1, 7}, Shape{1, 1, kernel}, params);
                        } catch (const InvalidArgument&) {
                            continue;  // a padding this mode does not allow on 7 elements
                        }
                        for (std::int64_t i = 0; i < g.input[2]; ++i) {
                            std::map<std::pair<std::int64_t, std::int64_t>, int> found, expected;
                            detail::for_each_tap_reading(g, 2, i, [&](std::int64_t o, std::int64_t k) { ++found[{o, k}]; });
                            for (std::int64_t o = 0; o < g.output[2]; ++o) {
                                for (std::int64_t k = 0; k < g.kernel[2]; ++k) {
                                    if (detail::conv_tap_source(g, 2, o, k) == i) ++expected[{o, k}];
                                }
                            }
                            ASSERT_EQ(found, expected) << params.to_string() << " input " << i;
                            ++checked;
                        }
                    }
                }
            }
        }
    }
    EXPECT_GT(checked, 1000);
}

}  // namespace
}  // namespace convkit
