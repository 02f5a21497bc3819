// Pooling entry points: checks, geometry, dispatch.
#include "convkit/ops/pool.h"

#include <algorithm>

#include "autograd/graph.h"
#include "core/check.h"
#include "backend_api/backend_registry.h"
#include "backend_api/geometry.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
using detail::PoolGeometry;

// A new tensor of `shape` with `like`'s dtype and device.
Tensor output_like(const Shape& shape, const Tensor& like) {
    return Tensor::empty(shape, like.dtype(), like.device());
}

std::vector<std::int64_t> ones(int count) {
    return std::vector<std::int64_t>(static_cast<std::size_t>(count), 1);
}

Shape spatial_sizes_of(const Shape& shape) {
    return Shape(std::vector<std::int64_t>(shape.begin() + 2, shape.end()));
}
}  // namespace

Tensor max_pool_forward(const Tensor& input, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Max);
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Max);
    const auto& backend = detail::pool_backend_for(op, g, detail::PoolOp::Max, input.dtype(), input.device());
    Tensor out = output_like(g.output_shape(), input);
    backend.max_forward(g, input.dtype(), input.raw_data(), out.raw_data(), detail::stream_of(input));
    autograd::record(op, out, {input},
                     [x = autograd::SavedTensor(input), params](const Tensor& dy, const autograd::NeedsGrad&) {
                         return std::vector<Tensor>{max_pool_backward(dy, x.get(), params)};
                     });
    return out;
}

Tensor max_pool_backward(const Tensor& grad_output, const Tensor& input, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Max) + "_backward";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Max);
    detail::check_grad_output(op, grad_output, g.output_shape());
    const auto& backend = detail::pool_backend_for(op, g, detail::PoolOp::Max, input.dtype(), input.device());
    Tensor out = output_like(input.shape(), input);
    backend.max_backward(g, input.dtype(), grad_output.raw_data(), input.raw_data(), out.raw_data(),
                         detail::stream_of(input));
    return out;
}

Tensor avg_pool_forward(const Tensor& input, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Average);
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Average);
    const auto& backend = detail::pool_backend_for(op, g, detail::PoolOp::Average, input.dtype(), input.device());
    Tensor out = output_like(g.output_shape(), input);
    backend.avg_forward(g, input.dtype(), input.raw_data(), out.raw_data(), detail::stream_of(input));
    autograd::record(op, out, {input}, [x_shape = input.shape(), params](const Tensor& dy, const autograd::NeedsGrad&) {
        return std::vector<Tensor>{avg_pool_backward(dy, x_shape, params)};
    });
    return out;
}

Tensor avg_pool_backward(const Tensor& grad_output, const Shape& input_shape, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Average) + "_backward";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    const PoolGeometry g = detail::pool_geometry(op, input_shape, params, PoolKind::Average);
    detail::check_grad_output(op, grad_output, g.output_shape());
    const auto& backend =
        detail::pool_backend_for(op, g, detail::PoolOp::Average, grad_output.dtype(), grad_output.device());
    Tensor out = output_like(input_shape, grad_output);
    backend.avg_backward(g, grad_output.dtype(), grad_output.raw_data(), out.raw_data(),
                         detail::stream_of(grad_output));
    return out;
}

namespace {
// "adaptive_avg_pool2d"; the rank comes from the tensor, so a tensor of no image rank names none.
std::string rank_op_name(const char* family, const Tensor& t, const char* pass = "") {
    const int r = t.defined() ? t.rank() - 2 : 0;
    return r >= 1 && r <= 3 ? detail::concat(family, r, "d", pass) : detail::concat(family, pass);
}
}  // namespace

Tensor adaptive_avg_pool_forward(const Tensor& input, const std::vector<std::int64_t>& output_size) {
    const std::string op = rank_op_name("adaptive_avg_pool", input);
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::adaptive_pool_geometry(op, input.shape(), output_size);
    const auto& backend =
        detail::pool_backend_for(op, g, detail::PoolOp::AdaptiveAverage, input.dtype(), input.device());
    Tensor out = output_like(g.output_shape(), input);
    backend.adaptive_forward(g, input.dtype(), input.raw_data(), out.raw_data(), detail::stream_of(input));
    autograd::record(op, out, {input}, [x_shape = input.shape()](const Tensor& dy, const autograd::NeedsGrad&) {
        return std::vector<Tensor>{adaptive_avg_pool_backward(dy, x_shape)};
    });
    return out;
}

Tensor adaptive_avg_pool_backward(const Tensor& grad_output, const Shape& input_shape) {
    const std::string op = rank_op_name("adaptive_avg_pool", grad_output, "_backward");
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    CONVKIT_REQUIRE(grad_output.rank() >= 3 && grad_output.rank() == input_shape.rank(), op, "grad_output shape ",
                    grad_output.shape().to_string(), " and input shape ", input_shape.to_string(),
                    " must both be [N, C, spatial...] of one rank");
    const PoolGeometry g =
        detail::adaptive_pool_geometry(op, input_shape, spatial_sizes_of(grad_output.shape()).to_vector());
    detail::check_grad_output(op, grad_output, g.output_shape());
    const auto& backend =
        detail::pool_backend_for(op, g, detail::PoolOp::AdaptiveAverage, grad_output.dtype(), grad_output.device());
    Tensor out = output_like(input_shape, grad_output);
    backend.adaptive_backward(g, grad_output.dtype(), grad_output.raw_data(), out.raw_data(),
                              detail::stream_of(grad_output));
    return out;
}

// Global average pooling is adaptive pooling to one element per dim.
Tensor global_avg_pool_forward(const Tensor& input) {
    const std::string op = rank_op_name("global_avg_pool", input);
    CONVKIT_REQUIRE(input.defined() && input.rank() >= 3, op, "input must be [N, C, spatial...], got ",
                    input.defined() ? input.shape().to_string() : std::string("an undefined tensor"));
    return adaptive_avg_pool_forward(input, ones(input.rank() - 2));
}

Tensor global_avg_pool_backward(const Tensor& grad_output, const Shape& input_shape) {
    const std::string op = rank_op_name("global_avg_pool", grad_output, "_backward");
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    const bool one_per_plane =
        grad_output.rank() >= 3 &&
        std::all_of(grad_output.shape().begin() + 2, grad_output.shape().end(), [](std::int64_t d) { return d == 1; });
    CONVKIT_REQUIRE(one_per_plane, op, "grad_output must be [N, C, 1...] (one value per plane), got ",
                    grad_output.shape().to_string());
    return adaptive_avg_pool_backward(grad_output, input_shape);
}

}  // namespace convkit
