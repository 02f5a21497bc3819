// The warpgroup-MMA convolution variant cuda.wgmma (src/backends/cuda/conv_wgmma_variant.cpp,
// kernels/conv_wgmma.cu, sm_90a) through the registry and the public ops on a CUDA device (label
// gpu): an H100/H200, or the emulated device, which reports compute capability 9.0. It is not the
// default policy's choice for any pass; named, the public forward runs on it with bias and the
// fused residual and ReLU, backward-data (sub-pixel per phase of the stride, with the weight
// kernels::backward_data_conv_weight makes: that kernel against a host loop) with its transposed
// convolution's bias and epilogue, and backward-filter (kernels/conv_wgmma_filter.cu: both
// orientations, split-K), against the same ops on float64 host tensors; the passes and
// problems it does not run are refused when named, each with its reason (float32 under strict math,
// contiguous activations, channels off the 16-byte vector, other padding modes). Float32 tensors
// run as tf32 where the math mode allows it. Elsewhere
// (no device of compute capability 9.0) the tests that run it skip. The kernel itself:
// tests/emu/test_emu_wgmma.cpp; the sweep of every variant: test_variant_sweep.cpp.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "backend_api/selection.h"
#include "backends/cuda/igemm_variant_support.h"
#include "convkit/ops/activation.h"
#include "convkit/ops/conv.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_wgmma.h"
#include "kernels/tensor_fill.h"
#include "test_util.h"
#include "tolerances.h"
#include "variant_runner.h"

namespace convkit {
namespace {

class CudaWgmmaConv : public testing::WithCuda<> {
protected:
    void SetUp() override {
        testing::WithCuda<>::SetUp();
        if (IsSkipped()) return;
        if (detail::cuda_compute_capability(0) != 90) GTEST_SKIP() << "cuda.wgmma runs on compute capability 9.0 only";
    }
};

detail::ConvProblem problem_of(const Shape& x, const Shape& w, const ConvParams& params, DType dtype,
                               MemoryFormat layout) {
    detail::ConvProblem p = detail::conv_problem(detail::conv_geometry("conv2d", x, w, params), dtype, Device::cuda());
    p.x_layout = p.y_layout = layout;
    p.bias_grad = {p.geometry.batch, p.geometry.out_channels, p.geometry.output_spatial()};
    return p;
}

std::string reason_of(const detail::ConvProblem& p, ConvPass pass) {
    std::string reason;
    const bool supported = testing::conv_variant_named("cuda.wgmma").supports(p, pass, &reason);
    return supported ? std::string() : reason;
}

// The default policy keeps cuda.igemm for the channels-last problems both run (16-bit, and
// float32 as tf32), pass by pass.
TEST_F(CudaWgmmaConv, IsNotTheDefaultChoice) {
    const BackendGuard cuda(Backend::Cuda);
    const VariantGuard nothing_named;
    set_conv_variant("");
    set_variant_selection(VariantSelection::Default);
    for (DType dtype : {DType::BFloat16, DType::Float16, DType::Float32}) {
        detail::ConvProblem p = problem_of(Shape{2, 64, 14, 14}, Shape{128, 64, 3, 3}, ConvParams(2).set_padding(1),
                                           dtype, MemoryFormat::ChannelsLast);
        p.math = MathMode::AllowTF32;
        EXPECT_EQ(reason_of(p, ConvPass::Forward), "");
        for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter}) {
            EXPECT_EQ(std::string(detail::choose_variant("conv2d", p, pass).variant->name()), "cuda.igemm")
                << dtype_name(dtype) << " " << conv_pass_name(pass);
        }
    }
}

// relu(conv(x, w) + b + residual) on cuda.wgmma in bf16 (channels-last activations), back on the
// host in float64, and the float64 host op's result.
struct ForwardResult {
    Tensor got, expected;
};
ForwardResult named_bf16_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& residual,
                                 const ConvParams& params) {
    const auto on_cuda = [](const Tensor& t) {
        return t.to(DType::BFloat16).to(Device::cuda()).to(MemoryFormat::ChannelsLast);
    };
    const VariantGuard guard("cuda.wgmma");
    const Tensor got = conv_forward(on_cuda(x), w.to(DType::BFloat16).to(Device::cuda()),
                                    b.to(DType::BFloat16).to(Device::cuda()), params, {on_cuda(residual), true});
    return {got.to(Device::host()).to(DType::Float64).contiguous(),
            relu(conv_forward(x, w, b, params, {residual, false}))};
}

// Named: the public forward with bias, residual and ReLU (fused by the variant) against the
// float64 host op; the backward passes it does not implement are refused with the reason.
TEST_F(CudaWgmmaConv, NamedForwardMatchesTheReferenceAndBackwardBiasIsRefused) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_padding(1).set_stride(2).set_groups(2);
    const Tensor x = testing::random_exact_in(DType::BFloat16, Shape{2, 32, 9, 8}, rng);
    const Tensor w = testing::random_exact_in(DType::BFloat16, Shape{144, 16, 3, 3}, rng);
    const Tensor b = testing::random_exact_in(DType::BFloat16, Shape{144}, rng);
    const Tensor residual = testing::random_exact_in(DType::BFloat16, Shape{2, 144, 5, 4}, rng);
    const ForwardResult forward = named_bf16_forward(x, w, b, residual, params);
    EXPECT_LT(testing::relative_error(forward.got, forward.expected), testing::kBfloat16VsFloat64Tolerance);

    // Float32 tensors under AllowTF32: the same forward on the tf32 kernel (float32 values, which
    // it rounds to tf32's 11 significant bits).
    {
        const Tensor x32 = testing::random_exact_in(DType::Float32, x.shape(), rng);
        const Tensor w32 = testing::random_exact_in(DType::Float32, w.shape(), rng);
        const Tensor expected32 = relu(conv_forward(x32, w32, b, params, {residual, false}));
        const testing::MathModeGuard tf32(MathMode::AllowTF32);
        const VariantGuard guard("cuda.wgmma");
        const auto channels_last = [](const Tensor& t) {
            return t.to(DType::Float32).to(Device::cuda()).to(MemoryFormat::ChannelsLast);
        };
        const Tensor got32 =
            conv_forward(channels_last(x32), w32.to(DType::Float32).to(Device::cuda()),
                         b.to(DType::Float32).to(Device::cuda()), params, {channels_last(residual), true});
        EXPECT_LT(testing::relative_error(got32.to(Device::host()).to(DType::Float64).contiguous(), expected32),
                  testing::kTf32Tolerance);
    }

    const detail::ConvProblem p = problem_of(x.shape(), w.shape(), params, DType::BFloat16, MemoryFormat::ChannelsLast);
    EXPECT_NE(reason_of(p, ConvPass::BackwardBias).find("does not implement it"), std::string::npos)
        << reason_of(p, ConvPass::BackwardBias);
    EXPECT_EQ(reason_of(p, ConvPass::BackwardFilter), "");
    // This convolution has stride 2: its backward-data runs per phase.
    EXPECT_EQ(reason_of(p, ConvPass::BackwardData), "");
}

// A forward whose k tiles the default plan splits (9 taps x 128 channels = 18 on one block: 2
// ways), with every epilogue option: the slices' adder runs it.
TEST_F(CudaWgmmaConv, NamedSplitForwardMatchesTheReference) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_padding(1);
    const Tensor x = testing::random_exact_in(DType::BFloat16, Shape{1, 128, 4, 4}, rng);
    const Tensor w = testing::random_exact_in(DType::BFloat16, Shape{24, 128, 3, 3}, rng);
    const Tensor b = testing::random_exact_in(DType::BFloat16, Shape{24}, rng);
    const Tensor residual = testing::random_exact_in(DType::BFloat16, Shape{1, 24, 4, 4}, rng);
    const detail::ConvProblem p = problem_of(x.shape(), w.shape(), params, DType::BFloat16, MemoryFormat::ChannelsLast);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(detail::igemm_shape(p.geometry), kernels::IgemmOperand::BFloat16)
                  .launches.at(0)
                  .splits,
              2);
    const ForwardResult forward = named_bf16_forward(x, w, b, residual, params);
    EXPECT_LT(testing::relative_error(forward.got, forward.expected), testing::kBfloat16VsFloat64Tolerance);
}

// cuda.wgmma.producer (the same kernels with a producer warpgroup handing the stages over on
// mbarriers): the forward (split by default, every epilogue option), backward-data (strided,
// uniform phases) and backward-filter (64 input channels: both operands by bulk copies, dy's boxes
// and x's im2col walk of a strided 4x4) through the public ops against the float64 host ops.
TEST_F(CudaWgmmaConv, ProducerVariantRunsEveryPass) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_padding(1).set_stride(2);
    const Tensor x = testing::random_exact_in(DType::BFloat16, Shape{2, 64, 8, 8}, rng);
    const Tensor w = testing::random_exact_in(DType::BFloat16, Shape{72, 64, 4, 4}, rng);
    const Tensor b = testing::random_exact_in(DType::BFloat16, Shape{72}, rng);
    const Tensor residual = testing::random_exact_in(DType::BFloat16, Shape{2, 72, 4, 4}, rng);
    const Tensor dy = testing::random_exact_in(DType::BFloat16, Shape{2, 72, 4, 4}, rng);
    const auto on_cuda = [](const Tensor& t) {
        return t.to(DType::BFloat16).to(Device::cuda()).to(MemoryFormat::ChannelsLast);
    };
    const auto back = [](const Tensor& t) { return t.to(Device::host()).to(DType::Float64).contiguous(); };
    Tensor y, dx, dw;
    {
        const VariantGuard guard("cuda.wgmma.producer");
        y = conv_forward(on_cuda(x), w.to(DType::BFloat16).to(Device::cuda()), b.to(DType::BFloat16).to(Device::cuda()),
                         params, {on_cuda(residual), true});
        dx = conv_backward_data(on_cuda(dy), w.to(DType::BFloat16).to(Device::cuda()), x.shape(), params);
        dw = conv_backward_filter(on_cuda(dy), on_cuda(x), w.shape(), params);
    }
    EXPECT_LT(testing::relative_error(back(y), relu(conv_forward(x, w, b, params, {residual, false}))),
              testing::kBfloat16VsFloat64Tolerance);
    EXPECT_LT(testing::relative_error(back(dx), conv_backward_data(dy, w, x.shape(), params)),
              testing::kBfloat16VsFloat64Tolerance);
    EXPECT_LT(testing::relative_error(back(dw), conv_backward_filter(dy, x, w.shape(), params)),
              testing::kBfloat16VsFloat64Tolerance);
    // Its backward-filter takes 64-channel groups only (both operands by bulk copies): 32 refused,
    // with the reason.
    std::string reason;
    const detail::ConvProblem p = problem_of(x.shape(), w.shape(), params, DType::BFloat16, MemoryFormat::ChannelsLast);
    EXPECT_TRUE(testing::conv_variant_named("cuda.wgmma.producer").supports(p, ConvPass::BackwardFilter, &reason))
        << reason;
    const detail::ConvProblem narrow =
        problem_of(Shape{2, 32, 8, 8}, Shape{72, 32, 4, 4}, params, DType::BFloat16, MemoryFormat::ChannelsLast);
    EXPECT_FALSE(
        testing::conv_variant_named("cuda.wgmma.producer").supports(narrow, ConvPass::BackwardFilter, &reason));
    EXPECT_NE(reason.find("whole blocks of 64"), std::string::npos) << reason;
    EXPECT_TRUE(testing::conv_variant_named("cuda.wgmma").supports(narrow, ConvPass::BackwardFilter, &reason))
        << reason;
}

// cuda.wgmma.producer where its tiles come by bulk tensor copies (kernels/conv_wgmma.cu: the plan's
// activations_ and weight_by_bulk_copy): a forward of 64 channels with every spatial parameter
// different along H and W (A by im2col copies: a W/H mix-up in the map, the coordinates or the
// offsets differs here), a 1x1 forward and backward-data (A by tiled copies), and a backward-data
// of 64 dy channels a group with 2 groups (B by tiled copies at the phases' reversed taps), each
// against the float64 host ops. Backward-filter (kernels/conv_wgmma_filter.cu: dy's boxes, x's
// im2col walk of 64 positions) where a group's input channels are 64: the asymmetric one (484
// positions: 8 k tiles, every stage's second round), the 1x1 and 2 groups of 64 strided.
TEST_F(CudaWgmmaConv, ProducerBulkCopiesMatchTheReference) {
    CONVKIT_SEEDED_RNG(rng);
    struct Case {
        const char* name;
        Shape x, w;
        ConvParams params;
    };
    const std::vector<Case> cases = {
        {"asymmetric_forward", Shape{4, 64, 13, 21}, Shape{40, 64, 3, 5},
         ConvParams(2).set_stride({1, 2}).set_padding({1, 2}).set_dilation({2, 1})},
        {"pointwise", Shape{2, 64, 7, 9}, Shape{72, 64, 1, 1}, ConvParams(2)},
        {"grouped_strided", Shape{2, 32, 9, 9}, Shape{128, 16, 3, 3},
         ConvParams(2).set_stride(2).set_padding(1).set_groups(2)},
        {"grouped_64", Shape{2, 128, 9, 11}, Shape{96, 64, 3, 3},
         ConvParams(2).set_stride({2, 1}).set_padding(1).set_groups(2)},
    };
    const auto on_cuda = [](const Tensor& t) {
        return t.to(DType::BFloat16).to(Device::cuda()).to(MemoryFormat::ChannelsLast);
    };
    const auto back = [](const Tensor& t) { return t.to(Device::host()).to(DType::Float64).contiguous(); };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        const Tensor x = testing::random_exact_in(DType::BFloat16, c.x, rng);
        const Tensor w = testing::random_exact_in(DType::BFloat16, c.w, rng);
        const Tensor expected_y = conv_forward(x, w, c.params);
        const Tensor dy = testing::random_exact_in(DType::BFloat16, expected_y.shape(), rng);
        Tensor y, dx;
        {
            const VariantGuard guard("cuda.wgmma.producer");
            y = conv_forward(on_cuda(x), w.to(DType::BFloat16).to(Device::cuda()), c.params);
            dx = conv_backward_data(on_cuda(dy), w.to(DType::BFloat16).to(Device::cuda()), x.shape(), c.params);
        }
        EXPECT_LT(testing::relative_error(back(y), expected_y), testing::kBfloat16VsFloat64Tolerance);
        EXPECT_LT(testing::relative_error(back(dx), conv_backward_data(dy, w, x.shape(), c.params)),
                  testing::kBfloat16VsFloat64Tolerance);
        if (c.x[1] / c.params.groups % 64 != 0) continue;
        Tensor dw;
        {
            const VariantGuard guard("cuda.wgmma.producer");
            dw = conv_backward_filter(on_cuda(dy), on_cuda(x), w.shape(), c.params);
        }
        EXPECT_LT(testing::relative_error(back(dw), conv_backward_filter(dy, x, w.shape(), c.params)),
                  testing::kBfloat16VsFloat64Tolerance);
    }
}

// The backward-data weight: per group, [out, in, kd, kh, kw] becomes [in, kd, kh, kw, out] with
// every spatial dim flipped. The kernel (a reversed flat tap index) against a loop that flips each
// dim, every element size, into a NaN-filled buffer.
TEST_F(CudaWgmmaConv, BackwardDataWeightSwapsEachGroupsChannelsAndFlipsEveryTap) {
    CONVKIT_SEEDED_RNG(rng);
    struct Case {
        std::int64_t groups, out_per_group, in_per_group, kd, kh, kw;
    };
    for (const Case& c :
         {Case{1, 3, 5, 1, 1, 1}, Case{2, 4, 3, 1, 3, 2}, Case{3, 2, 8, 2, 3, 3}, Case{1, 16, 8, 1, 1, 7}}) {
        const std::int64_t taps = c.kd * c.kh * c.kw;
        const Shape shape{c.groups * c.out_per_group, c.in_per_group, taps};
        for (DType dtype : {DType::BFloat16, DType::Float16, DType::Float32, DType::Float64}) {
            SCOPED_TRACE(std::string(dtype_name(dtype)) + " groups " + std::to_string(c.groups));
            const Tensor w = testing::small_integer_tensor(shape, rng(), 100).to(dtype);
            const Tensor w64 = w.to(DType::Float64);
            Tensor expected = Tensor::zeros(Shape{c.groups * c.in_per_group, taps, c.out_per_group}, DType::Float64);
            for (std::int64_t g = 0; g < c.groups; ++g) {
                for (std::int64_t k = 0; k < c.out_per_group; ++k) {
                    for (std::int64_t ci = 0; ci < c.in_per_group; ++ci) {
                        for (std::int64_t d = 0; d < c.kd; ++d) {
                            for (std::int64_t h = 0; h < c.kh; ++h) {
                                for (std::int64_t x = 0; x < c.kw; ++x) {
                                    const std::int64_t tap = (d * c.kh + h) * c.kw + x;
                                    const std::int64_t flipped =
                                        ((c.kd - 1 - d) * c.kh + (c.kh - 1 - h)) * c.kw + (c.kw - 1 - x);
                                    expected.data<
                                        double>()[((g * c.in_per_group + ci) * taps + flipped) * c.out_per_group + k] =
                                        w64.data<double>()[((g * c.out_per_group + k) * c.in_per_group + ci) * taps +
                                                           tap];
                                }
                            }
                        }
                    }
                }
            }
            Tensor got = testing::nan_tensor(expected.shape(), dtype, Device::cuda());
            kernels::backward_data_conv_weight(w.to(Device::cuda()).raw_data(), got.raw_data(), dtype, c.groups,
                                               c.out_per_group, c.in_per_group, taps, current_stream(0));
            EXPECT_TRUE(testing::exactly_equal(got.to(DType::Float64), expected));
        }
    }
}

// Named: backward-data as the transposed convolution's forward (its bias, residual and ReLU
// fused) and as the convolution's gradient, 1-D to 3-D, with groups, dilation and padding from
// none to past the kernel's reach, at stride 1 and per phase of a stride (uniform phases in one
// launch, unequal ones, phases no tap reaches), against the float64 host ops.
TEST_F(CudaWgmmaConv, NamedBackwardDataMatchesTheReference) {
    CONVKIT_SEEDED_RNG(rng);
    struct Case {
        const char* label;
        ConvParams params;
        Shape dy, w;
    };
    const std::vector<Case> cases = {
        {"2d 3x3 same groups 2", ConvParams(2).set_padding(1).set_groups(2), Shape{2, 32, 7, 6}, Shape{32, 8, 3, 3}},
        {"2d 1x1", ConvParams(2), Shape{1, 16, 5, 9}, Shape{16, 24, 1, 1}},
        {"1d k5 dilation 2 padding 0", ConvParams(1).set_dilation(2), Shape{2, 8, 11}, Shape{8, 16, 5}},
        {"3d 3x3x3 padding 2 (full)", ConvParams(3).set_padding(2), Shape{1, 8, 3, 4, 5}, Shape{8, 8, 3, 3, 3}},
        {"2d 3x3 padding 3 (past the reach)", ConvParams(2).set_padding(3), Shape{1, 16, 9, 9}, Shape{16, 8, 3, 3}},
        {"2d 4x4/2 padding 1 (DCGAN, uniform)", ConvParams(2).set_padding(1).set_stride(2), Shape{2, 32, 6, 5},
         Shape{32, 16, 4, 4}},
        {"2d 3x3/2 padding 1 groups 2 (unequal phases)", ConvParams(2).set_padding(1).set_stride(2).set_groups(2),
         Shape{2, 16, 5, 4}, Shape{16, 8, 3, 3}},
        {"2d 1x1/2 (phases without taps)", ConvParams(2).set_stride(2), Shape{1, 32, 4, 4}, Shape{32, 16, 1, 1}},
        {"3d 2x2x2/2 (8 uniform phases)", ConvParams(3).set_stride(2), Shape{1, 16, 3, 2, 4}, Shape{16, 8, 2, 2, 2}},
        {"1d k5/3 dilation 2", ConvParams(1).set_stride(3).set_dilation(2).set_padding(2), Shape{2, 8, 9},
         Shape{8, 24, 5}},
        // 9 taps x 128 dy channels = 18 k tiles on one block: split 2 ways by default (below).
        {"2d 3x3 same, 128 dy channels (split-K)", ConvParams(2).set_padding(1), Shape{1, 128, 4, 4},
         Shape{128, 16, 3, 3}},
    };
    const detail::ConvProblem split = problem_of(Shape{1, 16, 4, 4}, Shape{128, 16, 3, 3}, ConvParams(2).set_padding(1),
                                                 DType::BFloat16, MemoryFormat::ChannelsLast);
    EXPECT_EQ(
        kernels::conv_wgmma_backward_data_plan(detail::igemm_shape(split.geometry), kernels::IgemmOperand::BFloat16)
            .launches.at(0)
            .splits,
        2);
    for (const Case& c : cases) {
        SCOPED_TRACE(c.label);
        const Tensor dy = testing::random_exact_in(DType::BFloat16, c.dy, rng);
        const Tensor w = testing::random_exact_in(DType::BFloat16, c.w, rng);
        const Shape x_shape = detail::conv_transpose_geometry("conv_transpose", c.dy, c.w, c.params).input_shape();
        const Tensor b = testing::random_exact_in(DType::BFloat16, Shape{x_shape[1]}, rng);
        const Tensor residual = testing::random_exact_in(DType::BFloat16, x_shape, rng);
        const auto on_cuda = [](const Tensor& t) {
            return t.to(DType::BFloat16).to(Device::cuda()).to(MemoryFormat::ChannelsLast);
        };
        const auto weight = [](const Tensor& t) { return t.to(DType::BFloat16).to(Device::cuda()); };
        const Tensor expected = relu(conv_transpose_forward(dy, w, b, c.params, {residual, false}));
        const Tensor expected_gradient = conv_backward_data(dy, w, x_shape, c.params);
        Tensor got, gradient;
        {
            const VariantGuard guard("cuda.wgmma");
            got = conv_transpose_forward(on_cuda(dy), weight(w), weight(b), c.params, {on_cuda(residual), true});
            gradient = conv_backward_data(on_cuda(dy), weight(w), x_shape, c.params);
        }
        const auto back = [](const Tensor& t) { return t.to(Device::host()).to(DType::Float64).contiguous(); };
        EXPECT_LT(testing::relative_error(back(got), expected), testing::kBfloat16VsFloat64Tolerance);
        EXPECT_LT(testing::relative_error(back(gradient), expected_gradient), testing::kBfloat16VsFloat64Tolerance);
    }
}

// Named: backward-filter (split over the positions, its GEMM transposed where K/g <= 64) against
// the float64 host op, 1-D to 3-D, groups, strides, dilation, both 16-bit types; float32 (tf32)
// refused for it with the reason, since its tiles are MN-major.
TEST_F(CudaWgmmaConv, NamedBackwardFilterMatchesTheReference) {
    CONVKIT_SEEDED_RNG(rng);
    struct Case {
        const char* label;
        ConvParams params;
        Shape x, w;
        DType dtype;
    };
    const std::vector<Case> cases = {
        {"2d 3x3 same, 64 channels (transposed)", ConvParams(2).set_padding(1), Shape{2, 16, 9, 8}, Shape{64, 16, 3, 3},
         DType::BFloat16},
        {"2d 3x3/2 groups 2, 96 channels", ConvParams(2).set_padding(1).set_stride(2).set_groups(2),
         Shape{2, 32, 11, 10}, Shape{192, 16, 3, 3}, DType::Float16},
        {"1d k5 dilation 2", ConvParams(1).set_dilation(2).set_padding(4), Shape{2, 24, 40}, Shape{136, 24, 5},
         DType::BFloat16},
        {"3d 1x1x1 (both at most 64)", ConvParams(3), Shape{2, 32, 3, 4, 5}, Shape{48, 32, 1, 1, 1}, DType::Float16},
        // 4 x 32 x 32 = 4,096 positions (64 k tiles) on 5 blocks: split 8 ways (asserted below),
        // through the variant's slice workspace and the adder.
        {"2d 3x3 split-K", ConvParams(2).set_padding(1), Shape{4, 16, 32, 32}, Shape{64, 16, 3, 3}, DType::BFloat16},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.label);
        const Tensor x = testing::random_exact_in(c.dtype, c.x, rng);
        const Tensor w = testing::random_exact_in(c.dtype, c.w, rng);
        const Shape y_shape = detail::conv_geometry("conv", c.x, c.w, c.params).output_shape();
        const Tensor dy = testing::random_exact_in(c.dtype, y_shape, rng);
        const Tensor expected = conv_backward_filter(dy, x, c.w, c.params);
        const auto on_cuda = [&](const Tensor& t) {
            return t.to(c.dtype).to(Device::cuda()).to(MemoryFormat::ChannelsLast);
        };
        Tensor got;
        {
            const VariantGuard guard("cuda.wgmma");
            got = conv_backward_filter(on_cuda(dy), on_cuda(x), c.w, c.params);
        }
        EXPECT_LT(testing::relative_error(got.to(Device::host()).to(DType::Float64).contiguous(), expected),
                  testing::sixteen_bit_tolerance(c.dtype));
    }
    const detail::ConvProblem split =
        problem_of(cases.back().x, cases.back().w, cases.back().params, DType::BFloat16, MemoryFormat::ChannelsLast);
    EXPECT_GT(kernels::conv_wgmma_backward_filter_plan(detail::igemm_shape(split.geometry)).splits, 1);
    detail::ConvProblem float32 = problem_of(Shape{2, 16, 8, 8}, Shape{16, 16, 3, 3}, ConvParams(2).set_padding(1),
                                             DType::Float32, MemoryFormat::ChannelsLast);
    float32.math = MathMode::AllowTF32;
    EXPECT_NE(reason_of(float32, ConvPass::BackwardFilter).find("bf16 and f16 operands only"), std::string::npos)
        << reason_of(float32, ConvPass::BackwardFilter);
}

// What it refuses, with the reason: float32 under strict math (it runs it as tf32 otherwise),
// contiguous activations, channels per group off the 16-byte vector, padding other than zeros.
TEST_F(CudaWgmmaConv, RefusesWithTheReason) {
    const ConvParams zeros = ConvParams(2).set_padding(1);
    const Shape x{2, 16, 8, 8}, w{16, 16, 3, 3};
    detail::ConvProblem float32 = problem_of(x, w, zeros, DType::Float32, MemoryFormat::ChannelsLast);
    float32.math = MathMode::Strict;
    EXPECT_NE(reason_of(float32, ConvPass::Forward).find("strict math forbids"), std::string::npos);
    float32.math = MathMode::AllowTF32;
    EXPECT_EQ(reason_of(float32, ConvPass::Forward), "");
    EXPECT_EQ(reason_of(float32, ConvPass::BackwardData), "");
    EXPECT_NE(reason_of(problem_of(x, w, zeros, DType::BFloat16, MemoryFormat::Contiguous), ConvPass::Forward)
                  .find("channels-last"),
              std::string::npos);
    EXPECT_NE(reason_of(problem_of(Shape{2, 12, 8, 8}, Shape{16, 12, 3, 3}, zeros, DType::Float16,
                                   MemoryFormat::ChannelsLast),
                        ConvPass::Forward)
                  .find("input channels per group 12 not a multiple of 8"),
              std::string::npos);
    EXPECT_NE(reason_of(problem_of(x, w, ConvParams(2).set_padding(1).set_padding_mode(PaddingMode::Reflect),
                                   DType::BFloat16, MemoryFormat::ChannelsLast),
                        ConvPass::Forward)
                  .find("zeros padding"),
              std::string::npos);
}

}  // namespace
}  // namespace convkit
