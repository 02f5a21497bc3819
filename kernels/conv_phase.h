#pragma once
// Sub-pixel backward-data (the forward of strided transposed convolution), shared by the tiled
// SIMT kernels (kernels/conv_tiled.cu) and the tensor-core ones (kernels/conv_igemm.cu): dx's
// positions split by phase, position mod stride per dim, and each phase is a dense GEMM over
// only the taps that land on it. Along one dim, phase `phase` holds the positions
// i = phase + stride·j, and tap t reaches them exactly when stride divides
// phase + pad - t·dilation; those taps exist only when g = gcd(dilation, stride) divides
// phase + pad, and then form an arithmetic progression t = first_tap + u·tap_step with
// tap_step = stride / g, and tap u of row j reads dy at j + offset - u·offset_step with
// offset_step = dilation / g: (i + pad - t·dilation) / stride, exact, with no division left for
// the kernel. Computed once per phase on the host; plain C++.
#include <algorithm>
#include <numeric>

#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// One dim of one phase: `rows` positions (0 when the phase lies past the input), `taps` taps
// (0 when none reaches the phase: a phase the GEMM gives an empty reduction).
struct PhaseAxis {
    int rows = 0, taps = 0, first_tap = 0, tap_step = 1, offset = 0, offset_step = 0;
};

// Positions and taps of phase `phase` along a dim of `input` positions and a `kernel`-tap filter.
// The first tap is below tap_step, since the taps repeat every tap_step. constexpr, so that a
// kernel running several phases in one launch finds its own (kernels/conv_igemm.cu).
constexpr PhaseAxis phase_axis(int phase, int input, int kernel, int stride, int dilation, int pad) {
    PhaseAxis a;
    a.rows = phase < input ? (input - phase + stride - 1) / stride : 0;
    const int common = std::gcd(dilation, stride);
    a.tap_step = stride / common;
    a.offset_step = dilation / common;
    for (int t = 0; t < std::min(kernel, a.tap_step); ++t) {
        const int numerator = phase + pad - t * dilation;
        if (numerator % stride != 0) continue;
        a.first_tap = t;
        a.taps = (kernel - t + a.tap_step - 1) / a.tap_step;
        a.offset = numerator / stride;  // exact, also when negative
        break;
    }
    return a;
}

CONVKIT_KERNELS_END
