// Pooling entry points: checks, problem, variant, call. A forward call that records for
// autograd chooses its backward variant then; the backward runs it on the stored problem.
#include "convkit/ops/pool.h"

#include <algorithm>

#include "autograd/graph.h"
#include "core/check.h"
#include "backend_api/selection.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
using detail::PoolChoice;
using detail::PoolGeometry;
using detail::PoolOp;
using detail::PoolOperands;
using detail::PoolProblem;
using detail::PoolOpFamily;

std::vector<std::int64_t> ones(int count) {
    return std::vector<std::int64_t>(static_cast<std::size_t>(count), 1);
}

Shape spatial_sizes_of(const Shape& shape) {
    return Shape(std::vector<std::int64_t>(shape.begin() + 2, shape.end()));
}

// One pass into a new tensor, on the variant chosen now.
Tensor run_pass(std::string_view op, const PoolProblem& problem, PoolPass pass, const Shape& shape,
                const PoolOperands& operands, const Tensor& like) {
    PoolChoice choice;
    return detail::run_pass_into(op, problem, pass, choice, shape, operands, like);
}

// Runs the forward of `problem` and records its backward with the same problem and the backward
// variant chosen now. Max pooling's backward reads x; the average poolings' do not.
Tensor pool_forward(std::string_view op, const Tensor& input, const PoolProblem& problem) {
    Tensor out = run_pass(op, problem, PoolPass::Forward, problem.geometry.output_shape(),
                          {.x = input.raw_data()}, input);
    if (!autograd::should_record({input})) return out;
    const bool max = problem.op == PoolOp::Max;
    autograd::record(std::string(op), out, {input},
                     [x = max ? autograd::SavedTensor(input) : autograd::SavedTensor(), x_shape = input.shape(),
                      problem, choice = detail::choose_variant(op, problem, PoolPass::Backward),
                      op](const Tensor& dy, const autograd::NeedsGrad&) mutable {
                         const PoolOperands operands{.x = x.defined() ? x.get().raw_data() : nullptr,
                                                     .dy = dy.raw_data()};
                         return std::vector<Tensor>{
                             detail::run_pass_into(op, problem, PoolPass::Backward, choice, x_shape, operands, dy)};
                     });
    return out;
}
}  // namespace

Tensor max_pool_forward(const Tensor& input_in, const PoolParams& params) {
    const Tensor input = detail::contiguous_operand(input_in);
    const std::string_view op = detail::pool_op_label(params.spatial_rank, PoolOpFamily::Max, false);
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Max);
    return pool_forward(op, input, detail::pool_problem(g, PoolOp::Max, input.dtype(), input.device()));
}

Tensor max_pool_backward(const Tensor& grad_output_in, const Tensor& input_in, const PoolParams& params) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const Tensor input = detail::contiguous_operand(input_in);
    const std::string_view op = detail::pool_op_label(params.spatial_rank, PoolOpFamily::Max, true);
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Max);
    detail::check_grad_output(op, grad_output, g.output_shape());
    const PoolProblem problem = detail::pool_problem(g, PoolOp::Max, input.dtype(), input.device());
    return run_pass(op, problem, PoolPass::Backward, input.shape(),
                    {.x = input.raw_data(), .dy = grad_output.raw_data()}, input);
}

Tensor avg_pool_forward(const Tensor& input_in, const PoolParams& params) {
    const Tensor input = detail::contiguous_operand(input_in);
    const std::string_view op = detail::pool_op_label(params.spatial_rank, PoolOpFamily::Average, false);
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Average);
    return pool_forward(op, input, detail::pool_problem(g, PoolOp::Average, input.dtype(), input.device()));
}

Tensor avg_pool_backward(const Tensor& grad_output_in, const Shape& input_shape, const PoolParams& params) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const std::string_view op = detail::pool_op_label(params.spatial_rank, PoolOpFamily::Average, true);
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    const PoolGeometry g = detail::pool_geometry(op, input_shape, params, PoolKind::Average);
    detail::check_grad_output(op, grad_output, g.output_shape());
    const PoolProblem problem = detail::pool_problem(g, PoolOp::Average, grad_output.dtype(), grad_output.device());
    return run_pass(op, problem, PoolPass::Backward, input_shape, {.dy = grad_output.raw_data()}, grad_output);
}

namespace {
// The rank comes from the tensor, so a tensor of no image rank names none.
int image_rank(const Tensor& t) { return t.defined() ? t.rank() - 2 : 0; }
}  // namespace

Tensor adaptive_avg_pool_forward(const Tensor& input_in, const std::vector<std::int64_t>& output_size) {
    const Tensor input = detail::contiguous_operand(input_in);
    const std::string_view op = detail::pool_op_label(image_rank(input), PoolOpFamily::AdaptiveAverage, false);
    detail::check_same_device_and_dtype(op, {{"input", input}});
    const PoolGeometry g = detail::adaptive_pool_geometry(op, input.shape(), output_size);
    return pool_forward(op, input, detail::pool_problem(g, PoolOp::AdaptiveAverage, input.dtype(), input.device()));
}

Tensor adaptive_avg_pool_backward(const Tensor& grad_output_in, const Shape& input_shape) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const std::string_view op = detail::pool_op_label(image_rank(grad_output), PoolOpFamily::AdaptiveAverage, true);
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    CONVKIT_REQUIRE(grad_output.rank() >= 3 && grad_output.rank() == input_shape.rank(), op, "grad_output shape ",
                    grad_output.shape().to_string(), " and input shape ", input_shape.to_string(),
                    " must both be [N, C, spatial...] of one rank");
    const PoolGeometry g =
        detail::adaptive_pool_geometry(op, input_shape, spatial_sizes_of(grad_output.shape()).to_vector());
    detail::check_grad_output(op, grad_output, g.output_shape());
    const PoolProblem problem =
        detail::pool_problem(g, PoolOp::AdaptiveAverage, grad_output.dtype(), grad_output.device());
    return run_pass(op, problem, PoolPass::Backward, input_shape, {.dy = grad_output.raw_data()}, grad_output);
}

// Global average pooling is adaptive pooling to one element per dim.
Tensor global_avg_pool_forward(const Tensor& input_in) {
    const Tensor input = detail::contiguous_operand(input_in);
    const std::string_view op = detail::pool_op_label(image_rank(input), PoolOpFamily::GlobalAverage, false);
    CONVKIT_REQUIRE(input.defined() && input.rank() >= 3, op, "input must be [N, C, spatial...], got ",
                    input.defined() ? input.shape().to_string() : std::string("an undefined tensor"));
    return adaptive_avg_pool_forward(input, ones(input.rank() - 2));
}

Tensor global_avg_pool_backward(const Tensor& grad_output_in, const Shape& input_shape) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const std::string_view op = detail::pool_op_label(image_rank(grad_output), PoolOpFamily::GlobalAverage, true);
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    const bool one_per_plane =
        grad_output.rank() >= 3 &&
        std::all_of(grad_output.shape().begin() + 2, grad_output.shape().end(), [](std::int64_t d) { return d == 1; });
    CONVKIT_REQUIRE(one_per_plane, op, "grad_output must be [N, C, 1...] (one value per plane), got ",
                    grad_output.shape().to_string());
    return adaptive_avg_pool_backward(grad_output, input_shape);
}

}  // namespace convkit
