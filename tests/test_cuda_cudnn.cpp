// The cuDNN backend against the host reference (label gpu), in strict float32, TF32 and
// float64, with heuristic and timed algorithm choice, into NaN-filled buffers; and the calls it
// cannot run answered with NotSupported and a reason.
#include <iostream>

#include "backend_api/geometry.h"
#include "backend_api/variant.h"
#include "backends/cudnn/cudnn_epilogue_route.h"
#include "conv_epilogue_case.h"
#include "test_util.h"
#include "tolerances.h"
#include "variant_runner.h"

namespace convkit {
namespace {

#ifdef CONVKIT_WITH_CUDNN

// Bounds of docs/testing.md: strict float32 as the hand-written kernels; TF32 rounds each
// product's inputs to 10 mantissa bits (relative 2^-11), which sums of random terms keep near
// that size; float64 algorithms reorder sums only.

// Skips, saying why, without a CUDA device, and on the emulated one, which cannot run cuDNN.
class Cudnn : public testing::WithCuda<> {
protected:
    void SetUp() override {
        testing::WithCuda<>::SetUp();
        if (IsSkipped()) return;
        if (cuda_is_emulated()) GTEST_SKIP() << "cuDNN cannot run on the emulated CUDA device (it needs a GPU)";
    }
};

struct ConvProblem {
    ConvParams params;
    Shape input;
    Shape weight;
};

std::vector<ConvProblem> supported_problems() {
    using P = ConvParams;
    return {
        {P(1).set_stride(2).set_padding(1).set_dilation(2), Shape{2, 3, 21}, Shape{5, 3, 3}},
        {P(2).set_padding(1), Shape{2, 5, 9, 11}, Shape{7, 5, 3, 3}},
        {P(2).set_stride({2, 1}).set_padding({0, 2}).set_groups(3), Shape{1, 6, 12, 9}, Shape{9, 2, 3, 5}},
        {P(2).set_groups(8).set_padding(1), Shape{2, 8, 10, 10}, Shape{8, 1, 3, 3}},  // depthwise
        {P(2).set_same_padding(), Shape{1, 3, 8, 8}, Shape{4, 3, 3, 3}},             // odd kernel: symmetric
        {P(3).set_stride(2).set_padding(1), Shape{1, 2, 6, 7, 8}, Shape{3, 2, 3, 3, 3}},
    };
}

// Runs one pass of the `cudnn` variant on a problem built with the calling thread's settings
// (math mode, algorithm search), as the public ops build it.
void run_cudnn(const detail::ConvProblem& problem, ConvPass pass, const detail::ConvOperands& operands) {
    const detail::ConvVariant* cudnn = detail::find_conv_variant("cudnn");
    ASSERT_NE(cudnn, nullptr) << "this build has no cudnn variant";
    std::string why;
    ASSERT_TRUE(cudnn->supports(problem, pass, &why)) << why;
    ASSERT_EQ(cudnn->workspace(problem, pass), 0u) << "the cudnn variant takes its workspace itself";
    cudnn->run(problem, pass, operands, {}, current_stream(0));
}

double tolerance_for(DType dtype, MathMode mode) {
    if (dtype == DType::Float64) return testing::kCudnnFloat64Tolerance;
    return mode == MathMode::Strict ? testing::kCudaStrictFloat32Tolerance : testing::kTf32Tolerance;
}

TEST_F(Cudnn, ConvolutionPassesMatchTheHostReference) {
    CONVKIT_SEEDED_RNG(rng);
    for (const ConvProblem& p : supported_problems()) {
        const std::string op = conv_op_name(p.params.spatial_rank);
        const detail::ConvGeometry g = detail::conv_geometry(op, p.input, p.weight, p.params);
        SCOPED_TRACE(op + " " + p.params.to_string() + " " + p.input.to_string());
        const Tensor x = testing::random_tensor(p.input, rng);
        const Tensor w = testing::random_tensor(p.weight, rng);
        const Tensor b = testing::random_tensor(Shape{g.out_channels}, rng);
        const Tensor dy = testing::random_tensor(g.output_shape(), rng);
        const Tensor ref_y = conv_forward(x, w, b, p.params);
        const Tensor ref_dx = conv_backward_data(dy, w, p.input, p.params);
        const Tensor ref_dw = conv_backward_filter(dy, x, p.weight, p.params);
        const Tensor ref_db = conv_backward_bias(dy);
        for (DType dtype : {DType::Float64, DType::Float32}) {
            for (MathMode mode : {MathMode::Strict, MathMode::AllowTF32}) {
                for (AlgorithmSearch search : {AlgorithmSearch::Heuristic, AlgorithmSearch::Timed}) {
                    if (dtype == DType::Float64 && mode == MathMode::AllowTF32) continue;
                    SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + math_mode_name(mode) + " " +
                                 algorithm_search_name(search));
                    set_default_math_mode(mode);
                    set_default_algorithm_search(search);
                    const double tol = tolerance_for(dtype, mode);
                    const detail::ConvProblem problem = detail::conv_problem(g, dtype, Device::cuda());
                    const Tensor xd = x.to(dtype).to(Device::cuda());
                    const Tensor wd = w.to(dtype).to(Device::cuda());
                    const Tensor bd = b.to(dtype).to(Device::cuda());
                    const Tensor dyd = dy.to(dtype).to(Device::cuda());
                    Tensor y = testing::nan_tensor(ref_y.shape(), dtype, Device::cuda());
                    run_cudnn(problem, ConvPass::Forward,
                              {.x = xd.raw_data(), .w = wd.raw_data(), .bias = bd.raw_data(), .out = y.raw_data()});
                    EXPECT_LT(testing::relative_error(y, ref_y), tol) << "forward";
                    Tensor dx = testing::nan_tensor(p.input, dtype, Device::cuda());
                    run_cudnn(problem, ConvPass::BackwardData,
                              {.w = wd.raw_data(), .dy = dyd.raw_data(), .out = dx.raw_data()});
                    EXPECT_LT(testing::relative_error(dx, ref_dx), tol) << "backward data";
                    Tensor dw = testing::nan_tensor(p.weight, dtype, Device::cuda());
                    run_cudnn(problem, ConvPass::BackwardFilter,
                              {.x = xd.raw_data(), .dy = dyd.raw_data(), .out = dw.raw_data()});
                    EXPECT_LT(testing::relative_error(dw, ref_dw), tol) << "backward filter";
                    Tensor db = testing::nan_tensor(Shape{g.out_channels}, dtype, Device::cuda());
                    detail::ConvProblem bias_problem = detail::conv_problem(detail::ConvGeometry{}, dtype, Device::cuda());
                    bias_problem.bias_grad = {g.batch, g.out_channels, g.output_spatial()};
                    run_cudnn(bias_problem, ConvPass::BackwardBias, {.dy = dyd.raw_data(), .out = db.raw_data()});
                    EXPECT_LT(testing::relative_error(db, ref_db), tol) << "bias";
                }
            }
        }
    }
    set_default_math_mode(MathMode::Strict);
    set_default_algorithm_search(AlgorithmSearch::Heuristic);
}

// bfloat16 and float16 (tensor-op math, float32 accumulation) on channels-last activations,
// the weight given to cuDNN as KRSC through the variant's workspace: every pass against float64
// on inputs exact in the dtype.
TEST_F(Cudnn, SixteenBitChannelsLastPassesMatchTheHostReference) {
    CONVKIT_SEEDED_RNG(rng);
    const detail::ConvVariant& cudnn = testing::conv_variant_named("cudnn");
    const detail::ConvVariant& reference = testing::conv_variant_named("host.reference");
    for (const ConvProblem& p : supported_problems()) {
        const detail::ConvGeometry g = detail::conv_geometry("conv", p.input, p.weight, p.params);
        SCOPED_TRACE(p.params.to_string() + " " + p.input.to_string());
        for (DType dtype : {DType::BFloat16, DType::Float16}) {
            SCOPED_TRACE(dtype_name(dtype));
            const testing::ConvPassInputs in = testing::random_pass_inputs(g, dtype, rng);
            const testing::ConvPassResults expected = testing::run_conv_passes(reference, g, in, DType::Float64);
            const testing::ConvPassResults got =
                testing::run_conv_passes(cudnn, g, in, dtype, Device::cuda(), MemoryFormat::ChannelsLast);
            const double tol = testing::sixteen_bit_tolerance(dtype);
            testing::expect_conv_passes_close(got, expected, tol);
        }
    }
}

TEST_F(Cudnn, TransposedConvolutionThroughThePublicOps) {
    CONVKIT_SEEDED_RNG(rng);
    BackendGuard guard(Backend::Cudnn);
    const ConvParams p = ConvParams(2).set_stride(2).set_padding(1).set_output_padding(1);
    const Tensor x = testing::random_tensor(Shape{2, 4, 5, 6}, rng);
    const Tensor w = testing::random_tensor(Shape{4, 3, 3, 3}, rng);
    const Tensor b = testing::random_tensor(Shape{3}, rng);
    const Tensor y = conv_transpose_forward(x.to(Device::cuda()), w.to(Device::cuda()), b.to(Device::cuda()), p);
    EXPECT_LT(testing::relative_error(y, conv_transpose_forward(x, w, b, p)), testing::kCudnnFloat64Tolerance);
    const Tensor dy = testing::random_tensor(y.shape(), rng);
    const Tensor dw = conv_transpose_backward_filter(dy.to(Device::cuda()), x.to(Device::cuda()), w.shape(), p);
    EXPECT_LT(testing::relative_error(dw, conv_transpose_backward_filter(dy, x, w.shape(), p)), testing::kCudnnFloat64Tolerance);
}

// Each refusal names the op, the backend and why; nothing runs on another backend instead.
TEST_F(Cudnn, WhatCudnnCannotRunIsNotSupportedWithTheReason) {
    BackendGuard guard(Backend::Cudnn);
    const Tensor x = Tensor::zeros(Shape{1, 2, 8, 8}, DType::Float32, Device::cuda());
    const Tensor w = Tensor::zeros(Shape{2, 2, 3, 3}, DType::Float32, Device::cuda());
    const auto message = [](auto&& call) -> std::string {
        try {
            call();
        } catch (const NotSupported& e) {
            return e.what();
        }
        return "no NotSupported";
    };
    EXPECT_NE(message([&] { conv_forward(x, w, ConvParams(2).set_padding(1).set_padding_mode(PaddingMode::Reflect)); })
                  .find("conv2d: the cudnn backend runs zeros padding only, not reflect"),
              std::string::npos);
    const Tensor w_even = Tensor::zeros(Shape{2, 2, 4, 4}, DType::Float32, Device::cuda());
    EXPECT_NE(message([&] { conv_forward(x, w_even, ConvParams(2).set_same_padding()); })
                  .find("needs equal padding on both sides"),
              std::string::npos);
    EXPECT_NE(message([&] { max_pool_forward(x, PoolParams(2, 3).set_stride(2).set_ceil_mode()); })
                  .find("has no ceil_mode windows"),
              std::string::npos);
    EXPECT_NE(message([&] { max_pool_forward(x, PoolParams(2, 2).set_dilation(2)); }).find("no dilated"),
              std::string::npos);
    EXPECT_NE(message([&] { adaptive_avg_pool_forward(x, {3, 3}); }).find("has no adaptive pooling"),
              std::string::npos);
}

TEST_F(Cudnn, PoolingMatchesTheHostReference) {
    CONVKIT_SEEDED_RNG(rng);
    BackendGuard guard(Backend::Cudnn);
    const std::vector<std::pair<PoolParams, Shape>> problems = {
        {PoolParams(2, 2), Shape{2, 3, 8, 10}},
        {PoolParams(2, 3).set_stride(2).set_padding(1), Shape{1, 4, 9, 9}},
        {PoolParams(2, 3).set_stride(2).set_padding(1).set_count_include_pad(false), Shape{1, 4, 9, 7}},
        {PoolParams(3, 2), Shape{1, 2, 4, 6, 8}},
    };
    for (const auto& [params, shape] : problems) {
        SCOPED_TRACE(params.to_string() + " " + shape.to_string());
        const Tensor x = testing::random_tensor(shape, rng);
        const Tensor xd = x.to(Device::cuda());
        const Tensor ymax = max_pool_forward(xd, params);
        EXPECT_LT(testing::relative_error(ymax, max_pool_forward(x, params)), testing::kCudnnFloat64Tolerance);
        const Tensor dy = testing::random_tensor(ymax.shape(), rng);
        EXPECT_LT(testing::relative_error(max_pool_backward(dy.to(Device::cuda()), xd, params),
                                          max_pool_backward(dy, x, params)),
                  testing::kCudnnFloat64Tolerance);
        const Tensor yavg = avg_pool_forward(xd, params);
        EXPECT_LT(testing::relative_error(yavg, avg_pool_forward(x, params)), testing::kCudnnFloat64Tolerance);
        EXPECT_LT(testing::relative_error(avg_pool_backward(dy.to(Device::cuda()), shape, params),
                                          avg_pool_backward(dy, shape, params)),
                  testing::kCudnnFloat64Tolerance);
        // Channels-last: cuDNN's NHWC descriptors, so the op converts no layout, and the results
        // stay channels-last.
        const Tensor xl = xd.to(MemoryFormat::ChannelsLast), dyl = dy.to(Device::cuda()).to(MemoryFormat::ChannelsLast);
        reset_layout_conversions();
        const Tensor ymax_last = max_pool_forward(xl, params);
        EXPECT_EQ(ymax_last.memory_format(), MemoryFormat::ChannelsLast);
        EXPECT_LT(testing::relative_error(ymax_last, max_pool_forward(x, params)), testing::kCudnnFloat64Tolerance);
        EXPECT_LT(testing::relative_error(max_pool_backward(dyl, xl, params), max_pool_backward(dy, x, params)),
                  testing::kCudnnFloat64Tolerance);
        EXPECT_LT(testing::relative_error(avg_pool_forward(xl, params), avg_pool_forward(x, params)),
                  testing::kCudnnFloat64Tolerance);
        EXPECT_LT(testing::relative_error(avg_pool_backward(dyl, shape, params), avg_pool_backward(dy, shape, params)),
                  testing::kCudnnFloat64Tolerance);
        EXPECT_EQ(layout_conversions(), 0u) << "cuDNN pools NHWC tensors as they are";
    }
}

// The epilogue (bias, residual, ReLU) by cuDNN's own calls (the variant applies it: nothing is
// left to the op layer, whose unfused_epilogue would otherwise hide a variant that ignores it): every combination,
// through the public ops with the cuDNN backend, for a convolution (the fused call where there is a ReLU) and a
// transposed one (backward-data: the separate calls), forward and every gradient against the float64 composition on the
// host.
TEST_F(Cudnn, EpilogueByCudnnsOwnCallsMatchesTheFloat64Composition) {
    CONVKIT_SEEDED_RNG(rng);
    BackendGuard guard(Backend::Cudnn);
    EXPECT_TRUE(testing::conv_variant_named("cudnn").fuses_epilogue());
    const std::vector<testing::EpilogueCase> cases = testing::cuda_epilogue_cases();
    struct Mode {
        DType dtype;
        MemoryFormat format;
        double tolerance;
    };
    const Mode modes[] = {
        {DType::Float64, MemoryFormat::Contiguous, testing::kCudnnFloat64Tolerance},
        {DType::Float32, MemoryFormat::Contiguous, testing::kCudaStrictFloat32Tolerance},
        {DType::BFloat16, MemoryFormat::ChannelsLast, testing::kBfloat16VsFloat64Tolerance},
        {DType::Float16, MemoryFormat::ChannelsLast, testing::kFloat16VsFloat64Tolerance},
    };
    for (const testing::EpilogueCase& c : cases) {
        for (const Mode& mode : modes) {
            for (int combination = 1; combination < 8; ++combination) {
                const bool bias = combination & 1, residual = combination & 2, relu_after = combination & 4;
                SCOPED_TRACE(c.name + " " + dtype_name(mode.dtype) + (bias ? " bias" : "") +
                             (residual ? " residual" : "") + (relu_after ? " relu" : ""));
                const testing::EpilogueInputs in =
                    testing::random_epilogue_inputs(c, bias, residual, DType::BFloat16, rng);
                const testing::EpilogueResults expected = testing::run_epilogue(
                    c, in, relu_after, false, DType::Float64, Device::host(), MemoryFormat::Contiguous);
                const testing::EpilogueResults got =
                    testing::run_epilogue(c, in, relu_after, true, mode.dtype, Device::cuda(), mode.format);
                testing::expect_epilogue_results_close(got, expected, mode.tolerance);
            }
        }
    }
}

// The fused call writes every element of a NaN-filled output (without a residual its z is that
// output, scaled by 0; without a bias a zero bias), and says it ran: float32 is a configuration
// cudnnConvolutionBiasActivationForward documents. The others may be refused (then the separate
// calls give the same numbers, and the route says why): their routes are printed, for 16-bit
// data also on channels-last activations through the public op, as convkit-bench runs them.
TEST_F(Cudnn, FusedForwardWritesEveryElementAndSaysHowItRan) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_padding(1);
    const Shape x_shape{2, 16, 7, 6}, w_shape{24, 16, 3, 3};
    const detail::ConvGeometry g = detail::conv_geometry("conv2d", x_shape, w_shape, params);
    const Tensor x = testing::random_tensor(x_shape, rng), w = testing::random_tensor(w_shape, rng);
    const Tensor b = testing::random_tensor(Shape{g.out_channels}, rng);
    const Tensor r = testing::random_tensor(g.output_shape(), rng);
    const auto tolerance_of = [](DType dtype) {
        return dtype == DType::Float64   ? testing::kCudnnFloat64Tolerance
               : dtype == DType::Float32 ? testing::kCudaStrictFloat32Tolerance
                                         : testing::sixteen_bit_tolerance(dtype);
    };
    for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
        for (int combination = 0; combination < 4; ++combination) {
            const bool with_bias = combination & 1, with_residual = combination & 2;
            const std::string what =
                std::string(dtype_name(dtype)) + (with_bias ? " bias" : "") + (with_residual ? " residual" : "");
            SCOPED_TRACE(what);
            const Tensor bd = b.to(dtype), rd = r.to(dtype), xd = x.to(dtype), wd = w.to(dtype);
            const Tensor expected =
                relu(conv_forward(xd.to(DType::Float64), wd.to(DType::Float64),
                                  with_bias ? bd.to(DType::Float64) : Tensor(), params) +
                     (with_residual ? rd.to(DType::Float64) : Tensor::zeros(r.shape(), DType::Float64)));
            const Tensor xc = xd.to(Device::cuda()), wc = wd.to(Device::cuda()), bc = bd.to(Device::cuda()),
                         rc = rd.to(Device::cuda());
            Tensor y = testing::nan_tensor(g.output_shape(), dtype, Device::cuda());
            run_cudnn(detail::conv_problem(g, dtype, Device::cuda()), ConvPass::Forward,
                      {.x = xc.raw_data(),
                       .w = wc.raw_data(),
                       .bias = with_bias ? bc.raw_data() : nullptr,
                       .out = y.raw_data(),
                       .residual = with_residual ? rc.raw_data() : nullptr,
                       .relu = true});
            const std::string route = detail::cudnn_last_epilogue_route();
            std::cout << what << ": " << route << "\n";
            if (dtype == DType::Float32) {
                EXPECT_EQ(route, "fused: cudnnConvolutionBiasActivationForward");
            } else {
                EXPECT_FALSE(route.empty());
            }
            EXPECT_LT(testing::relative_error(y.to(DType::Float64), expected), tolerance_of(dtype));

            if (dtype == DType::BFloat16 || dtype == DType::Float16) {
                BackendGuard guard(Backend::Cudnn);
                const Tensor y_last =
                    conv_forward(xc.to(MemoryFormat::ChannelsLast), wc, with_bias ? bc : Tensor(), params,
                                 {with_residual ? rc.to(MemoryFormat::ChannelsLast) : Tensor(), true});
                std::cout << what << " channels-last: " << detail::cudnn_last_epilogue_route() << "\n";
                EXPECT_EQ(y_last.memory_format(), MemoryFormat::ChannelsLast);
                EXPECT_LT(testing::relative_error(y_last.to(DType::Float64).contiguous(), expected),
                          tolerance_of(dtype));
            }
        }
    }
}

#else

TEST(Cudnn, NotInThisBuild) {
    BackendGuard guard(Backend::Cudnn);
    if (!cuda_is_available()) GTEST_SKIP() << "needs a CUDA device: " << cuda_unavailable_reason();
    const Tensor x = Tensor::zeros(Shape{1, 1, 4, 4}, DType::Float32, Device::cuda());
    EXPECT_THROW(conv_forward(x, x, ConvParams(2)), NotSupported);
}

#endif

}  // namespace
}  // namespace convkit
