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
#include <cstddef>
#include <string>

#include "backend_api/geometry.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

enum class TiledConvPass { Forward, BackwardData, BackwardFilter };

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
