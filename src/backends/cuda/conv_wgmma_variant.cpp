// The warpgroup-MMA implicit-GEMM convolution (kernels/conv_wgmma.h, sm_90a) as the variant
// `cuda.wgmma`: the forward pass only, bfloat16 and float16 operands with float32 accumulation
// (channels per group a multiple of 8), channels-last activations, zeros padding, on devices of
// compute capability 9.0 exactly (H100, H200: wgmma exists only in sm_90a code) and in builds that
// hold that code (CMAKE_CUDA_ARCHITECTURES with 90). Not a default: the CUDA backend's default
// list (backend_api/selection.cpp) keeps cuda.igemm; this one runs when named
// (CONVKIT_CONV_VARIANT, VariantGuard, convkit-bench --variant) or chosen by measured selection.
//
// Like cuda.igemm it permutes convkit's [K, C/groups, taps] weight into KRSC in its workspace
// (backends/cuda/conv_weight_layout.h) and widens the bias to float32 for the fused epilogue
// (backends/cuda/igemm_variant_support.h); it does not pad channels (cuda.igemm's stem path) nor
// split K: a problem it refuses goes to the default variants.
#include <string>

#include "backend_api/variant.h"
#include "backend_api/workspace_pieces.h"
#include "backends/cuda/conv_weight_layout.h"
#include "backends/cuda/igemm_variant_support.h"
#include "core/check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_wgmma.h"

namespace convkit::detail {

namespace {

// Compute capability 9.0 exactly: sm_90a code runs on nothing else.
constexpr int kComputeCapability = 90;

class CudaWgmmaConv final : public ConvVariant {
public:
    const char* name() const override { return "cuda.wgmma"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    bool implements(ConvPass pass) const override { return pass == ConvPass::Forward; }
    bool computes(DType dtype) const override { return dtype == DType::BFloat16 || dtype == DType::Float16; }
    // The kernel's epilogue adds the bias and residual and rectifies as it writes y.
    bool fuses_epilogue() const override { return true; }

    std::string unsupported_reason(const ConvProblem& p, ConvPass pass) const override {
        if (pass != ConvPass::Forward) return "runs the forward pass only";
        if (p.x_layout != Layout::ChannelsLast || p.y_layout != Layout::ChannelsLast) {
            return "runs channels-last activations only";
        }
        if (p.w_layout != Layout::Contiguous) return "runs contiguous weights only";
        if (const int cc = cuda_compute_capability(p.device.index); cc != kComputeCapability) {
            return concat("needs compute capability 9.0 (wgmma, sm_90a code); device ", p.device.index, " has ",
                          cc / 10, ".", cc % 10);
        }
        if (!kernels::conv_wgmma_built()) {
            return "this build has no sm_90a code for it (CMAKE_CUDA_ARCHITECTURES without 90)";
        }
        if (std::string reason = symmetric_zero_padding_reason(p.geometry); !reason.empty()) return reason;
        if (std::string reason =
                kernels::conv_wgmma_unsupported_reason(igemm_shape(p.geometry), igemm_operand(p.dtype()));
            !reason.empty()) {
            return concat("cannot run it: ", reason);
        }
        return {};
    }

    std::size_t workspace(const ConvProblem& p, ConvPass) const override {
        return WorkspacePieces::rounded(conv_weight_bytes(p.geometry, p.dtype())) +
               widened_bias_bytes(p.geometry.out_channels);
    }

    void run(const ConvProblem& p, ConvPass, const ConvOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        const ConvGeometry& g = p.geometry;
        const DType dtype = p.dtype();
        WorkspacePieces pieces(workspace);
        void* krsc = pieces.take(conv_weight_bytes(g, dtype));
        permute_conv_weight(g, dtype, o.w, krsc, true, stream);
        kernels::IgemmEpilogue epilogue;
        if (o.bias != nullptr) {
            epilogue.bias = widened_bias(o.bias, dtype, g.out_channels, g.out_channels, pieces, stream);
        }
        epilogue.residual = o.residual;
        epilogue.relu = o.relu;
        kernels::conv_wgmma_forward(igemm_shape(g), igemm_operand(dtype), igemm_output(dtype), o.x, krsc, epilogue,
                                    o.out, stream);
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaWgmmaConv);

}  // namespace convkit::detail
