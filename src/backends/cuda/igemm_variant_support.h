#pragma once
// What the tensor-core convolution variants share (cuda.igemm: conv_igemm_variant.cpp; cuda.wgmma:
// conv_wgmma_variant.cpp) beyond the weight's KRSC permutation (conv_weight_layout.h): the
// geometry in the kernels' terms, the kernels' operand and output types, and the fused bias
// widened to the float32 their epilogue adds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "backend_api/geometry.h"
#include "backend_api/problem.h"
#include "backend_api/workspace_pieces.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/conv_igemm.h"
#include "kernels/tensor_fill.h"

namespace convkit::detail {

// The convolution in the kernels' terms: the used dims first (the geometry right-aligns them).
inline kernels::IgemmConvShape igemm_shape(const ConvGeometry& g) {
    kernels::IgemmConvShape s;
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

// Why neither tensor-core variant runs `p` whatever its geometry (empty when they may): float32
// computes on the tf32 tensor cores, which strict math forbids; activations channels-last and
// the weight contiguous (permuted to KRSC in the workspace).
inline std::string tensor_core_operands_reason(const ConvProblem& p) {
    if (p.dtype() == DType::Float32 && p.math == MathMode::Strict) {
        return "computes float32 on tf32 tensor cores only, which strict math forbids (MathMode::AllowTF32)";
    }
    if (p.x_layout != Layout::ChannelsLast || p.y_layout != Layout::ChannelsLast) {
        return "runs channels-last activations only";
    }
    if (p.w_layout != Layout::Contiguous) return "runs contiguous weights only";
    return {};
}

// The kernels' operand and output for a dtype the variants compute: float32 runs as tf32.
inline kernels::IgemmOperand igemm_operand(DType dtype) {
    return dtype == DType::BFloat16  ? kernels::IgemmOperand::BFloat16
           : dtype == DType::Float16 ? kernels::IgemmOperand::Float16
                                     : kernels::IgemmOperand::TensorFloat32;
}

inline kernels::IgemmOutput igemm_output(DType dtype) {
    return dtype == DType::BFloat16  ? kernels::IgemmOutput::BFloat16
           : dtype == DType::Float16 ? kernels::IgemmOutput::Float16
                                     : kernels::IgemmOutput::Float32;
}

// The workspace widened_bias takes for `kernel_channels` channels.
inline std::size_t widened_bias_bytes(std::int64_t kernel_channels) {
    return WorkspacePieces::rounded(static_cast<std::size_t>(kernel_channels) * sizeof(float));
}

// The fused epilogue's bias: `bias` (`channels` values of `dtype`) converted to float32 into a
// piece of the workspace of `kernel_channels` >= channels values, zeros past `channels` (the
// channels a padded kernel geometry adds).
inline const float* widened_bias(const void* bias, DType dtype, std::int64_t channels, std::int64_t kernel_channels,
                                 WorkspacePieces& pieces, Stream stream) {
    auto* widened = static_cast<float*>(pieces.take(static_cast<std::size_t>(kernel_channels) * sizeof(float)));
    if (kernel_channels > channels) kernels::fill_constant(widened, DType::Float32, kernel_channels, 0.0, stream);
    kernels::convert(bias, dtype, widened, DType::Float32, channels, stream);
    return widened;
}

}  // namespace convkit::detail
