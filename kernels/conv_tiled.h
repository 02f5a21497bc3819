#pragma once
// Launchers of the tiled implicit-GEMM convolution (kernels/conv_tiled.cu): float32 and float64
// on the ordinary cores, contiguous (NCDHW) layouts, zeros padding; the fast path for strict
// float32, where the tensor cores may not be used. Each pass is one GEMM per group, its operands
// gathered from the tensors as the tiles are loaded (no im2col buffer):
//   forward          y[n·P, K/g]      = x-patches[n·P, C/g·taps] · w^T
//   backward-data    dx[n·I, C/g]     = dy-patches[n·I, K/g·taps] · w      (P output, I input positions)
//   backward-filter  dw[K/g, C/g·taps] = dy^T[K/g, n·P] · x-patches[n·P, C/g·taps]
// The reduction is split over blocks when the output has too few tiles to fill a GPU (always
// possible for backward-filter, whose reduction runs over the whole batch); the slices are then
// added in a fixed order, so every result is the same on every run. Plain C++: host code calls
// them without CUDA headers.
//
// Backward-data with a stride runs sub-pixel: the dx positions split by phase (position mod
// stride per dim, stride^rank phases), and each phase is its own dense GEMM whose reduction runs
// only over the taps that land on that phase, K = K/g · (its taps), instead of gathering every tap
// and multiplying the ones between dy samples (the transposed convolution's "inserted zeros") by
// zero. A phase no tap reaches (dilation sharing a factor with the stride, a kernel smaller than
// the stride) is a GEMM with an empty reduction: its positions get zero (plus the bias).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backend_api/geometry.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

enum class TiledConvPass { Forward, BackwardData, BackwardFilter };

// One GEMM launch as the launcher plans it: per group, rows m, columns n, reduction k, in block
// tiles of 128 rows x tile_n columns (128; 64 where n <= 64, where the wide tiles are too few to
// fill the GPU even split, and for float64), the reduction in `splits` slices
// of k_per_split. A sub-pixel backward-data launch is one phase
// (per_phase), `phase` its first dx position per spatial dim (right-aligned D, H, W like the
// geometry's).
struct TiledGemmLaunch {
    std::int64_t m = 0, n = 0, k = 0;
    int tile_n = 128;
    int splits = 1;
    int k_per_split = 0;
    bool per_phase = false;
    SpatialDims phase{0, 0, 0};
    // Backward-filter as dw^T = x-patches^T · dy (m = C/g · taps, n = K/g), chosen where its whole
    // tiles hold fewer elements than dw = dy^T · x-patches' (filters of at most 64 output channels
    // a group, whose 128-row tiles would be half idle).
    bool transposed = false;
    // A 1x1 kernel at stride 1 without padding in float32: the operands are read as the tensors
    // themselves, no tap coordinates or bounds checks (ResNet's bottleneck 1x1 convolutions).
    bool pointwise = false;
};

// Every launch of one pass, in launch order (one, or one per phase that has positions), and the
// scratch the largest split needs (the launches run one after another on one stream and share it).
struct TiledConvPlan {
    std::int64_t groups = 1;
    std::vector<TiledGemmLaunch> launches;
    std::size_t workspace_bytes = 0;
    // The multiply-adds the GEMMs run: groups · Σ m·n·k (no tile padding).
    std::int64_t multiply_adds() const;
};

// The plan the launchers below run for `pass` (tests read it: which taps are computed).
TiledConvPlan conv_tiled_plan(const detail::ConvGeometry& g, TiledConvPass pass, DType dtype);

// Why these kernels cannot run `g` (empty when they can): zeros padding only; every tensor and
// GEMM size within 32-bit indices; groups times reduction slices within the grid's z.
std::string conv_tiled_unsupported_reason(const detail::ConvGeometry& g);

// Scratch a pass needs for its reduction slices (0 when it does not split).
std::size_t conv_tiled_workspace_bytes(const detail::ConvGeometry& g, TiledConvPass pass, DType dtype);

// y = conv(x, w) + bias (bias may be null). dtype float32 or float64.
void conv_forward_tiled(const detail::ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias,
                        void* y, void* workspace, Stream stream);
// dx = conv^T(dy, w) + bias per channel of dx (bias may be null).
void conv_backward_data_tiled(const detail::ConvGeometry& g, DType dtype, const void* dy, const void* w,
                              const void* bias, void* dx, void* workspace, Stream stream);
// dw = the filter gradient from dy and x.
void conv_backward_filter_tiled(const detail::ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw,
                                void* workspace, Stream stream);

CONVKIT_KERNELS_END
