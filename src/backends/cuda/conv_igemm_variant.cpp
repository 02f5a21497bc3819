// The tensor-core implicit-GEMM convolution (kernels/conv_igemm.h) as the variant `cuda.igemm`:
// bfloat16 and float16 operands with float32 accumulation (channels per group a multiple of 8),
// and float32 ones as tf32 where the problem's math mode allows it (MathMode::AllowTF32 or
// AllowReduced, as cuBLAS and cuDNN read them; channels per group a multiple of 4; strict
// float32 is refused and goes on to cuda.tiled); channels-last activations, zeros padding, on
// devices of compute capability 8.0 or later. The CUDA backend's default runs it wherever it
// applies (backend_api/selection.cpp).
//
// Tiles: `cuda.igemm` picks its block tile per problem from the GEMM's shape
// (conv_igemm_default_tile: 128x128 where that gives at least two blocks per SM of an H100, 128x64
// there for GEMMs of at most 64 columns, else 64x64; backward-data per phase of the stride, from
// the phase's GEMM; backward-filter square tiles only); `cuda.igemm.large` and `cuda.igemm.small`
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
// epilogue adds (backends/cuda/igemm_variant_support.h, shared with cuda.wgmma): a weight-sized copy per call, small
// beside the activations of the layers this path is for. An ungrouped convolution whose input channels are not a
// multiple of the kernels' 16-byte vector (a stem's 3, a grayscale image's 1, a transposed convolution's 3 outputs)
// runs with them zero-padded to the next multiple in the workspace (kernel_geometry): x or dx copied widened, dx and dw
// copied back narrowed.
#include <cstdint>
#include <optional>
#include <string>

#include "backend_api/variant.h"
#include "backend_api/workspace_pieces.h"
#include "backends/cuda/conv_weight_layout.h"
#include "backends/cuda/igemm_variant_support.h"
#include "core/check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_bias_grad.h"
#include "kernels/conv_igemm.h"
#include "kernels/shape_ops.h"

namespace convkit::detail {

namespace {
using kernels::IgemmConvShape;

// Compute capability 8.0: mma.sync on bf16/f16/tf32 and cp.async.
constexpr int kMinimumComputeCapability = 80;

// Channels one 16-byte cp.async vector holds: 8 16-bit values, 4 tf32.
std::int64_t vector_channels(DType dtype) {
    return dtype == DType::Float32 ? 4 : 8;
}

// The convolution as the kernels run it. Their 16-byte copies need channels per group a multiple
// of the vector; an ungrouped convolution with other input channels (a stem's 3, a grayscale
// image's 1, a transposed convolution's 3 output channels) runs with them padded with zeros to the
// next multiple: x (dx for backward-data) and the weight are copied widened into the workspace,
// the zero channels add nothing to any sum, and dx and dw are copied back narrowed.
ConvGeometry kernel_geometry(const ConvGeometry& g, DType dtype) {
    ConvGeometry k = g;
    const std::int64_t vector = vector_channels(dtype);
    if (g.groups == 1) k.in_channels = (g.in_channels + vector - 1) / vector * vector;
    return k;
}

// Why the kernels cannot run the geometry (empty when they can): they pad with zeros, the same
// on both sides, and produce every output position of the padded input, within their limits.
std::string geometry_reason(const ConvGeometry& g, DType dtype) {
    if (std::string reason = symmetric_zero_padding_reason(g); !reason.empty()) return reason;
    if (std::string reason =
            kernels::conv_igemm_unsupported_reason(igemm_shape(kernel_geometry(g, dtype)), igemm_operand(dtype));
        !reason.empty()) {
        return concat("cannot run it: ", reason);
    }
    return {};
}

// Copies `rows` rows of `from_channels` elements into rows of `to_channels`: each row's first
// min(from, to) channels, and zeros in the channels a widened row adds (one kernel, one pass).
// Channels-last activations are rows of channels per position, KRSC weights per (output
// channel, tap).
void copy_channel_rows(const void* from, std::int64_t from_channels, void* to, std::int64_t to_channels,
                       std::int64_t rows, DType dtype, Stream stream) {
    kernels::copy_channel_rows(ChannelRowsGeometry{rows, from_channels, to_channels}, dtype_size(dtype), from, to,
                               stream);
}

// The workspace a pass takes for the channel padding (all 0 without it): the widened x (forward,
// backward-filter) or dx (backward-data), and the weight in KRSC at its own channels, between
// convkit's KCRS and the kernels' widened KRSC.
struct ChannelPadding {
    std::int64_t channels = 0, kernel_channels = 0;  // per position: the problem's, the kernels'
    std::size_t activation_bytes = 0, narrow_weight_bytes = 0;

    ChannelPadding(const ConvGeometry& g, DType dtype) {
        channels = g.in_channels;
        kernel_channels = kernel_geometry(g, dtype).in_channels;
        if (pads()) {
            activation_bytes =
                static_cast<std::size_t>(g.batch * g.input_spatial() * kernel_channels) * dtype_size(dtype);
            narrow_weight_bytes = conv_weight_bytes(g, dtype);
        }
    }
    bool pads() const { return kernel_channels != channels; }
    std::size_t bytes() const {
        return WorkspacePieces::rounded(activation_bytes) + WorkspacePieces::rounded(narrow_weight_bytes);
    }
};

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
        if (std::string reason = tensor_core_operands_reason(p); !reason.empty()) return reason;
        if (const int cc = cuda_compute_capability(p.device.index); cc < kMinimumComputeCapability) {
            return concat("needs compute capability 8.0 or later (mma.sync on 16-bit operands, cp.async); device ",
                          p.device.index, " has ", cc / 10, ".", cc % 10);
        }
        return pass == ConvPass::BackwardBias ? std::string() : geometry_reason(p.geometry, p.dtype());
    }

    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        const ConvGeometry kg = kernel_geometry(p.geometry, p.dtype());
        const std::size_t weight_and_padding =
            WorkspacePieces::rounded(conv_weight_bytes(kg, p.dtype())) + ChannelPadding(p.geometry, p.dtype()).bytes();
        switch (pass) {
            case ConvPass::Forward:
            case ConvPass::BackwardData:
                return weight_and_padding + widened_bias_bytes(bias_channels(kg, pass)) +
                       WorkspacePieces::rounded(plan(p, pass).workspace_bytes());
            case ConvPass::BackwardFilter:
                return weight_and_padding + WorkspacePieces::rounded(filter_slice_bytes(p));
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
        const DType dtype = p.dtype();
        const ConvGeometry kg = kernel_geometry(g, dtype);
        const IgemmConvShape s = igemm_shape(kg);
        const kernels::IgemmOperand operand = igemm_operand(dtype);
        const kernels::IgemmOutput output = igemm_output(dtype);
        const ChannelPadding padding(g, dtype);
        const std::int64_t weight_rows = g.out_channels * g.kernel_spatial(), positions = g.batch * g.input_spatial();
        WorkspacePieces pieces(workspace);
        void* krsc = pieces.take(conv_weight_bytes(kg, dtype));
        void* narrow_krsc = pieces.take(padding.narrow_weight_bytes);
        void* wide = pieces.take(padding.activation_bytes);  // x or dx at the kernels' channels
        const auto widened_x = [&] {
            if (!padding.pads()) return o.x;
            copy_channel_rows(o.x, padding.channels, wide, padding.kernel_channels, positions, dtype, stream);
            return static_cast<const void*>(wide);
        };
        if (pass == ConvPass::BackwardFilter) {
            const kernels::IgemmTile tile = filter_tile_for(s);
            const int splits = kernels::conv_igemm_backward_filter_default_splits(s, operand, tile);
            void* partial = pieces.take(kernels::conv_igemm_backward_filter_workspace_bytes(s, operand, splits));
            kernels::conv_igemm_backward_filter(s, operand, output, tile, splits, o.dy, widened_x(), nullptr, krsc,
                                                partial, stream);
            if (padding.pads()) {
                copy_channel_rows(krsc, padding.kernel_channels, narrow_krsc, padding.channels, weight_rows, dtype,
                                  stream);
            }
            permute_conv_weight(g, dtype, padding.pads() ? narrow_krsc : krsc, o.out, false, stream);
            return;
        }
        if (padding.pads()) {
            permute_conv_weight(g, dtype, o.w, narrow_krsc, true, stream);
            copy_channel_rows(narrow_krsc, padding.channels, krsc, padding.kernel_channels, weight_rows, dtype, stream);
        } else {
            permute_conv_weight(g, dtype, o.w, krsc, true, stream);
        }
        kernels::IgemmEpilogue epilogue;
        if (o.bias != nullptr) {
            epilogue.bias =
                widened_bias(o.bias, dtype, bias_channels(g, pass), bias_channels(kg, pass), pieces, stream);
        }
        epilogue.residual = o.residual;
        epilogue.relu = o.relu;
        void* slices = pieces.take(plan(p, pass).workspace_bytes());
        if (pass == ConvPass::Forward) {
            kernels::conv_igemm_forward(s, operand, output, schedule(), widened_x(), krsc, epilogue, o.out, slices,
                                        stream);
            return;
        }
        // Backward-data writes dx at the kernels' channels, then narrows it; a residual goes in
        // widened first and accumulates there in place.
        void* dx = padding.pads() ? wide : o.out;
        if (padding.pads() && o.residual != nullptr) {
            copy_channel_rows(o.residual, padding.channels, wide, padding.kernel_channels, positions, dtype, stream);
            epilogue.residual = wide;
        }
        kernels::conv_igemm_backward_data(s, operand, output, schedule(), o.dy, krsc, epilogue, dx, slices, stream);
        if (padding.pads()) {
            copy_channel_rows(wide, padding.kernel_channels, o.out, padding.channels, positions, dtype, stream);
        }
    }

private:
    // Each launch (backward-data: each phase of the stride, or all of them in one launch where
    // they are the same GEMM) chooses its own tile and split-K unless this variant forces them.
    kernels::IgemmSchedule schedule() const { return {tile_, splits_}; }

    // The launches of the forward or backward-data pass, for their split slices' workspace.
    kernels::IgemmPlan plan(const ConvProblem& p, ConvPass pass) const {
        const IgemmConvShape s = igemm_shape(kernel_geometry(p.geometry, p.dtype()));
        return pass == ConvPass::Forward
                   ? kernels::conv_igemm_forward_plan(s, igemm_operand(p.dtype()), schedule())
                   : kernels::conv_igemm_backward_data_plan(s, igemm_operand(p.dtype()), schedule());
    }

    // Backward-filter's split slices.
    std::size_t filter_slice_bytes(const ConvProblem& p) const {
        const IgemmConvShape s = igemm_shape(kernel_geometry(p.geometry, p.dtype()));
        const kernels::IgemmOperand operand = igemm_operand(p.dtype());
        return kernels::conv_igemm_backward_filter_workspace_bytes(
            s, operand, kernels::conv_igemm_backward_filter_default_splits(s, operand, filter_tile_for(s)));
    }

    // Backward-filter's tile: forced, or chosen from its own GEMM (output channels x taps x
    // channels), not the forward's.
    kernels::IgemmTile filter_tile_for(const IgemmConvShape& s) const {
        return tile_.value_or(kernels::conv_igemm_backward_filter_default_tile(s));
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
