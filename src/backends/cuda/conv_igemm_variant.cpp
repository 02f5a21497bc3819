// The tensor-core implicit-GEMM convolution (kernels/conv_igemm.h) as the variant `cuda.igemm`:
// bfloat16 and float16 operands with float32 accumulation (channels per group a multiple of 8),
// and float32 ones as tf32 where the problem's math mode allows it (MathMode::AllowTF32 or
// AllowReduced, as cuBLAS and cuDNN read them; channels per group a multiple of 4; strict
// float32 is refused and goes on to cuda.tiled); channels-last activations, zeros padding, on
// devices of compute capability 8.0 or later. The CUDA backend's default runs it wherever it
// applies (backend_api/selection.cpp).
//
// Tiles: `cuda.igemm` picks its block tile per problem from the GEMM's shape
// (conv_igemm_default_tile: 128x128 where that gives at least two blocks per SM of an H100, else
// 64x64; backward-data per phase of the stride, from the phase's GEMM); `cuda.igemm.large` and `cuda.igemm.small`
// always use one, so that measured selection (VariantSelection::Measured) times both tiles on the real problem and
// keeps the faster. Every pass splits its GEMM's k (split-K, kernels/conv_igemm.h's IgemmSchedule) where the output
// tiles alone leave the GPU's SMs idle, as at small batches and in the late layers; the split slices take workspace.
// `cuda.igemm.unsplit` never splits the forward and backward-data (backward-filter, whose k is the batch's positions,
// splits as `cuda.igemm`'s), so that measured selection and convkit-bench's --variant time the split against none.
//
// convkit's weights are [K, C/groups, taps] and contiguous; the kernels read them KRSC
// ([K, taps, C/groups], the weight's channels-last order). The variant permutes the weight into
// its workspace before the forward and backward-data passes and the filter gradient back from
// it (backends/cuda/conv_weight_layout.h, shared with the cudnn variant), and widens the bias to the float32 the fused
// epilogue adds: a weight-sized copy per call, small beside the activations of the layers this path is for.
#include <cstdint>
#include <optional>
#include <string>

#include "backend_api/variant.h"
#include "backend_api/workspace_pieces.h"
#include "core/check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_bias_grad.h"
#include "kernels/conv_igemm.h"
#include "backends/cuda/conv_weight_layout.h"
#include "kernels/tensor_fill.h"

namespace convkit::detail {

namespace {
using kernels::IgemmConvShape;

// Compute capability 8.0: mma.sync on bf16/f16/tf32 and cp.async.
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

// The kernels' operand and output for a dtype the variant computes: float32 runs as tf32.
kernels::IgemmOperand igemm_operand(DType dtype) {
    return dtype == DType::BFloat16  ? kernels::IgemmOperand::BFloat16
           : dtype == DType::Float16 ? kernels::IgemmOperand::Float16
                                     : kernels::IgemmOperand::TensorFloat32;
}

kernels::IgemmOutput igemm_output(DType dtype) {
    return dtype == DType::BFloat16  ? kernels::IgemmOutput::BFloat16
           : dtype == DType::Float16 ? kernels::IgemmOutput::Float16
                                     : kernels::IgemmOutput::Float32;
}

// Why the kernels cannot run the geometry (empty when they can): they pad with zeros, the same
// on both sides, and produce every output position of the padded input, within their limits.
std::string geometry_reason(const ConvGeometry& g, DType dtype) {
    if (std::string reason = symmetric_zero_padding_reason(g); !reason.empty()) return reason;
    if (std::string reason = kernels::conv_igemm_unsupported_reason(igemm_shape(g), igemm_operand(dtype));
        !reason.empty()) {
        return concat("cannot run it: ", reason);
    }
    return {};
}

// The channels of a pass's fused bias: the convolution's output channels for the forward, its
// input channels (the transposed convolution's output) for backward-data.
std::int64_t bias_channels(const ConvGeometry& g, ConvPass pass) {
    return pass == ConvPass::Forward ? g.out_channels : g.in_channels;
}

class CudaIgemmConv : public ConvVariant {
public:
    // `tile`: the block tile of every launch, or none for the per-shape choice; `splits`: the
    // forward's and backward-data's split-K, or none for the per-launch default.
    explicit CudaIgemmConv(const char* name = "cuda.igemm", std::optional<kernels::IgemmTile> tile = std::nullopt,
                           std::optional<int> splits = std::nullopt)
        : name_(name), tile_(tile), splits_(splits) {}
    const char* name() const override { return name_; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    // Float32 only as tf32: unsupported_reason refuses it under strict math.
    bool computes(DType dtype) const override {
        return dtype == DType::BFloat16 || dtype == DType::Float16 || dtype == DType::Float32;
    }
    // The kernels' epilogue adds the residual and rectifies in the pass that writes the output.
    bool fuses_epilogue() const override { return true; }

    std::string unsupported_reason(const ConvProblem& p, ConvPass pass) const override {
        if (p.dtype() == DType::Float32 && p.math == MathMode::Strict) {
            return "computes float32 on tf32 tensor cores only, which strict math forbids (MathMode::AllowTF32)";
        }
        if (p.x_layout != Layout::ChannelsLast || p.y_layout != Layout::ChannelsLast) {
            return "runs channels-last activations only";
        }
        if (p.w_layout != Layout::Contiguous) return "runs contiguous weights only";
        if (const int cc = cuda_compute_capability(p.device.index); cc < kMinimumComputeCapability) {
            return concat("needs compute capability 8.0 or later (mma.sync on 16-bit operands, cp.async); device ",
                          p.device.index, " has ", cc / 10, ".", cc % 10);
        }
        return pass == ConvPass::BackwardBias ? std::string() : geometry_reason(p.geometry, p.dtype());
    }

    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        const ConvGeometry& g = p.geometry;
        switch (pass) {
            case ConvPass::Forward:
            case ConvPass::BackwardData:
                return WorkspacePieces::rounded(conv_weight_bytes(g, p.dtype())) +
                       WorkspacePieces::rounded(static_cast<std::size_t>(bias_channels(g, pass)) * sizeof(float)) +
                       WorkspacePieces::rounded(plan(p, pass).workspace_bytes());
            case ConvPass::BackwardFilter: {
                const IgemmConvShape s = igemm_shape(g);
                const kernels::IgemmOperand operand = igemm_operand(p.dtype());
                const int splits = kernels::conv_igemm_backward_filter_default_splits(s, operand, tile_for(s));
                return WorkspacePieces::rounded(conv_weight_bytes(g, p.dtype())) +
                       WorkspacePieces::rounded(
                           kernels::conv_igemm_backward_filter_workspace_bytes(s, operand, splits));
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
        const kernels::IgemmOperand operand = igemm_operand(p.dtype());
        const kernels::IgemmOutput output = igemm_output(p.dtype());
        const kernels::IgemmTile tile = tile_for(s);
        WorkspacePieces pieces(workspace);
        void* krsc = pieces.take(conv_weight_bytes(g, p.dtype()));
        if (pass == ConvPass::BackwardFilter) {
            const int splits = kernels::conv_igemm_backward_filter_default_splits(s, operand, tile);
            void* partial = pieces.take(kernels::conv_igemm_backward_filter_workspace_bytes(s, operand, splits));
            kernels::conv_igemm_backward_filter(s, operand, output, tile, splits, o.dy, o.x, nullptr, krsc, partial,
                                                stream);
            permute_conv_weight(g, p.dtype(), krsc, o.out, false, stream);
            return;
        }
        permute_conv_weight(g, p.dtype(), o.w, krsc, true, stream);
        kernels::IgemmEpilogue epilogue;
        if (o.bias != nullptr) {
            const std::int64_t channels = bias_channels(g, pass);
            auto* bias = static_cast<float*>(pieces.take(static_cast<std::size_t>(channels) * sizeof(float)));
            kernels::convert(o.bias, p.dtype(), bias, DType::Float32, channels, stream);
            epilogue.bias = bias;
        }
        epilogue.residual = o.residual;
        epilogue.relu = o.relu;
        void* slices = pieces.take(plan(p, pass).workspace_bytes());
        if (pass == ConvPass::Forward) {
            kernels::conv_igemm_forward(s, operand, output, schedule(), o.x, krsc, epilogue, o.out, slices, stream);
        } else {
            kernels::conv_igemm_backward_data(s, operand, output, schedule(), o.dy, krsc, epilogue, o.out, slices,
                                              stream);
        }
    }

private:
    // Each launch (backward-data: each phase of the stride) chooses its own tile and split-K
    // unless this variant forces them.
    kernels::IgemmSchedule schedule() const { return {tile_, splits_}; }

    // The launches of the forward or backward-data pass, for their split slices' workspace.
    kernels::IgemmPlan plan(const ConvProblem& p, ConvPass pass) const {
        const IgemmConvShape s = igemm_shape(p.geometry);
        return pass == ConvPass::Forward
                   ? kernels::conv_igemm_forward_plan(s, igemm_operand(p.dtype()), schedule())
                   : kernels::conv_igemm_backward_data_plan(s, igemm_operand(p.dtype()), schedule());
    }

    kernels::IgemmTile tile_for(const IgemmConvShape& s) const {
        return tile_.value_or(kernels::conv_igemm_default_tile(s));
    }

    const char* name_;
    std::optional<kernels::IgemmTile> tile_;
    std::optional<int> splits_;
};

class CudaIgemmLargeTileConv final : public CudaIgemmConv {
public:
    CudaIgemmLargeTileConv() : CudaIgemmConv("cuda.igemm.large", kernels::IgemmTile::Large) {}
};

class CudaIgemmSmallTileConv final : public CudaIgemmConv {
public:
    CudaIgemmSmallTileConv() : CudaIgemmConv("cuda.igemm.small", kernels::IgemmTile::Small) {}
};

class CudaIgemmUnsplitConv final : public CudaIgemmConv {
public:
    CudaIgemmUnsplitConv() : CudaIgemmConv("cuda.igemm.unsplit", std::nullopt, 1) {}
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaIgemmConv);
CONVKIT_REGISTER_CONV_VARIANT(CudaIgemmLargeTileConv);
CONVKIT_REGISTER_CONV_VARIANT(CudaIgemmSmallTileConv);
CONVKIT_REGISTER_CONV_VARIANT(CudaIgemmUnsplitConv);

}  // namespace convkit::detail
