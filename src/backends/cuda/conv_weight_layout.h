#pragma once
// convkit's convolution weights are [K, C/groups, taps] (KCRS, contiguous); the tensor-core
// kernels (cuda.igemm) and cuDNN's NHWC filter format read them as KRSC ([K, taps, C/groups],
// the weight's channels-last order). Both variants permute the weight into their workspace per
// call, and the filter gradient back, through these two.
#include <cstddef>

#include "backend_api/geometry.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/tensor_fill.h"

namespace convkit::detail {

// Bytes of the weight (or its gradient) of `g` in `dtype`.
inline std::size_t conv_weight_bytes(const ConvGeometry& g, DType dtype) {
    return static_cast<std::size_t>(g.out_channels * g.in_channels_per_group() * g.kernel_spatial()) *
           dtype_size(dtype);
}

// Copies a weight of `g` from KCRS to KRSC (to_krsc) or back.
inline void permute_conv_weight(const ConvGeometry& g, DType dtype, const void* from, void* to, bool to_krsc,
                                Stream stream) {
    kernels::permute_channels(from, to, dtype, g.out_channels, g.in_channels_per_group(), g.kernel_spatial(), to_krsc,
                              stream);
}

}  // namespace convkit::detail
