// The tensor-core implicit-GEMM convolution (kernels/conv_igemm.h) as the variant `cuda.igemm`:
// bfloat16 and float16 operands with float32 accumulation, channels-last activations, channels
// per group a multiple of 8, zeros padding, on devices of compute capability 8.0 or later. The
// CUDA backend's default runs it wherever it applies (backend_api/selection.cpp).
//
// convkit's weights are [K, C/groups, taps] and contiguous; the kernels read them KRSC
// ([K, taps, C/groups], the weight's channels-last order). The variant permutes the weight into
// its workspace before the forward and backward-data passes and the filter gradient back from
// it, and widens the bias to the float32 the fused epilogue adds: a weight-sized copy per call,
// small beside the activations of the layers this path is for.
#include <cstdint>
#include <string>

#include "backend_api/variant.h"
#include "core/check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_bias_grad.h"
#include "kernels/conv_igemm.h"
#include "kernels/tensor_fill.h"

namespace convkit::detail {

namespace {
using kernels::IgemmConvShape;

// Compute capability 8.0: mma.sync on bf16/f16 and cp.async.
constexpr int kMinimumComputeCapability = 80;

// The convolution in the kernels' terms: the used dims first (the geometry right-aligns them).
IgemmConvShape igemm_shape(const ConvGeometry& g) {
    IgemmConvShape s;
    s.rank = g.spatial_rank;
    s.batch = g.batch;
    s.in_channels = g.in_channels;
    s.out_channels = g.out_channels;
    s.groups = g.groups;
    for (int i = 0; i < g.spatial_rank; ++i) {
        const auto to = static_cast<std::size_t>(i);
        const auto from = static_cast<std::size_t>(3 - g.spatial_rank + i);
        s.input[to] = g.input[from];
        s.kernel[to] = g.kernel[from];
        s.stride[to] = g.stride[from];
        s.padding[to] = g.pad_begin[from];
        s.dilation[to] = g.dilation[from];
    }
    return s;
}

// Why the kernels cannot run the geometry (empty when they can): they pad with zeros, the same
// on both sides, and produce every output position of the padded input.
std::string geometry_reason(const ConvGeometry& g) {
    if (g.padding_mode != PaddingMode::Zeros) {
        return concat("runs zeros padding only, not ", padding_mode_name(g.padding_mode));
    }
    if (g.pad_begin != g.pad_end) return "runs the same padding before and after only ('same' with an even kernel is not)";
    const IgemmConvShape s = igemm_shape(g);
    const auto output = s.output();
    for (int i = 0; i < g.spatial_rank; ++i) {
        if (output[static_cast<std::size_t>(i)] != g.output[static_cast<std::size_t>(3 - g.spatial_rank + i)]) {
            return "runs convolutions whose output covers the padded input only (a transposed convolution's "
                   "output_padding of a stride or more does not)";
        }
    }
    if (std::string reason = kernels::conv_igemm_unsupported_reason(s); !reason.empty()) {
        return concat("cannot run it: ", reason);
    }
    return {};
}

// Consecutive pieces of a workspace, each aligned for the kernels' 16-byte vector loads.
class WorkspacePieces {
public:
    static constexpr std::size_t kAlignment = 256;
    static std::size_t rounded(std::size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

    explicit WorkspacePieces(WorkspaceView workspace) : base_(static_cast<char*>(workspace.data)) {}
    void* take(std::size_t bytes) {
        if (bytes == 0) return nullptr;
        void* piece = base_ + offset_;
        offset_ += rounded(bytes);
        return piece;
    }

private:
    char* base_;
    std::size_t offset_ = 0;
};

std::size_t weight_bytes(const ConvGeometry& g) {
    return static_cast<std::size_t>(g.out_channels * g.in_channels_per_group() * g.kernel_spatial()) * 2;
}

// The channels of a pass's fused bias: the convolution's output channels for the forward, its
// input channels (the transposed convolution's output) for backward-data.
std::int64_t bias_channels(const ConvGeometry& g, ConvPass pass) {
    return pass == ConvPass::Forward ? g.out_channels : g.in_channels;
}

class CudaIgemmConv final : public ConvVariant {
public:
    const char* name() const override { return "cuda.igemm"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    bool computes(DType dtype) const override { return dtype == DType::BFloat16 || dtype == DType::Float16; }

    std::string unsupported_reason(const ConvProblem& p, ConvPass pass) const override {
        if (p.x_layout != Layout::ChannelsLast || p.y_layout != Layout::ChannelsLast) {
            return "runs channels-last activations only";
        }
        if (p.w_layout != Layout::Contiguous) return "runs contiguous weights only";
        if (const int cc = cuda_compute_capability(p.device.index); cc < kMinimumComputeCapability) {
            return concat("needs compute capability 8.0 or later (mma.sync on 16-bit operands, cp.async); device ",
                          p.device.index, " has ", cc / 10, ".", cc % 10);
        }
        return pass == ConvPass::BackwardBias ? std::string() : geometry_reason(p.geometry);
    }

    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        const ConvGeometry& g = p.geometry;
        switch (pass) {
            case ConvPass::Forward:
            case ConvPass::BackwardData:
                return WorkspacePieces::rounded(weight_bytes(g)) +
                       WorkspacePieces::rounded(static_cast<std::size_t>(bias_channels(g, pass)) * sizeof(float));
            case ConvPass::BackwardFilter: {
                const IgemmConvShape s = igemm_shape(g);
                const int splits = kernels::conv_igemm_backward_filter_default_splits(s, kernels::conv_igemm_default_tile(s));
                return WorkspacePieces::rounded(weight_bytes(g)) +
                       WorkspacePieces::rounded(kernels::conv_igemm_backward_filter_workspace_bytes(s, splits));
            }
            case ConvPass::BackwardBias:
                return kernels::conv_backward_bias_channels_last_workspace_bytes(
                    p.bias_grad.batch * p.bias_grad.spatial, p.bias_grad.channels, p.dtype());
        }
        return 0;
    }

    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        const ConvGeometry& g = p.geometry;
        if (pass == ConvPass::BackwardBias) {
            kernels::conv_backward_bias_channels_last(p.bias_grad.batch * p.bias_grad.spatial, p.bias_grad.channels,
                                                      p.dtype(), o.dy, o.out, workspace.data, stream);
            return;
        }
        const IgemmConvShape s = igemm_shape(g);
        const bool bf16 = p.dtype() == DType::BFloat16;
        const auto operand = bf16 ? kernels::IgemmOperand::BFloat16 : kernels::IgemmOperand::Float16;
        const auto output = bf16 ? kernels::IgemmOutput::BFloat16 : kernels::IgemmOutput::Float16;
        const kernels::IgemmTile tile = kernels::conv_igemm_default_tile(s);
        const std::int64_t filters = g.out_channels, filter_channels = g.in_channels_per_group();
        WorkspacePieces pieces(workspace);
        void* krsc = pieces.take(weight_bytes(g));
        if (pass == ConvPass::BackwardFilter) {
            const int splits = kernels::conv_igemm_backward_filter_default_splits(s, tile);
            void* partial = pieces.take(kernels::conv_igemm_backward_filter_workspace_bytes(s, splits));
            kernels::conv_igemm_backward_filter(s, operand, output, tile, splits, o.dy, o.x, nullptr, krsc, partial,
                                                stream);
            kernels::permute_channels(krsc, o.out, p.dtype(), filters, filter_channels, g.kernel_spatial(), false,
                                      stream);
            return;
        }
        kernels::permute_channels(o.w, krsc, p.dtype(), filters, filter_channels, g.kernel_spatial(), true, stream);
        kernels::IgemmEpilogue epilogue;
        if (o.bias != nullptr) {
            const std::int64_t channels = bias_channels(g, pass);
            auto* bias = static_cast<float*>(pieces.take(static_cast<std::size_t>(channels) * sizeof(float)));
            kernels::convert(o.bias, p.dtype(), bias, DType::Float32, channels, stream);
            epilogue.bias = bias;
        }
        if (pass == ConvPass::Forward) {
            kernels::conv_igemm_forward(s, operand, output, tile, o.x, krsc, epilogue, o.out, stream);
        } else {
            kernels::conv_igemm_backward_data(s, operand, output, tile, o.dy, krsc, epilogue, o.out, stream);
        }
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaIgemmConv);

}  // namespace convkit::detail
