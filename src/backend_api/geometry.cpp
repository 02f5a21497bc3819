// Shape helpers shared by every op family: the geometries' shapes, the checks of image-shaped
// tensors, and the per-dimension text of messages and test names.
#include <algorithm>
#include <sstream>
#include <string_view>

#include "core/check.h"
#include "backend_api/geometry.h"

namespace convkit::detail {

bool is_matrix_product(const ConvGeometry& g) {
    for (std::size_t s = 0; s < 3; ++s) {
        if (g.output[s] != 1 || g.kernel[s] != g.input[s] || g.pad_begin[s] != 0 || g.pad_end[s] != 0 ||
            g.dilation[s] != 1) {
            return false;
        }
    }
    return true;
}

std::string symmetric_zero_padding_reason(const ConvGeometry& g) {
    if (g.padding_mode != PaddingMode::Zeros) {
        return concat("runs zeros padding only, not ", padding_mode_name(g.padding_mode));
    }
    for (std::size_t s = 0; s < 3; ++s) {
        if (g.pad_begin[s] != g.pad_end[s]) {
            return concat("needs equal padding on both sides ('same' with an even extent pads ", g.pad_begin[s],
                          " and ", g.pad_end[s], ")");
        }
        const std::int64_t extent = g.dilation[s] * (g.kernel[s] - 1) + 1;
        if ((g.input[s] + 2 * g.pad_begin[s] - extent) / g.stride[s] + 1 != g.output[s]) {
            return "cannot express output_padding of at least the stride (an output no convolution maps to)";
        }
    }
    return {};
}

std::string spatial_dims_text(const SpatialDims& dims, int spatial_rank) {
    std::ostringstream s;
    for (int i = 0; i < spatial_rank; ++i) s << (i ? "x" : "") << dims[static_cast<std::size_t>(i)];
    return s.str();
}

void assign_per_dim(SpatialDims& dims, std::initializer_list<std::int64_t> values, int spatial_rank,
                    const char* owner, const char* what) {
    CONVKIT_REQUIRE(static_cast<int>(values.size()) == spatial_rank, owner, what, " needs ", spatial_rank,
                    " values (one per spatial dim), got ", values.size());
    std::copy(values.begin(), values.end(), dims.begin());
}

const char* spatial_dim_name(int spatial_rank, int dim) {
    static const char* names[] = {"D", "H", "W"};
    return names[3 - spatial_rank + dim];
}

void check_image_shape(std::string_view op, const char* what, const Shape& shape, int spatial_rank) {
    static const char* data_layouts[] = {"", "[N, C, W]", "[N, C, H, W]", "[N, C, D, H, W]"};
    static const char* kernel_dims[] = {"", "kW", "kH, kW", "kD, kH, kW"};
    if (shape.rank() != spatial_rank + 2) {  // the layout text is built only for the message
        const std::string_view name(what);
        const std::string layout = name == "weight" ? concat("[C_out, C_in / groups, ", kernel_dims[spatial_rank], "]")
                                   : name == "transposed weight"
                                       ? concat("[C_in, C_out / groups, ", kernel_dims[spatial_rank], "]")
                                       : std::string(data_layouts[spatial_rank]);
        CONVKIT_REQUIRE(false, op, what, " must have rank ", spatial_rank + 2, " (", layout, "), got shape ",
                        shape.to_string());
    }
    for (std::int64_t d : shape) {
        CONVKIT_REQUIRE(d >= 1, op, what, " shape ", shape.to_string(), " has a zero or negative dimension");
    }
}

Shape image_shape(std::int64_t batch, std::int64_t channels, const SpatialDims& dims, int spatial_rank) {
    std::vector<std::int64_t> shape{batch, channels};
    for (int i = 3 - spatial_rank; i < 3; ++i) shape.push_back(dims[static_cast<std::size_t>(i)]);
    return Shape(shape);
}

Shape ConvGeometry::input_shape() const { return image_shape(batch, in_channels, input, spatial_rank); }
Shape ConvGeometry::output_shape() const { return image_shape(batch, out_channels, output, spatial_rank); }
Shape ConvGeometry::weight_shape() const {
    return image_shape(out_channels, in_channels_per_group(), kernel, spatial_rank);
}
Shape PoolGeometry::output_shape() const { return image_shape(batch, channels, output, spatial_rank); }

}  // namespace convkit::detail
