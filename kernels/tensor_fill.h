#pragma once
// Launchers for the tensor fill and conversion kernels (kernels/tensor_fill.cu). Plain C++, so
// host code can call them without CUDA headers. Work is enqueued on `stream`; errors throw.
#include <cstdint>

#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

void fill_constant(void* data, DType dtype, std::int64_t count, double value, Stream stream);
void convert(const void* source, DType source_dtype, void* destination, DType destination_dtype, std::int64_t count,
             Stream stream);
// Moves [batch, channels, spatial] elements between the contiguous and the channels-last order
// (backend_api/layout_math.h); a bit copy, whatever the dtype.
void permute_channels(const void* source, void* destination, DType dtype, std::int64_t batch, std::int64_t channels,
                      std::int64_t spatial, bool to_channels_last, Stream stream);

CONVKIT_KERNELS_END
