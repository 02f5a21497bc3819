#pragma once
// The resolved geometry of one convolution or pooling call: every shape and parameter checked
// once, padding resolved, and spatial dims widened to three (unused dims have size 1, kernel 1,
// stride 1, padding 0) so that every backend writes one loop nest for 1-D, 2-D and 3-D.
// Computed in src/ops and handed to whichever backend runs the call.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "convkit/conv_params.h"
#include "convkit/shape.h"

namespace convkit::detail {

struct ConvGeometry {
    int spatial_rank = 2;
    std::int64_t batch = 1;
    std::int64_t in_channels = 1;   // of the convolution's input
    std::int64_t out_channels = 1;  // of the convolution's output
    std::int64_t groups = 1;
    SpatialDims input{1, 1, 1};
    SpatialDims output{1, 1, 1};
    SpatialDims kernel{1, 1, 1};
    SpatialDims stride{1, 1, 1};
    SpatialDims dilation{1, 1, 1};
    SpatialDims pad_begin{0, 0, 0};
    SpatialDims pad_end{0, 0, 0};
    PaddingMode padding_mode = PaddingMode::Zeros;

    std::int64_t in_channels_per_group() const { return in_channels / groups; }
    std::int64_t out_channels_per_group() const { return out_channels / groups; }
    std::int64_t input_spatial() const { return input[0] * input[1] * input[2]; }
    std::int64_t output_spatial() const { return output[0] * output[1] * output[2]; }
    std::int64_t kernel_spatial() const { return kernel[0] * kernel[1] * kernel[2]; }
    Shape input_shape() const;   // [N, C_in, spatial...]
    Shape output_shape() const;  // [N, C_out, spatial...]
    Shape weight_shape() const;  // [C_out, C_in / groups, kernel...]
};

// A convolution: input [N, C_in, in...], weight [C_out, C_in / groups, kernel...].
ConvGeometry conv_geometry(const std::string& op, const Shape& input, const Shape& weight, const ConvParams& params);

// A transposed convolution, described as the convolution it is the adjoint of: that
// convolution's input is the transposed convolution's output and vice versa, and the weight
// [C_in, C_out / groups, kernel...] reads as that convolution's [C_out', C_in' / groups, ...].
// Backends must use the stored sizes: when output_padding >= stride (allowed below the
// dilation), `output` is smaller than conv_output_size(`input`), i.e. the adjoint convolution
// is evaluated at its first `output` positions only (e.g. in 5, k 2, d 3, p 1, op 2: the
// transposed output is 8, and a convolution of 8 would give 7 positions, not 5).
ConvGeometry conv_transpose_geometry(const std::string& op, const Shape& input, const Shape& weight,
                                     const ConvParams& params);

struct PoolGeometry {
    int spatial_rank = 2;
    std::int64_t batch = 1;
    std::int64_t channels = 1;
    SpatialDims input{1, 1, 1};
    SpatialDims output{1, 1, 1};
    SpatialDims kernel{1, 1, 1};
    SpatialDims stride{1, 1, 1};
    SpatialDims padding{0, 0, 0};
    SpatialDims dilation{1, 1, 1};
    bool count_include_pad = true;

    std::int64_t planes() const { return batch * channels; }
    std::int64_t input_spatial() const { return input[0] * input[1] * input[2]; }
    std::int64_t output_spatial() const { return output[0] * output[1] * output[2]; }
    Shape output_shape() const;
};

PoolGeometry pool_geometry(const std::string& op, const Shape& input, const PoolParams& params, PoolKind kind);

// Adaptive pooling: only input and output sizes matter; kernel/stride/padding are unused.
PoolGeometry adaptive_pool_geometry(const std::string& op, const Shape& input,
                                    const std::vector<std::int64_t>& output_size);

// Checks that `shape` is an image batch [N, C, spatial...] of the given spatial rank with every
// dimension at least 1; `what` names the tensor in the message ("input", "grad_output").
void check_image_shape(const std::string& op, const char* what, const Shape& shape, int spatial_rank);

// "3x3": the first spatial_rank entries, for messages and test names.
std::string spatial_dims_text(const SpatialDims& dims, int spatial_rank);

// Copies one value per spatial dim into `dims`; `owner` and `what` name them in the message.
void assign_per_dim(SpatialDims& dims, std::initializer_list<std::int64_t> values, int spatial_rank,
                    const char* owner, const char* what);

// "W" / "H" / "D" for spatial dim `dim` of a tensor with `spatial_rank` spatial dims.
const char* spatial_dim_name(int spatial_rank, int dim);

// Where position `position` of a dim of `size`, padded on both sides, reads its value from:
// an index in [0, size), or -1 for a zero. Valid for positions within one size of the edges,
// which the padding limits checked in conv_geometry guarantee.
constexpr std::int64_t padded_source_index(std::int64_t position, std::int64_t size, PaddingMode mode) {
    if (position >= 0 && position < size) return position;
    switch (mode) {
        case PaddingMode::Zeros: return -1;
        case PaddingMode::Reflect: return position < 0 ? -position : 2 * (size - 1) - position;
        case PaddingMode::Replicate: return position < 0 ? 0 : size - 1;
        case PaddingMode::Circular: return position < 0 ? position + size : position - size;
    }
    return -1;
}

}  // namespace convkit::detail
