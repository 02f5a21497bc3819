// The warpgroup-MMA implicit-GEMM convolution (kernels/conv_wgmma.h, sm_90a) as the variant
// `cuda.wgmma`: the forward pass, and backward-data at stride 1; bfloat16 and float16 operands with
// float32 accumulation (channels per group a multiple of 8), and float32 ones as tf32 where the
// math mode allows it (as cuda.igemm; 4 channels a group), channels-last activations, zeros
// padding, on devices of compute capability 9.0 exactly (H100, H200: wgmma exists only in sm_90a
// code) and in builds that hold that code (CMAKE_CUDA_ARCHITECTURES with 90). Not a default: the
// CUDA backend's default list (backend_api/selection.cpp) keeps cuda.igemm; this one runs when
// named (CONVKIT_CONV_VARIANT, VariantGuard, convkit-bench --variant) or chosen by measured
// selection.
//
// Like cuda.igemm it permutes convkit's [K, C/groups, taps] weight into KRSC in its workspace
// (backends/cuda/conv_weight_layout.h) and widens the bias to float32 for the fused epilogue
// (backends/cuda/igemm_variant_support.h); it does not pad channels (cuda.igemm's stem path) nor
// split K: a problem it refuses goes to the default variants.
//
// Backward-data at stride 1 is itself a convolution, run by the same forward kernel: dx[i] =
// sum over taps t of dy[i + p - t d] w[t] = sum over t' = R - 1 - t of dy[i - p' + t' d] w[R - 1 - t'],
// a forward over dy (K channels in, C out, per group) with the taps reversed, padding
// p' = d (R - 1) - p and the same dilation, whose output has dx's size. Its weight is the
// convolution's with each group's channels swapped and the taps reversed
// (kernels::backward_data_conv_weight), in the workspace; p' must not be negative (padding past
// the kernel's reach is refused). A stride leaves phases of dx that the forward kernel's epilogue
// cannot write (cuda.igemm runs them): refused.
#include <string>
#include <utility>

#include "backend_api/variant.h"
#include "backend_api/workspace_pieces.h"
#include "backends/cuda/conv_weight_layout.h"
#include "backends/cuda/igemm_variant_support.h"
#include "core/check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_wgmma.h"
#include "kernels/tensor_fill.h"

namespace convkit::detail {

namespace {

// Compute capability 9.0 exactly: sm_90a code runs on nothing else.
constexpr int kComputeCapability = 90;

class CudaWgmmaConv final : public ConvVariant {
public:
    const char* name() const override { return "cuda.wgmma"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    bool implements(ConvPass pass) const override {
        return pass == ConvPass::Forward || pass == ConvPass::BackwardData;
    }
    // Float32 only as tf32: unsupported_reason refuses it under strict math.
    bool computes(DType dtype) const override {
        return dtype == DType::BFloat16 || dtype == DType::Float16 || dtype == DType::Float32;
    }
    // The kernel's epilogue adds the bias and residual and rectifies as it writes y.
    bool fuses_epilogue() const override { return true; }

    std::string unsupported_reason(const ConvProblem& p, ConvPass pass) const override {
        if (pass != ConvPass::Forward && pass != ConvPass::BackwardData) {
            return "runs the forward and backward-data passes only";
        }
        if (std::string reason = tensor_core_operands_reason(p); !reason.empty()) return reason;
        if (const int cc = cuda_compute_capability(p.device.index); cc != kComputeCapability) {
            return concat("needs compute capability 9.0 (wgmma, sm_90a code); device ", p.device.index, " has ",
                          cc / 10, ".", cc % 10);
        }
        if (!kernels::conv_wgmma_built()) {
            return "this build has no sm_90a code for it (CMAKE_CUDA_ARCHITECTURES without 90)";
        }
        if (std::string reason = symmetric_zero_padding_reason(p.geometry); !reason.empty()) return reason;
        if (pass == ConvPass::BackwardData) {
            if (std::string reason = backward_data_reason(p.geometry); !reason.empty()) return reason;
        }
        if (std::string reason =
                kernels::conv_wgmma_unsupported_reason(shape_of(p.geometry, pass), igemm_operand(p.dtype()));
            !reason.empty()) {
            return concat("cannot run it: ", reason);
        }
        return {};
    }

    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        return WorkspacePieces::rounded(conv_weight_bytes(p.geometry, p.dtype())) +
               widened_bias_bytes(shape_of(p.geometry, pass).out_channels);
    }

    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        const ConvGeometry& g = p.geometry;
        const DType dtype = p.dtype();
        const kernels::IgemmConvShape s = shape_of(g, pass);
        WorkspacePieces pieces(workspace);
        void* krsc = pieces.take(conv_weight_bytes(g, dtype));
        if (pass == ConvPass::Forward) {
            permute_conv_weight(g, dtype, o.w, krsc, true, stream);
        } else {
            kernels::backward_data_conv_weight(o.w, krsc, dtype, g.groups, g.out_channels_per_group(),
                                               g.in_channels_per_group(), g.kernel_spatial(), stream);
        }
        kernels::IgemmEpilogue epilogue;
        if (o.bias != nullptr) {
            epilogue.bias = widened_bias(o.bias, dtype, s.out_channels, s.out_channels, pieces, stream);
        }
        epilogue.residual = o.residual;
        epilogue.relu = o.relu;
        kernels::conv_wgmma_forward(s, igemm_operand(dtype), igemm_output(dtype),
                                    pass == ConvPass::Forward ? o.x : o.dy, krsc, epilogue, o.out, stream);
    }

private:
    // Backward-data runs as a forward over dy (see the top): stride 1, and p' = d (R - 1) - p >= 0.
    static std::string backward_data_reason(const ConvGeometry& g) {
        for (int i = 0; i < 3; ++i) {
            const auto d = static_cast<std::size_t>(i);
            if (g.stride[d] != 1) {
                return concat("runs backward-data at stride 1 only (its strided phases go to cuda.igemm), not ",
                              g.stride[d]);
            }
            if (g.pad_begin[d] > g.dilation[d] * (g.kernel[d] - 1)) {
                return concat("runs backward-data with padding up to the kernel's reach only, not ", g.pad_begin[d],
                              " past ", g.dilation[d] * (g.kernel[d] - 1));
            }
        }
        return {};
    }

    // The forward the kernel runs for `pass`: the convolution itself, or for backward-data the one
    // over dy (channels swapped, dy's positions in, padding d (R - 1) - p).
    static kernels::IgemmConvShape shape_of(const ConvGeometry& g, ConvPass pass) {
        kernels::IgemmConvShape s = igemm_shape(g);
        if (pass != ConvPass::BackwardData) return s;
        std::swap(s.in_channels, s.out_channels);
        for (int i = 0; i < s.rank; ++i) {
            const auto to = static_cast<std::size_t>(i);
            const auto from = static_cast<std::size_t>(3 - g.spatial_rank + i);
            s.input[to] = g.output[from];
            s.padding[to] = g.dilation[from] * (g.kernel[from] - 1) - g.pad_begin[from];
        }
        return s;
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaWgmmaConv);

}  // namespace convkit::detail
