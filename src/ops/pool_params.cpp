// PoolParams and the checked geometry of every pooling call.
#include <algorithm>
#include <sstream>

#include "convkit/conv_params.h"
#include "core/check.h"
#include "ops/op_support.h"
#include "backend_api/geometry.h"

namespace convkit {

namespace {
void set_per_dim(SpatialDims& dims, std::initializer_list<std::int64_t> values, int spatial_rank, const char* what) {
    detail::assign_per_dim(dims, values, spatial_rank, "PoolParams", what);
}

std::string dims_text(const SpatialDims& dims, int rank) { return detail::spatial_dims_text(dims, rank); }
}  // namespace

PoolParams::PoolParams(int rank, std::initializer_list<std::int64_t> kernel_size) : spatial_rank(rank) {
    CONVKIT_REQUIRE(rank >= 1 && rank <= 3, "PoolParams", "spatial_rank must be 1, 2 or 3, got ", rank);
    set_per_dim(kernel, kernel_size, rank, "kernel");
    stride = kernel;
}

PoolParams::PoolParams(int rank, std::int64_t kernel_size) : spatial_rank(rank) {
    CONVKIT_REQUIRE(rank >= 1 && rank <= 3, "PoolParams", "spatial_rank must be 1, 2 or 3, got ", rank);
    kernel = {kernel_size, kernel_size, kernel_size};
    stride = kernel;
}

PoolParams& PoolParams::set_stride(std::int64_t v) { return stride = {v, v, v}, *this; }
PoolParams& PoolParams::set_stride(std::initializer_list<std::int64_t> v) {
    return set_per_dim(stride, v, spatial_rank, "stride"), *this;
}
PoolParams& PoolParams::set_padding(std::int64_t v) { return padding = {v, v, v}, *this; }
PoolParams& PoolParams::set_padding(std::initializer_list<std::int64_t> v) {
    return set_per_dim(padding, v, spatial_rank, "padding"), *this;
}
PoolParams& PoolParams::set_dilation(std::int64_t v) { return dilation = {v, v, v}, *this; }
PoolParams& PoolParams::set_dilation(std::initializer_list<std::int64_t> v) {
    return set_per_dim(dilation, v, spatial_rank, "dilation"), *this;
}
PoolParams& PoolParams::set_ceil_mode(bool enabled) { return ceil_mode = enabled, *this; }
PoolParams& PoolParams::set_count_include_pad(bool enabled) { return count_include_pad = enabled, *this; }

std::string PoolParams::to_string() const {
    const int r = spatial_rank;
    std::ostringstream s;
    s << "k" << dims_text(kernel, r) << "_s" << dims_text(stride, r) << "_p" << dims_text(padding, r);
    if (std::any_of(dilation.begin(), dilation.begin() + r, [](std::int64_t v) { return v != 1; })) {
        s << "_d" << dims_text(dilation, r);
    }
    if (ceil_mode) s << "_ceil";
    if (!count_include_pad) s << "_excludepad";
    return s.str();
}

std::string pool_op_name(int spatial_rank, PoolKind kind) {
    return detail::concat(kind == PoolKind::Max ? "max_pool" : "avg_pool", spatial_rank, "d");
}

Shape pool_output_shape(const Shape& input, const PoolParams& params, PoolKind kind) {
    return detail::pool_geometry(pool_op_name(params.spatial_rank, kind), input, params, kind).output_shape();
}

namespace detail {

PoolGeometry pool_geometry(std::string_view op, const Shape& input, const PoolParams& params, PoolKind kind) {
    const int r = params.spatial_rank;
    CONVKIT_REQUIRE(r >= 1 && r <= 3, op, "spatial_rank must be 1, 2 or 3, got ", r);
    check_image_shape(op, "input", input, r);
    PoolGeometry g;
    g.spatial_rank = r;
    g.batch = input[0];
    g.channels = input[1];
    g.count_include_pad = params.count_include_pad;
    for (int i = 0; i < r; ++i) {
        const auto p = static_cast<std::size_t>(i);
        const auto s = static_cast<std::size_t>(3 - r + i);
        const char* dim = spatial_dim_name(r, i);
        CONVKIT_REQUIRE(params.kernel[p] >= 1, op, "kernel size must be at least 1, got ", params.kernel[p], " in dim ",
                        dim);
        CONVKIT_REQUIRE(kind == PoolKind::Max || params.dilation[p] == 1, op,
                        "dilation applies to max pooling only, got ", dims_text(params.dilation, r));
        // PyTorch's limit: every window then holds at least one input element.
        CONVKIT_REQUIRE(params.padding[p] >= 0 && params.padding[p] <= params.kernel[p] / 2, op, "padding ",
                        params.padding[p], " must be between 0 and half the kernel size ", params.kernel[p],
                        " in dim ", dim);
        g.input[s] = input[2 + i];
        g.kernel[s] = params.kernel[p];
        g.stride[s] = params.stride[p];
        g.padding[s] = params.padding[p];
        g.dilation[s] = params.dilation[p];
        g.output[s] = size_in_dim(op, dim, [&](const char* where) {
            return pool_output_size(g.input[s], g.kernel[s], g.stride[s], g.padding[s], g.dilation[s],
                                    params.ceil_mode, where);
        });
    }
    return g;
}

PoolGeometry adaptive_pool_geometry(std::string_view op, const Shape& input,
                                    const std::vector<std::int64_t>& output_size) {
    const int r = input.rank() - 2;
    CONVKIT_REQUIRE(r >= 1 && r <= 3, op, "input must have rank 3, 4 or 5 ([N, C, spatial...]), got shape ",
                    input.to_string());
    check_image_shape(op, "input", input, r);
    CONVKIT_REQUIRE(static_cast<int>(output_size.size()) == r, op, "output_size needs ", r,
                    " values for input shape ", input.to_string(), ", got ", output_size.size());
    PoolGeometry g;
    g.spatial_rank = r;
    g.batch = input[0];
    g.channels = input[1];
    for (int i = 0; i < r; ++i) {
        const auto s = static_cast<std::size_t>(3 - r + i);
        CONVKIT_REQUIRE(output_size[static_cast<std::size_t>(i)] >= 1, op, "output size must be at least 1, got ",
                        output_size[static_cast<std::size_t>(i)], " in dim ", spatial_dim_name(r, i));
        g.input[s] = input[2 + i];
        g.output[s] = output_size[static_cast<std::size_t>(i)];
    }
    return g;
}

}  // namespace detail
}  // namespace convkit
