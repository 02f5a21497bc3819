// Pooling entry points: checks, geometry, dispatch.
#include "convkit/ops/pool.h"

#include <algorithm>

#include "backends/host/pool_reference.h"
#include "core/check.h"
#include "kernels/pool.h"
#include "ops/geometry.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
using detail::PoolGeometry;

// Runs a pass into a new tensor of `shape` on `like`'s device, on the backend chosen for `op`:
// on_cuda(result, stream), or on_host(dtype tag, result) on the host reference.
template <typename OnCuda, typename OnHost>
Tensor run(const std::string& op, const Shape& shape, const Tensor& like, OnCuda on_cuda, OnHost on_host) {
    const Backend backend = detail::select_backend(op, like);
    Tensor result = Tensor::empty(shape, like.dtype(), like.device());
    if (backend == Backend::Cuda) {
        on_cuda(result, detail::stream_of(like));
    } else {
        detail::dispatch_dtype(like.dtype(), [&](auto tag) { on_host(tag, result); });
    }
    return result;
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
    return run(
        op, g.output_shape(), input,
        [&](Tensor& out, Stream stream) {
            kernels::max_pool_forward(g, input.dtype(), input.raw_data(), out.raw_data(), stream);
        },
        [&](auto tag, Tensor& out) {
            using T = decltype(tag);
            host::max_pool_forward_reference<T>(g, input.data<T>(), out.data<T>());
        });
}

Tensor max_pool_backward(const Tensor& grad_output, const Tensor& input, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Max) + "_backward";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Max);
    detail::check_grad_output(op, grad_output, g.output_shape());
    return run(
        op, input.shape(), input,
        [&](Tensor& out, Stream stream) {
            kernels::max_pool_backward(g, input.dtype(), grad_output.raw_data(), input.raw_data(), out.raw_data(),
                                       stream);
        },
        [&](auto tag, Tensor& out) {
            using T = decltype(tag);
            host::max_pool_backward_reference<T>(g, grad_output.data<T>(), input.data<T>(), out.data<T>());
        });
}

Tensor avg_pool_forward(const Tensor& input, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Average);
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Average);
    return run(
        op, g.output_shape(), input,
        [&](Tensor& out, Stream stream) {
            kernels::avg_pool_forward(g, input.dtype(), input.raw_data(), out.raw_data(), stream);
        },
        [&](auto tag, Tensor& out) {
            using T = decltype(tag);
            host::avg_pool_forward_reference<T>(g, input.data<T>(), out.data<T>());
        });
}

Tensor avg_pool_backward(const Tensor& grad_output, const Shape& input_shape, const PoolParams& params) {
    const std::string op = pool_op_name(params.spatial_rank, PoolKind::Average) + "_backward";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    const PoolGeometry g = detail::pool_geometry(op, input_shape, params, PoolKind::Average);
    detail::check_grad_output(op, grad_output, g.output_shape());
    return run(
        op, input_shape, grad_output,
        [&](Tensor& out, Stream stream) {
            kernels::avg_pool_backward(g, grad_output.dtype(), grad_output.raw_data(), out.raw_data(), stream);
        },
        [&](auto tag, Tensor& out) {
            using T = decltype(tag);
            host::avg_pool_backward_reference<T>(g, grad_output.data<T>(), out.data<T>());
        });
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
    return run(
        op, g.output_shape(), input,
        [&](Tensor& out, Stream stream) {
            kernels::adaptive_avg_pool_forward(g, input.dtype(), input.raw_data(), out.raw_data(), stream);
        },
        [&](auto tag, Tensor& out) {
            using T = decltype(tag);
            host::adaptive_avg_pool_forward_reference<T>(g, input.data<T>(), out.data<T>());
        });
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
    return run(
        op, input_shape, grad_output,
        [&](Tensor& out, Stream stream) {
            kernels::adaptive_avg_pool_backward(g, grad_output.dtype(), grad_output.raw_data(), out.raw_data(), stream);
        },
        [&](auto tag, Tensor& out) {
            using T = decltype(tag);
            host::adaptive_avg_pool_backward_reference<T>(g, grad_output.data<T>(), out.data<T>());
        });
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
