#pragma once
// Parameters of convolution, transposed convolution and pooling, and the arithmetic that gives
// their output sizes. Every op, layer, test name and benchmark row uses these; the formulas are
// written out with worked examples in docs/convolution-arithmetic.md.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "convkit/shape.h"

namespace convkit {

// Per-spatial-dimension values in D, H, W order for 3-D; H, W for 2-D; W for 1-D.
// Entries past spatial_rank are unused.
using SpatialDims = std::array<std::int64_t, 3>;

// How positions outside the input are read (PyTorch's padding_mode).
enum class PaddingMode { Zeros, Reflect, Replicate, Circular };
const char* padding_mode_name(PaddingMode mode);

// Geometry of a convolution or a transposed convolution with 1, 2 or 3 spatial dims.
// Setters take one value for every dim or one value per dim, and return *this for chaining:
//   ConvParams(2).set_stride(2).set_padding({1, 0}).set_groups(4)
struct ConvParams {
    explicit ConvParams(int spatial_rank = 2);

    int spatial_rank;
    SpatialDims stride{1, 1, 1};
    SpatialDims padding{0, 0, 0};  // added on both sides, as in PyTorch
    SpatialDims dilation{1, 1, 1};
    SpatialDims output_padding{0, 0, 0};  // transposed convolution only
    std::int64_t groups = 1;
    PaddingMode padding_mode = PaddingMode::Zeros;
    // 'same' padding: the output has the input's size (stride 1). The padding is derived from
    // the kernel: total = dilation * (kernel - 1), begin = total / 2, the rest at the end.
    bool same_padding = false;

    ConvParams& set_stride(std::int64_t value);
    ConvParams& set_stride(std::initializer_list<std::int64_t> per_dim);
    ConvParams& set_padding(std::int64_t value);
    ConvParams& set_padding(std::initializer_list<std::int64_t> per_dim);
    ConvParams& set_dilation(std::int64_t value);
    ConvParams& set_dilation(std::initializer_list<std::int64_t> per_dim);
    ConvParams& set_output_padding(std::int64_t value);
    ConvParams& set_output_padding(std::initializer_list<std::int64_t> per_dim);
    ConvParams& set_groups(std::int64_t value);
    ConvParams& set_padding_mode(PaddingMode mode);
    ConvParams& set_same_padding(bool enabled = true);

    // "s2x2_p1x1_d1x1_g1", plus "_op1x1" (output_padding), "_reflect" (mode) and "psame" where
    // set: letters, digits and '_' only, so it serves as a test or benchmark name.
    std::string to_string() const;
};

enum class PoolKind { Max, Average };

// Geometry of max or average pooling. The stride defaults to the kernel size, as in PyTorch.
struct PoolParams {
    PoolParams(int spatial_rank, std::initializer_list<std::int64_t> kernel);
    PoolParams(int spatial_rank, std::int64_t kernel);

    int spatial_rank;
    SpatialDims kernel{1, 1, 1};
    SpatialDims stride{1, 1, 1};
    SpatialDims padding{0, 0, 0};
    SpatialDims dilation{1, 1, 1};  // max pooling only
    bool ceil_mode = false;
    bool count_include_pad = true;  // average pooling only

    PoolParams& set_stride(std::int64_t value);
    PoolParams& set_stride(std::initializer_list<std::int64_t> per_dim);
    PoolParams& set_padding(std::int64_t value);
    PoolParams& set_padding(std::initializer_list<std::int64_t> per_dim);
    PoolParams& set_dilation(std::int64_t value);
    PoolParams& set_dilation(std::initializer_list<std::int64_t> per_dim);
    PoolParams& set_ceil_mode(bool enabled = true);
    PoolParams& set_count_include_pad(bool enabled);

    std::string to_string() const;  // "k3x3_s2x2_p1x1", plus "_d2x2", "_ceil", "_excludepad" where set
};

// ---- Output-size arithmetic, one spatial dimension at a time ----------------------------------
// Each throws InvalidArgument naming `op` when an argument is out of range or the (dilated)
// kernel does not fit in the padded input.

// floor((input + pad_begin + pad_end - dilation * (kernel - 1) - 1) / stride) + 1
std::int64_t conv_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride = 1,
                              std::int64_t padding = 0, std::int64_t dilation = 1, const char* op = "conv");
std::int64_t conv_output_size_asymmetric(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                                         std::int64_t pad_begin, std::int64_t pad_end, std::int64_t dilation,
                                         const char* op = "conv");

// (input - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
std::int64_t conv_transpose_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride = 1,
                                        std::int64_t padding = 0, std::int64_t dilation = 1,
                                        std::int64_t output_padding = 0, const char* op = "conv_transpose");

// As conv_output_size, rounding up when ceil_mode is set; a last window that would start in
// the right padding (past input + padding) is dropped, as in PyTorch. In ceil mode the last
// window may overhang the padded input, so a kernel larger than it can still give one output.
std::int64_t pool_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                              std::int64_t padding = 0, std::int64_t dilation = 1, bool ceil_mode = false,
                              const char* op = "pool");

// The padding 'same' adds before and after a dim: {total / 2, total - total / 2}, total = dilation * (kernel - 1).
std::array<std::int64_t, 2> same_padding(std::int64_t kernel, std::int64_t dilation = 1);

// ---- Whole-tensor shapes, with every argument checked ------------------------------------------
// input [N, C_in, spatial...], weight [C_out, C_in / groups, kernel...] -> [N, C_out, out...]
Shape conv_output_shape(const Shape& input, const Shape& weight, const ConvParams& params);
// input [N, C_in, spatial...], weight [C_in, C_out / groups, kernel...] -> [N, C_out, out...]
Shape conv_transpose_output_shape(const Shape& input, const Shape& weight, const ConvParams& params);
// input [N, C, spatial...] -> [N, C, out...]
Shape pool_output_shape(const Shape& input, const PoolParams& params, PoolKind kind = PoolKind::Max);

// Op names as they appear in messages: "conv2d", "conv_transpose3d", "max_pool1d", ...
std::string conv_op_name(int spatial_rank, bool transposed = false);
std::string pool_op_name(int spatial_rank, PoolKind kind);

}  // namespace convkit
