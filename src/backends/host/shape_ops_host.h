#pragma once
// Host implementations of the shape ops; the same entry points as kernels/shape_ops.h.
#include <cstddef>

#include "convkit/dtype.h"
#include "backend_api/shape_geometry.h"

namespace convkit::detail {

// Copies the block described by `g` between two tensors of any dtype (a bit copy of elements of
// `element_size` bytes).
void block_copy_host(const BlockCopyGeometry& g, std::size_t element_size, const void* source, void* dest);

// Copies rows as `g` describes (a bit copy; the zeros are all-zero bits, +0 in every float type).
void copy_channel_rows_host(const ChannelRowsGeometry& g, std::size_t element_size, const void* source, void* dest);

// output[o] = input[nearest source of o].
void upsample_nearest_forward_host(const UpsampleGeometry& g, DType dtype, const void* input, void* output);
// grad_input[i] = sum of grad_output over the positions that read i (accumulated in double).
void upsample_nearest_backward_host(const UpsampleGeometry& g, DType dtype, const void* grad_output, void* grad_input);

}  // namespace convkit::detail
