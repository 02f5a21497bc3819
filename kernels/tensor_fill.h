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
// A convolution's weight [groups * out_per_group, in_per_group, taps] (convkit's order) as the
// weight of the convolution that computes its backward-data at stride 1 as a forward over dy,
// channels-last (KRSC): [groups * in_per_group, taps, out_per_group], each group's input and output
// channels swapped and the taps reversed (reversing the flat tap index flips every spatial dim).
// A bit copy, whatever the dtype.
void backward_data_conv_weight(const void* source, void* destination, DType dtype, std::int64_t groups,
                               std::int64_t out_per_group, std::int64_t in_per_group, std::int64_t taps, Stream stream);

CONVKIT_KERNELS_END
