#pragma once
// Launchers of the pooling kernels (kernels/pool_max.cu, kernels/pool_mean.cu): max, average and
// adaptive average, forward and backward, 1-D to 3-D through the widened geometry, every float
// dtype (bfloat16 and float16 computed in float), operands in `layout` (x, y and their gradients
// alike). Backward passes are gathers (each input element sums the outputs whose windows hold it):
// deterministic, no atomics.
#include <cstdint>

#include "convkit/device.h"
#include "convkit/dtype.h"
#include "convkit/memory_format.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/geometry.h"

CONVKIT_KERNELS_BEGIN

// Given `argmax_taps` (one byte per output, in y's layout), the forward also records which tap
// of each window holds its maximum (detail::max_pool_tap; kNoMaxPoolTap for an empty window);
// the windows must have at most kMaxPoolRecordedTaps taps (max_pool_taps_fit).
void max_pool_forward(const detail::PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream,
                      MemoryFormat layout = MemoryFormat::Contiguous, std::uint8_t* argmax_taps = nullptr);
void max_pool_backward(const detail::PoolGeometry& g, DType dtype, const void* dy, const void* x, void* dx,
                       Stream stream, MemoryFormat layout = MemoryFormat::Contiguous);
// The backward from the forward's argmax taps: each input element gathers dy from the windows
// that hold it whose recorded tap is its own, reading a byte per window instead of searching
// the window in x again. The same sums, in the same order (the windows in output order), as
// max_pool_backward.
void max_pool_backward_from_taps(const detail::PoolGeometry& g, DType dtype, const void* dy,
                                 const std::uint8_t* argmax_taps, void* dx, Stream stream,
                                 MemoryFormat layout = MemoryFormat::Contiguous);

inline constexpr std::uint8_t kNoMaxPoolTap = 255;
inline constexpr std::int64_t kMaxPoolRecordedTaps = 255;
constexpr bool max_pool_taps_fit(const detail::PoolGeometry& g) {
    return g.kernel[0] * g.kernel[1] * g.kernel[2] <= kMaxPoolRecordedTaps;
}

// Tests only: without `allow`, every launch takes the per-element kernels, which otherwise run
// only where the channels-last packs of adjacent channels do not fit (kernels/pool_support.cuh).
void set_pool_packs_for_testing(bool allow);
// Tests only: every average and adaptive average pooling forward shares each output's window
// among `members` threads (a power of two up to a warp), or, with 0, as many as the window's size
// calls for (kernels/pool_mean.cu, window_team_log2).
void set_pool_window_team_for_testing(int members);

void avg_pool_forward(const detail::PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream,
                      MemoryFormat layout = MemoryFormat::Contiguous);
void avg_pool_backward(const detail::PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream,
                       MemoryFormat layout = MemoryFormat::Contiguous);
void adaptive_avg_pool_forward(const detail::PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream,
                      MemoryFormat layout = MemoryFormat::Contiguous);
void adaptive_avg_pool_backward(const detail::PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream,
                       MemoryFormat layout = MemoryFormat::Contiguous);

CONVKIT_KERNELS_END
