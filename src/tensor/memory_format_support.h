#pragma once
// The internals of memory formats (convkit/memory_format.h): the buffer permutation behind
// Tensor::to(MemoryFormat), and the one helper through which ops convert their operands.
#include "backend_api/layout_math.h"
#include "convkit/tensor.h"

namespace convkit::detail {

// A rank 3-5 shape as [N, C, S], S the product of the spatial dims.
ChannelsGeometry channels_geometry(const Shape& shape);

// Writes source's elements into destination, a tensor of the same shape, dtype and device in
// the other memory format (a permutation of the buffer, on the tensor's device).
void permute_memory_format(const Tensor& source, const Tensor& destination);

// Counts one conversion in layout_conversions().
void count_layout_conversion();

// `t` in `format`: t itself if it is already, else a recorded (differentiable) conversion,
// counted in layout_conversions(). What an op calls at its entry for an operand whose code reads
// only that format; never bypass it with Tensor::to, or the conversion goes uncounted.
Tensor operand_in_format(const Tensor& t, MemoryFormat format);
inline Tensor contiguous_operand(const Tensor& t) {
    return operand_in_format(t, MemoryFormat::Contiguous);
}

}  // namespace convkit::detail
