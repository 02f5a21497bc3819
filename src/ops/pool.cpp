// Pooling entry points: checks, geometry, dispatch.
#include "convkit/ops/pool.h"

#include "backends/host/pool_reference.h"
#include "core/check.h"
#include "ops/geometry.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
using detail::PoolGeometry;

void check_grad_output(const std::string& op, const Tensor& grad_output, const Shape& expected) {
    CONVKIT_REQUIRE(grad_output.shape() == expected, op, "grad_output has shape ", grad_output.shape().to_string(),
                    " but the op's output has shape ", expected.to_string());
}

// Runs `pass(geometry, typed pointers...)` into a new tensor of `shape` on `like`'s device.
template <typename Pass>
Tensor run(const Shape& shape, const Tensor& like, Pass pass) {
    Tensor result = Tensor::empty(shape, like.dtype(), like.device());
    detail::dispatch_dtype(like.dtype(), [&](auto tag) { pass(tag, result); });
    return result;
}

std::vector<std::int64_t> ones(int count) { return std::vector<std::int64_t>(static_cast<std::size_t>(count), 1); }

Shape spatial_sizes_of(const Shape& shape) {
    return Shape(std::vector<std::int64_t>(shape.begin() + 2, shape.end()));
}
}  // namespace

Tensor max_pool_forward(const Tensor& input, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Max);
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Max);
    detail::require_host_backend(op, input);
    return run(g.output_shape(), input, [&](auto tag, Tensor& out) {
        using T = decltype(tag);
        host::max_pool_forward_reference<T>(g, input.data<T>(), out.data<T>());
    });
}

Tensor max_pool_backward(const Tensor& grad_output, const Tensor& input, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Max) + "_backward";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Max);
    check_grad_output(op, grad_output, g.output_shape());
    detail::require_host_backend(op, input);
    return run(input.shape(), input, [&](auto tag, Tensor& out) {
        using T = decltype(tag);
        host::max_pool_backward_reference<T>(g, grad_output.data<T>(), input.data<T>(), out.data<T>());
    });
}

Tensor avg_pool_forward(const Tensor& input, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Average);
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Average);
    detail::require_host_backend(op, input);
    return run(g.output_shape(), input, [&](auto tag, Tensor& out) {
        using T = decltype(tag);
        host::avg_pool_forward_reference<T>(g, input.data<T>(), out.data<T>());
    });
}

Tensor avg_pool_backward(const Tensor& grad_output, const Shape& input_shape, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Average) + "_backward";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    const PoolGeometry g = detail::pool_geometry(op, input_shape, params, PoolKind::Average);
    check_grad_output(op, grad_output, g.output_shape());
    detail::require_host_backend(op, grad_output);
    return run(input_shape, grad_output, [&](auto tag, Tensor& out) {
        using T = decltype(tag);
        host::avg_pool_backward_reference<T>(g, grad_output.data<T>(), out.data<T>());
    });
}

Tensor adaptive_avg_pool_forward(const Tensor& input, const std::vector<std::int64_t>& output_size) {
    const std::string op = "adaptive_avg_pool";
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::adaptive_pool_geometry(op, input.shape(), output_size);
    detail::require_host_backend(op, input);
    return run(g.output_shape(), input, [&](auto tag, Tensor& out) {
        using T = decltype(tag);
        host::adaptive_avg_pool_forward_reference<T>(g, input.data<T>(), out.data<T>());
    });
}

Tensor adaptive_avg_pool_backward(const Tensor& grad_output, const Shape& input_shape) {
    const std::string op = "adaptive_avg_pool_backward";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    CONVKIT_REQUIRE(grad_output.rank() >= 3 && grad_output.rank() == input_shape.rank(), op, "grad_output shape ",
                    grad_output.shape().to_string(), " and input shape ", input_shape.to_string(),
                    " must both be [N, C, spatial...] of one rank");
    const PoolGeometry g =
        detail::adaptive_pool_geometry(op, input_shape, spatial_sizes_of(grad_output.shape()).to_vector());
    check_grad_output(op, grad_output, g.output_shape());
    detail::require_host_backend(op, grad_output);
    return run(input_shape, grad_output, [&](auto tag, Tensor& out) {
        using T = decltype(tag);
        host::adaptive_avg_pool_backward_reference<T>(g, grad_output.data<T>(), out.data<T>());
    });
}

// Global average pooling is adaptive pooling to one element per dim.
Tensor global_avg_pool_forward(const Tensor& input) {
    CONVKIT_REQUIRE(input.defined() && input.rank() >= 3, "global_avg_pool", "input must be [N, C, spatial...], got ",
                    input.defined() ? input.shape().to_string() : std::string("an undefined tensor"));
    return adaptive_avg_pool_forward(input, ones(input.rank() - 2));
}

Tensor global_avg_pool_backward(const Tensor& grad_output, const Shape& input_shape) {
    return adaptive_avg_pool_backward(grad_output, input_shape);
}

}  // namespace convkit
