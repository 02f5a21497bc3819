// ConvParams, the output-size arithmetic of convolution and transposed convolution, and the
// checked geometry every convolution call goes through.
#include <algorithm>
#include <sstream>
#include <string_view>

#include "convkit/conv_params.h"
#include "core/check.h"
#include "ops/op_support.h"
#include "backend_api/geometry.h"

namespace convkit {

namespace {
void set_all(SpatialDims& dims, std::int64_t value) { dims = {value, value, value}; }

void set_per_dim(SpatialDims& dims, std::initializer_list<std::int64_t> values, int spatial_rank, const char* what) {
    detail::assign_per_dim(dims, values, spatial_rank, "ConvParams", what);
}

std::string dims_text(const SpatialDims& dims, int rank) { return detail::spatial_dims_text(dims, rank); }

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
}  // namespace

const char* padding_mode_name(PaddingMode mode) {
    switch (mode) {
        case PaddingMode::Zeros: return "zeros";
        case PaddingMode::Reflect: return "reflect";
        case PaddingMode::Replicate: return "replicate";
        case PaddingMode::Circular: return "circular";
    }
    return "unknown";
}

ConvParams::ConvParams(int rank) : spatial_rank(rank) {
    CONVKIT_REQUIRE(rank >= 1 && rank <= 3, "ConvParams", "spatial_rank must be 1, 2 or 3, got ", rank);
}

ConvParams& ConvParams::set_stride(std::int64_t v) { return set_all(stride, v), *this; }
ConvParams& ConvParams::set_stride(std::initializer_list<std::int64_t> v) {
    return set_per_dim(stride, v, spatial_rank, "stride"), *this;
}
ConvParams& ConvParams::set_padding(std::int64_t v) { return set_all(padding, v), *this; }
ConvParams& ConvParams::set_padding(std::initializer_list<std::int64_t> v) {
    return set_per_dim(padding, v, spatial_rank, "padding"), *this;
}
ConvParams& ConvParams::set_dilation(std::int64_t v) { return set_all(dilation, v), *this; }
ConvParams& ConvParams::set_dilation(std::initializer_list<std::int64_t> v) {
    return set_per_dim(dilation, v, spatial_rank, "dilation"), *this;
}
ConvParams& ConvParams::set_output_padding(std::int64_t v) { return set_all(output_padding, v), *this; }
ConvParams& ConvParams::set_output_padding(std::initializer_list<std::int64_t> v) {
    return set_per_dim(output_padding, v, spatial_rank, "output_padding"), *this;
}
ConvParams& ConvParams::set_groups(std::int64_t v) { return groups = v, *this; }
ConvParams& ConvParams::set_padding_mode(PaddingMode mode) { return padding_mode = mode, *this; }
ConvParams& ConvParams::set_same_padding(bool enabled) { return same_padding = enabled, *this; }

std::string ConvParams::to_string() const {
    // Built with a stream: GCC 12 raises a false -Wrestrict on chains of string operator+.
    const int r = spatial_rank;
    std::ostringstream s;
    s << "s" << dims_text(stride, r) << "_p" << (same_padding ? std::string("same") : dims_text(padding, r)) << "_d"
      << dims_text(dilation, r) << "_g" << groups;
    if (std::any_of(output_padding.begin(), output_padding.begin() + r, [](std::int64_t v) { return v != 0; })) {
        s << "_op" << dims_text(output_padding, r);
    }
    if (padding_mode != PaddingMode::Zeros) s << "_" << padding_mode_name(padding_mode);
    return s.str();
}

std::int64_t conv_output_size_asymmetric(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                                         std::int64_t pad_begin, std::int64_t pad_end, std::int64_t dilation,
                                         const char* op) {
    CONVKIT_REQUIRE(input >= 1, op, "input size must be at least 1, got ", input);
    CONVKIT_REQUIRE(kernel >= 1, op, "kernel size must be at least 1, got ", kernel);
    CONVKIT_REQUIRE(stride >= 1, op, "stride must be at least 1, got ", stride);
    CONVKIT_REQUIRE(dilation >= 1, op, "dilation must be at least 1, got ", dilation);
    CONVKIT_REQUIRE(pad_begin >= 0 && pad_end >= 0, op, "padding must not be negative, got ", pad_begin, " and ",
                    pad_end);
    const std::int64_t padded = input + pad_begin + pad_end;
    const std::int64_t extent = dilation * (kernel - 1) + 1;
    CONVKIT_REQUIRE(extent <= padded, op, "kernel ", kernel, " (extent ", extent, " with dilation ", dilation,
                    ") is larger than the padded input ", padded, " (input ", input, " + padding ", pad_begin, " + ",
                    pad_end, ")");
    return (padded - extent) / stride + 1;
}

std::int64_t conv_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride, std::int64_t padding,
                              std::int64_t dilation, const char* op) {
    return conv_output_size_asymmetric(input, kernel, stride, padding, padding, dilation, op);
}

std::int64_t conv_transpose_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                                        std::int64_t padding, std::int64_t dilation, std::int64_t output_padding,
                                        const char* op) {
    CONVKIT_REQUIRE(input >= 1, op, "input size must be at least 1, got ", input);
    CONVKIT_REQUIRE(kernel >= 1, op, "kernel size must be at least 1, got ", kernel);
    CONVKIT_REQUIRE(stride >= 1, op, "stride must be at least 1, got ", stride);
    CONVKIT_REQUIRE(dilation >= 1, op, "dilation must be at least 1, got ", dilation);
    CONVKIT_REQUIRE(padding >= 0, op, "padding must not be negative, got ", padding);
    // PyTorch's rule: output_padding picks among the sizes that a strided (or dilated) conv
    // maps to the same output, so it must stay below the stride or the dilation.
    CONVKIT_REQUIRE(output_padding >= 0 && output_padding < std::max(stride, dilation), op, "output_padding ",
                    output_padding, " must be non-negative and smaller than stride ", stride, " or dilation ",
                    dilation);
    const std::int64_t out = (input - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1;
    CONVKIT_REQUIRE(out >= 1, op, "output size ", out, " is not positive (input ", input, ", kernel ", kernel,
                    ", stride ", stride, ", padding ", padding, ", dilation ", dilation, ")");
    return out;
}

std::int64_t pool_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride, std::int64_t padding,
                              std::int64_t dilation, bool ceil_mode, const char* op) {
    CONVKIT_REQUIRE(input >= 1, op, "input size must be at least 1, got ", input);
    CONVKIT_REQUIRE(kernel >= 1, op, "kernel size must be at least 1, got ", kernel);
    CONVKIT_REQUIRE(stride >= 1, op, "stride must be at least 1, got ", stride);
    CONVKIT_REQUIRE(dilation >= 1, op, "dilation must be at least 1, got ", dilation);
    CONVKIT_REQUIRE(padding >= 0, op, "padding must not be negative, got ", padding);
    const std::int64_t span = input + 2 * padding - dilation * (kernel - 1) - 1;
    std::int64_t out = (ceil_mode ? -floor_div(-span, stride) : floor_div(span, stride)) + 1;
    // The last window must start inside the input or the left padding (PyTorch's rule).
    if (ceil_mode && (out - 1) * stride >= input + padding) --out;
    // In ceil mode a window may overhang the padded input (PyTorch allows it); at least one must exist.
    CONVKIT_REQUIRE(out >= 1, op, "kernel ", kernel, " (extent ", dilation * (kernel - 1) + 1, " with dilation ",
                    dilation, ") is larger than the padded input ", input + 2 * padding, " (input ", input,
                    " + padding ", padding, " + ", padding, ")");
    return out;
}

std::array<std::int64_t, 2> same_padding(std::int64_t kernel, std::int64_t dilation) {
    const std::int64_t total = dilation * (kernel - 1);
    return {total / 2, total - total / 2};
}

std::string conv_op_name(int spatial_rank, bool transposed) {
    return detail::concat(transposed ? "conv_transpose" : "conv", spatial_rank, "d");
}

Shape conv_output_shape(const Shape& input, const Shape& weight, const ConvParams& params) {
    return detail::conv_geometry(conv_op_name(params.spatial_rank), input, weight, params).output_shape();
}

Shape conv_transpose_output_shape(const Shape& input, const Shape& weight, const ConvParams& params) {
    // The transposed convolution's output is the input of the convolution it is the adjoint of.
    return detail::conv_transpose_geometry(conv_op_name(params.spatial_rank, true), input, weight, params)
        .input_shape();
}

namespace detail {

namespace {
// Checks shared by convolution and transposed convolution; fills rank, batch, groups, kernel,
// stride and dilation of `g`.
void check_common(std::string_view op, const Shape& input, const Shape& weight, const ConvParams& params,
                  bool transposed, ConvGeometry& g) {
    const int r = params.spatial_rank;
    CONVKIT_REQUIRE(r >= 1 && r <= 3, op, "spatial_rank must be 1, 2 or 3, got ", r);
    check_image_shape(op, "input", input, r);
    check_image_shape(op, transposed ? "transposed weight" : "weight", weight, r);
    CONVKIT_REQUIRE(params.groups >= 1, op, "groups must be at least 1, got ", params.groups);
    g.spatial_rank = r;
    g.batch = input[0];
    g.groups = params.groups;
    for (int i = 0; i < r; ++i) {
        const auto s = static_cast<std::size_t>(3 - r + i);
        const char* dim = spatial_dim_name(r, i);
        CONVKIT_REQUIRE(params.stride[static_cast<std::size_t>(i)] >= 1, op, "stride must be at least 1, got ",
                        params.stride[static_cast<std::size_t>(i)], " in dim ", dim);
        CONVKIT_REQUIRE(params.dilation[static_cast<std::size_t>(i)] >= 1, op, "dilation must be at least 1, got ",
                        params.dilation[static_cast<std::size_t>(i)], " in dim ", dim);
        CONVKIT_REQUIRE(params.padding[static_cast<std::size_t>(i)] >= 0, op, "padding must not be negative, got ",
                        params.padding[static_cast<std::size_t>(i)], " in dim ", dim);
        g.kernel[s] = weight[2 + i];
        g.stride[s] = params.stride[static_cast<std::size_t>(i)];
        g.dilation[s] = params.dilation[static_cast<std::size_t>(i)];
    }
}

void check_padding_mode_limits(std::string_view op, const ConvGeometry& g) {
    if (g.padding_mode == PaddingMode::Zeros || g.padding_mode == PaddingMode::Replicate) return;
    for (int i = 0; i < g.spatial_rank; ++i) {
        const auto s = static_cast<std::size_t>(3 - g.spatial_rank + i);
        const std::int64_t pad = std::max(g.pad_begin[s], g.pad_end[s]);
        // A reflection must not reach past the opposite edge; a circular wrap at most once around.
        const bool ok = g.padding_mode == PaddingMode::Reflect ? pad < g.input[s] : pad <= g.input[s];
        CONVKIT_REQUIRE(ok, op, padding_mode_name(g.padding_mode), " padding ", pad, " is too large for input size ",
                        g.input[s], " in dim ", spatial_dim_name(g.spatial_rank, i),
                        g.padding_mode == PaddingMode::Reflect ? " (must be smaller than the size)"
                                                               : " (must be at most the size)");
    }
}
}  // namespace

ConvGeometry conv_geometry(std::string_view op, const Shape& input, const Shape& weight, const ConvParams& params) {
    ConvGeometry g;
    check_common(op, input, weight, params, false, g);
    const int r = g.spatial_rank;
    g.in_channels = input[1];
    g.out_channels = weight[0];
    g.padding_mode = params.padding_mode;
    CONVKIT_REQUIRE(g.in_channels % g.groups == 0, op, "groups ", g.groups, " does not divide the input's ",
                    g.in_channels, " channels");
    CONVKIT_REQUIRE(g.out_channels % g.groups == 0, op, "groups ", g.groups, " does not divide the weight's ",
                    g.out_channels, " output channels (weight shape ", weight.to_string(), ")");
    CONVKIT_REQUIRE(weight[1] * g.groups == g.in_channels, op, "input has ", g.in_channels,
                    " channels but weight expects ", weight[1] * g.groups,
                    g.groups > 1 ? concat(" (", weight[1], " per group x ", g.groups, " groups)") : std::string(),
                    " (weight shape ", weight.to_string(), ")");
    CONVKIT_REQUIRE(std::all_of(params.output_padding.begin(), params.output_padding.begin() + r,
                                [](std::int64_t v) { return v == 0; }),
                    op, "output_padding applies to transposed convolution only, got ",
                    dims_text(params.output_padding, r));
    for (int i = 0; i < r; ++i) {
        const auto s = static_cast<std::size_t>(3 - r + i);
        const char* dim = spatial_dim_name(r, i);
        g.input[s] = input[2 + i];
        if (params.same_padding) {
            CONVKIT_REQUIRE(params.stride[static_cast<std::size_t>(i)] == 1, op,
                            "'same' padding needs stride 1, got stride ", dims_text(params.stride, r));
            const auto pads = same_padding(g.kernel[s], g.dilation[s]);
            g.pad_begin[s] = pads[0];
            g.pad_end[s] = pads[1];
        } else {
            g.pad_begin[s] = g.pad_end[s] = params.padding[static_cast<std::size_t>(i)];
        }
        g.output[s] = size_in_dim(op, dim, [&](const char* where) {
            return conv_output_size_asymmetric(g.input[s], g.kernel[s], g.stride[s], g.pad_begin[s], g.pad_end[s],
                                               g.dilation[s], where);
        });
    }
    check_padding_mode_limits(op, g);
    return g;
}

ConvGeometry conv_transpose_geometry(std::string_view op, const Shape& input, const Shape& weight,
                                     const ConvParams& params) {
    ConvGeometry g;
    check_common(op, input, weight, params, true, g);
    const int r = g.spatial_rank;
    CONVKIT_REQUIRE(params.padding_mode == PaddingMode::Zeros, op, "only zeros padding is supported, got ",
                    padding_mode_name(params.padding_mode));
    CONVKIT_REQUIRE(!params.same_padding, op, "'same' padding is not defined for transposed convolution");
    // Roles swap: the transposed input is the adjoint convolution's output.
    g.out_channels = input[1];
    CONVKIT_REQUIRE(g.out_channels % g.groups == 0, op, "groups ", g.groups, " does not divide the input's ",
                    g.out_channels, " channels");
    CONVKIT_REQUIRE(weight[0] == g.out_channels, op, "input has ", g.out_channels, " channels but weight expects ",
                    weight[0], " (weight shape ", weight.to_string(), ")");
    g.in_channels = weight[1] * g.groups;
    for (int i = 0; i < r; ++i) {
        const auto s = static_cast<std::size_t>(3 - r + i);
        g.output[s] = input[2 + i];
        g.pad_begin[s] = g.pad_end[s] = params.padding[static_cast<std::size_t>(i)];
        g.input[s] = size_in_dim(op, spatial_dim_name(r, i), [&](const char* where) {
            return conv_transpose_output_size(g.output[s], g.kernel[s], g.stride[s], g.pad_begin[s], g.dilation[s],
                                              params.output_padding[static_cast<std::size_t>(i)], where);
        });
    }
    return g;
}

}  // namespace detail
}  // namespace convkit
