// The warpgroup-MMA convolution variant cuda.wgmma (src/backends/cuda/conv_wgmma_variant.cpp,
// kernels/conv_wgmma.cu, sm_90a) through the registry and the public ops on a CUDA device (label
// gpu): an H100/H200, or the emulated device, which reports compute capability 9.0. It is not the
// default policy's choice for any pass; named, the public forward runs on it with bias and the
// fused residual and ReLU, against the same op on float64 host tensors; the passes it does not
// implement are refused when named, and so are float32, contiguous activations and channels off
// the 16-byte vector, each with its reason. Elsewhere (no device of compute capability 9.0) the
// tests that run it skip. The kernel itself: tests/emu/test_emu_wgmma.cpp; the sweep of every
// variant: test_variant_sweep.cpp.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "backend_api/selection.h"
#include "convkit/ops/activation.h"
#include "convkit/ops/conv.h"
#include "cuda/cuda_runtime.h"
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

// The default policy keeps cuda.igemm for the 16-bit channels-last problems both run, pass by
// pass; cuda.wgmma supports the forward only.
TEST_F(CudaWgmmaConv, IsNotTheDefaultChoice) {
    const BackendGuard cuda(Backend::Cuda);
    const VariantGuard nothing_named;
    set_conv_variant("");
    set_variant_selection(VariantSelection::Default);
    for (DType dtype : {DType::BFloat16, DType::Float16}) {
        const detail::ConvProblem p = problem_of(Shape{2, 64, 14, 14}, Shape{128, 64, 3, 3},
                                                 ConvParams(2).set_padding(1), dtype, MemoryFormat::ChannelsLast);
        EXPECT_EQ(reason_of(p, ConvPass::Forward), "");
        for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter}) {
            EXPECT_EQ(std::string(detail::choose_variant("conv2d", p, pass).variant->name()), "cuda.igemm")
                << dtype_name(dtype) << " " << conv_pass_name(pass);
        }
    }
}

// Named: the public forward with bias, residual and ReLU (fused by the variant) against the
// float64 host op; a backward pass named for it is refused with the reason.
TEST_F(CudaWgmmaConv, NamedForwardMatchesTheReferenceAndOtherPassesAreRefused) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_padding(1).set_stride(2).set_groups(2);
    const Tensor x = testing::random_exact_in(DType::BFloat16, Shape{2, 32, 9, 8}, rng);
    const Tensor w = testing::random_exact_in(DType::BFloat16, Shape{144, 16, 3, 3}, rng);
    const Tensor b = testing::random_exact_in(DType::BFloat16, Shape{144}, rng);
    const Tensor residual = testing::random_exact_in(DType::BFloat16, Shape{2, 144, 5, 4}, rng);
    const auto on_cuda = [](const Tensor& t) {
        return t.to(DType::BFloat16).to(Device::cuda()).to(MemoryFormat::ChannelsLast);
    };
    const Tensor expected = relu(conv_forward(x, w, b, params, {residual, false}));
    Tensor got;
    {
        const VariantGuard guard("cuda.wgmma");
        got = conv_forward(on_cuda(x), w.to(DType::BFloat16).to(Device::cuda()),
                           b.to(DType::BFloat16).to(Device::cuda()), params, {on_cuda(residual), true});
    }
    const Tensor back = got.to(Device::host()).to(DType::Float64).contiguous();
    EXPECT_LT(testing::relative_error(back, expected), testing::kBfloat16VsFloat64Tolerance);

    const detail::ConvProblem p = problem_of(x.shape(), w.shape(), params, DType::BFloat16, MemoryFormat::ChannelsLast);
    for (ConvPass pass : {ConvPass::BackwardData, ConvPass::BackwardFilter, ConvPass::BackwardBias}) {
        EXPECT_NE(reason_of(p, pass).find("does not implement it"), std::string::npos) << reason_of(p, pass);
    }
}

// What it refuses, with the reason: float32 (no tf32 kernel), contiguous activations, channels per
// group off the 16-byte vector, padding other than zeros.
TEST_F(CudaWgmmaConv, RefusesWithTheReason) {
    const ConvParams zeros = ConvParams(2).set_padding(1);
    const Shape x{2, 16, 8, 8}, w{16, 16, 3, 3};
    EXPECT_NE(reason_of(problem_of(x, w, zeros, DType::Float32, MemoryFormat::ChannelsLast), ConvPass::Forward)
                  .find("does not compute float32"),
              std::string::npos);
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
