// The warpgroup-MMA implicit-GEMM convolution (kernels/conv_wgmma.h, sm_90a) as the variant
// `cuda.wgmma`: the forward pass, backward-data (sub-pixel per phase of the stride, as
// cuda.igemm: uniform phases in one launch) and backward-filter (split-K over the positions, its
// tiles MN-major: bfloat16 and float16 only); bfloat16 and float16 operands with float32
// accumulation (channels per group a multiple of 8), and float32 ones as tf32 where the math mode
// allows it (as cuda.igemm; 4 channels a group; not backward-filter), channels-last activations,
// zeros padding, on
// devices of compute capability 9.0 exactly (H100, H200: wgmma exists only in sm_90a code) and in
// builds that hold that code (CMAKE_CUDA_ARCHITECTURES with 90). Not a default: the CUDA
// backend's default list (backend_api/selection.cpp) keeps cuda.igemm; this one runs when named
// (CONVKIT_CONV_VARIANT, VariantGuard, convkit-bench --variant) or chosen by measured selection.
//
// Like cuda.igemm it permutes convkit's [K, C/groups, taps] weight in its workspace: into KRSC
// for the forward (backends/cuda/conv_weight_layout.h), and for backward-data into
// [C/groups, taps reversed, K/groups] per group (kernels::backward_data_conv_weight), since
// wgmma reads B K-major: each dx channel's row contiguous along (tap, K); backward-filter writes
// KRSC there and permutes it back. It widens the bias to float32 for the fused epilogue
// (backends/cuda/igemm_variant_support.h). Every pass splits K by the kernels' default plan where
// its output tiles fill less than half a wave, the slices in the workspace too. It does not pad
// channels (cuda.igemm's stem path): a problem it refuses goes to the default variants.
#include <cstdint>
#include <optional>
#include <string>

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

class CudaWgmmaConv : public ConvVariant {
public:
    CudaWgmmaConv() = default;
    const char* name() const override { return name_; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    bool implements(ConvPass pass) const override { return pass != ConvPass::BackwardBias; }
    // Float32 only as tf32: unsupported_reason refuses it under strict math.
    bool computes(DType dtype) const override {
        return dtype == DType::BFloat16 || dtype == DType::Float16 || dtype == DType::Float32;
    }
    // The kernel's epilogue adds the bias and residual and rectifies as it writes y.
    bool fuses_epilogue() const override { return true; }

    std::string unsupported_reason(const ConvProblem& p, ConvPass pass) const override {
        if (!implements(pass)) return "runs the forward, backward-data and backward-filter passes only";
        if (std::string reason = tensor_core_operands_reason(p); !reason.empty()) return reason;
        if (const int cc = cuda_compute_capability(p.device.index); cc != kComputeCapability) {
            return concat("needs compute capability 9.0 (wgmma, sm_90a code); device ", p.device.index, " has ",
                          cc / 10, ".", cc % 10);
        }
        if (!kernels::conv_wgmma_built()) {
            return "this build has no sm_90a code for it (CMAKE_CUDA_ARCHITECTURES without 90)";
        }
        if (std::string reason = symmetric_zero_padding_reason(p.geometry); !reason.empty()) return reason;
        const kernels::IgemmConvShape s = igemm_shape(p.geometry);
        const kernels::IgemmOperand operand = igemm_operand(p.dtype());
        if (std::string reason = pass == ConvPass::BackwardFilter
                                     ? kernels::conv_wgmma_backward_filter_unsupported_reason(s, operand, schedule())
                                     : kernels::conv_wgmma_unsupported_reason(s, operand);
            !reason.empty()) {
            return concat("cannot run it: ", reason);
        }
        return {};
    }

    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        const std::size_t weight = WorkspacePieces::rounded(conv_weight_bytes(p.geometry, p.dtype()));
        if (pass == ConvPass::BackwardFilter) return weight + WorkspacePieces::rounded(filter_slice_bytes(p.geometry));
        return weight + WorkspacePieces::rounded(gemm_plan(p, pass).workspace_bytes()) +
               widened_bias_bytes(written_channels(p.geometry, pass));
    }

    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        const ConvGeometry& g = p.geometry;
        const DType dtype = p.dtype();
        const kernels::IgemmConvShape s = igemm_shape(g);
        WorkspacePieces pieces(workspace);
        void* weight = pieces.take(conv_weight_bytes(g, dtype));
        if (pass == ConvPass::BackwardFilter) {
            void* slices = pieces.take(filter_slice_bytes(g));
            kernels::conv_wgmma_backward_filter(s, igemm_operand(dtype), igemm_output(dtype), schedule(), o.dy, o.x,
                                                nullptr, weight, slices, stream);
            permute_conv_weight(g, dtype, weight, o.out, false, stream);  // KRSC back to [K, C/g, taps]
            return;
        }
        void* slices = pieces.take(gemm_plan(p, pass).workspace_bytes());
        kernels::IgemmEpilogue epilogue;
        if (o.bias != nullptr) {
            const std::int64_t channels = written_channels(g, pass);
            epilogue.bias = widened_bias(o.bias, dtype, channels, channels, pieces, stream);
        }
        epilogue.residual = o.residual;
        epilogue.relu = o.relu;
        if (pass == ConvPass::Forward) {
            permute_conv_weight(g, dtype, o.w, weight, true, stream);
            kernels::conv_wgmma_forward(s, igemm_operand(dtype), igemm_output(dtype), schedule(), o.x, weight, epilogue,
                                        o.out, slices, stream);
        } else {
            kernels::backward_data_conv_weight(o.w, weight, dtype, g.groups, g.out_channels_per_group(),
                                               g.in_channels_per_group(), g.kernel_spatial(), stream);
            kernels::conv_wgmma_backward_data(s, igemm_operand(dtype), igemm_output(dtype), schedule(), o.dy, weight,
                                              epilogue, o.out, slices, stream);
        }
    }

protected:
    CudaWgmmaConv(const char* name, bool producer_warpgroup) : name_(name), producer_warpgroup_(producer_warpgroup) {}

private:
    kernels::WgmmaSchedule schedule() const { return {std::nullopt, producer_warpgroup_}; }

    // The plan of the forward's or backward-data's GEMMs (their default split slices).
    kernels::WgmmaPlan gemm_plan(const ConvProblem& p, ConvPass pass) const {
        const kernels::IgemmConvShape s = igemm_shape(p.geometry);
        const kernels::IgemmOperand operand = igemm_operand(p.dtype());
        return pass == ConvPass::Forward ? kernels::conv_wgmma_forward_plan(s, operand, schedule())
                                         : kernels::conv_wgmma_backward_data_plan(s, operand, schedule());
    }

    // Backward-filter's split slices (its default split).
    static std::size_t filter_slice_bytes(const ConvGeometry& g) {
        const kernels::IgemmConvShape s = igemm_shape(g);
        return kernels::conv_wgmma_backward_filter_workspace_bytes(s,
                                                                   kernels::conv_wgmma_backward_filter_plan(s).splits);
    }

    // The channels of the tensor a pass writes, and of its fused bias: y's forward, dx's (the
    // transposed convolution's) backward-data.
    static std::int64_t written_channels(const ConvGeometry& g, ConvPass pass) {
        return pass == ConvPass::Forward ? g.out_channels : g.in_channels;
    }

    const char* name_ = "cuda.wgmma";
    bool producer_warpgroup_ = false;
};

// The same kernels with a producer warpgroup: a third warpgroup copies every k tile and hands
// the stages over on mbarriers (kernels::WgmmaSchedule); every pass (backward-filter where both
// of its operands can come by bulk copies, refused with the reason elsewhere). Beside
// cuda.wgmma for measured selection and the bench until a GPU run says which ring is faster.
class CudaWgmmaProducerConv final : public CudaWgmmaConv {
public:
    CudaWgmmaProducerConv() : CudaWgmmaConv("cuda.wgmma.producer", true) {}
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaWgmmaConv);
CONVKIT_REGISTER_CONV_VARIANT(CudaWgmmaProducerConv);

}  // namespace convkit::detail
