#pragma once
// The kernel widths the depthwise kernels unroll their tap loop along W for, shared by both
// layouts' files (kernels/conv_depthwise.cu, kernels/conv_depthwise_nhwc.cu). Private to them.
#include <cstdint>
#include <type_traits>

#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// Calls f(std::integral_constant<int, W>) with the kernel width W where the kernels have an
// unrolled instantiation for it (MobileNet's 3, 5, ConvNeXt's 7), else with W = 0 (a loop over
// the width at run time).
template <typename F>
void dispatch_kernel_width(std::int64_t width, F&& f) {
    switch (width) {
        case 3:
            f(std::integral_constant<int, 3>{});
            return;
        case 5:
            f(std::integral_constant<int, 5>{});
            return;
        case 7:
            f(std::integral_constant<int, 7>{});
            return;
        default:
            f(std::integral_constant<int, 0>{});
            return;
    }
}

CONVKIT_KERNELS_END
