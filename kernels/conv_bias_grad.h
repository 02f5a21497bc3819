#pragma once
// The bias gradient of a convolution whose output gradient is channels-last: db[c] = the sum of
// dy [rows, channels] over its rows (rows = batch x output positions), for every float dtype,
// 16-bit included (summed in float32, rounded once). Plain C++: host code calls it without CUDA
// headers. The contiguous layout's bias gradient is conv_backward_bias (kernels/conv_direct.h).
#include <cstddef>
#include <cstdint>

#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// Two passes, deterministic: blocks sum row chunks of 32 channels into float (double for
// float64) partial sums in `workspace`, then one thread per channel adds the chunks in order.
void conv_backward_bias_channels_last(std::int64_t rows, std::int64_t channels, DType dtype, const void* dy,
                                      void* db, void* workspace, Stream stream);
// Bytes of `workspace` the call above needs.
std::size_t conv_backward_bias_channels_last_workspace_bytes(std::int64_t rows, std::int64_t channels, DType dtype);

CONVKIT_KERNELS_END
