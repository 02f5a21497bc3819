#pragma once
// Launchers of the shape-op kernels (kernels/shape_ops.cu); plain C++ for host callers. The index
// math is ops/shape_geometry.h, shared with the host backend (backends/host/shape_ops_host.h).
#include <cstddef>

#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/shape_geometry.h"

CONVKIT_KERNELS_BEGIN

// Copies the block described by `g` (concat, slice, slice backward); any dtype, as a bit copy of
// elements of `element_size` (2, 4 or 8) bytes; another size is InvalidArgument.
void block_copy(const detail::BlockCopyGeometry& g, std::size_t element_size, const void* source, void* dest,
                Stream stream);

// Copies rows as `g` describes (detail::ChannelRowsGeometry: widened with zeros, or narrowed);
// elements of 2, 4 or 8 bytes as bits, another size is InvalidArgument.
void copy_channel_rows(const detail::ChannelRowsGeometry& g, std::size_t element_size, const void* source, void* dest,
                       Stream stream);

// One thread per output element.
void upsample_nearest_forward(const detail::UpsampleGeometry& g, DType dtype, const void* input, void* output,
                              Stream stream);
// One thread per input element, summing the outputs that read it (a gather: no atomics,
// deterministic; accumulated in double).
void upsample_nearest_backward(const detail::UpsampleGeometry& g, DType dtype, const void* grad_output,
                               void* grad_input, Stream stream);

CONVKIT_KERNELS_END
