// Pooling entry points: checks, problem, variant, call. A forward call that records for
// autograd chooses its backward variant then; the backward runs it on the stored problem.
//
// Memory formats: input and output (and their gradients) run channels-last when they are and
// the variants the thread's policy picks support it (the host reference, cuda.direct and cudnn
// do; cudnn not for float64);
// otherwise they are converted to contiguous (counted) and the result converted back, so every
// result has the format of the tensor it derives from.
//
// Dtypes: a bfloat16/float16 call runs natively where a variant of the policy computes it
// (cuda.direct does, in float), else in float32 copies rounded once (the host).
#include "convkit/ops/pool.h"

#include <algorithm>

#include "autograd/graph.h"
#include "core/check.h"
#include "backend_api/selection.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
using detail::computed_in_float32;
using detail::is_reduced_precision_tensor;
using detail::kComputedInFloat32;
using detail::PoolChoice;
using detail::PoolGeometry;
using detail::PoolOp;
using detail::PoolOperands;
using detail::PoolOpFamily;
using detail::PoolProblem;

std::vector<std::int64_t> ones(int count) {
    return std::vector<std::int64_t>(static_cast<std::size_t>(count), 1);
}

Shape spatial_sizes_of(const Shape& shape) {
    return Shape(std::vector<std::int64_t>(shape.begin() + 2, shape.end()));
}

// The buffer of an operand, in the problem's layout (the caller converted it).
const void* activation(const Tensor& t) { return t.defined() ? t.raw_physical_data() : nullptr; }
void* scratch_data(const Tensor& t) {
    return t.defined() ? t.raw_data() : nullptr;
}

// Max pooling's argmax taps for a recorded forward (PoolOperands): a byte per output where the
// forward and backward variants are one that records them (chosen, not measured: a measured
// choice is known only after its pass runs), else undefined, and the backward reads x.
Tensor argmax_taps_for(const PoolProblem& problem, const PoolChoice& forward, const PoolChoice& backward) {
    const bool recorded = !forward.measure && !backward.measure && forward.variant == backward.variant &&
                          forward.variant->records_argmax_taps(problem);
    if (!recorded) return Tensor();
    const auto outputs = static_cast<std::size_t>(problem.geometry.planes() * problem.geometry.output_spatial());
    return detail::scratch_tensor(outputs, problem.device);
}

// Runs the forward of `contiguous` (in the input's format where the variants of the forward and,
// when recording, the backward pass support it) and records its backward with the same problem
// and the backward variant chosen now. Max pooling's backward reads the forward's argmax taps
// where its variant records them, else x; the average poolings' read neither. The result has
// the input's format.
Tensor pool_forward(std::string_view op, const Tensor& input_given, const PoolProblem& contiguous) {
    const bool records = autograd::should_record({input_given});
    const MemoryFormat given = input_given.memory_format();
    const MemoryFormat format = records
                                    ? detail::activation_format(contiguous, given, {PoolPass::Forward, PoolPass::Backward})
                                    : detail::activation_format(contiguous, given, {PoolPass::Forward});
    const PoolProblem problem = detail::with_activations_in(contiguous, format);
    const Tensor input = detail::operand_in_format(input_given, format);
    PoolChoice forward_choice = detail::choose_variant(op, problem, PoolPass::Forward);
    const PoolChoice backward_choice = records ? detail::choose_variant(op, problem, PoolPass::Backward) : PoolChoice{};
    const Tensor taps = records ? argmax_taps_for(problem, forward_choice, backward_choice) : Tensor();
    Tensor out =
        detail::run_pass_into(op, problem, PoolPass::Forward, forward_choice, problem.geometry.output_shape(),
                              PoolOperands{.x = activation(input), .argmax_taps = scratch_data(taps)}, input, format);
    if (records) {
        const bool reads_x = problem.op == PoolOp::Max && !taps.defined();
        autograd::record(
            std::string(op), out, {input},
            [x = reads_x ? autograd::SavedTensor(input) : autograd::SavedTensor(), taps, x_shape = input.shape(),
             problem, choice = backward_choice, op](const Tensor& dy_given, const autograd::NeedsGrad&) mutable {
                // dy in the problem's layout (a root gradient may come in another).
                const Tensor dy = detail::operand_in_format(dy_given, problem.x_layout);
                const PoolOperands operands{.x = x.defined() ? activation(x.get()) : nullptr,
                                            .dy = activation(dy),
                                            .argmax_taps = scratch_data(taps)};
                return std::vector<Tensor>{detail::run_pass_into(op, problem, PoolPass::Backward, choice, x_shape,
                                                                 operands, dy, problem.x_layout)};
            });
    }
    return detail::operand_in_format(out, input_given.memory_format());
}

// The backward pass of a public entry point on grad_output (and input, for max pooling).
Tensor pool_backward(std::string_view op, const PoolProblem& contiguous, const Shape& input_shape,
                     const Tensor& grad_output, const Tensor& input) {
    return detail::run_pass_on_activations(op, contiguous, PoolPass::Backward, input_shape, grad_output, input, true,
                                           [](const Tensor& dy, const Tensor& x) {
                                               return PoolOperands{.x = activation(x), .dy = activation(dy)};
                                           });
}

// The shared checks of the entry points: their tensors in either format, 16-bit ones computed
// in float32.
void check_operands(std::string_view op, std::initializer_list<detail::NamedTensor> tensors) {
    detail::check_same_device_and_dtype(op, tensors, kComputedInFloat32, detail::Layouts::Either);
}

// Whether a call on `t` runs natively: any dtype but 16-bit ones, and those where a variant of
// the thread's policy computes them for every pass the call runs (a recording forward's
// backward too). Otherwise the call is computed in float32 copies and rounded once.
bool runs_natively(const PoolProblem& problem, const Tensor& t, bool forward) {
    if (!is_reduced_precision_tensor(t)) return true;
    if (!forward) return detail::policy_runs(problem, {PoolPass::Backward});
    return autograd::should_record({t}) ? detail::policy_runs(problem, {PoolPass::Forward, PoolPass::Backward})
                                        : detail::policy_runs(problem, {PoolPass::Forward});
}
}  // namespace

Tensor max_pool_forward(const Tensor& input, const PoolParams& params) {
    const std::string_view op = detail::pool_op_label(params.spatial_rank, PoolOpFamily::Max, false);
    check_operands(op, {{"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Max);
    const PoolProblem problem = detail::pool_problem(g, PoolOp::Max, input.dtype(), input.device());
    if (!runs_natively(problem, input, true)) {
        return computed_in_float32(
            input.dtype(), [&](const Tensor& x) { return max_pool_forward(x, params); }, input);
    }
    return pool_forward(op, input, problem);
}

Tensor max_pool_backward(const Tensor& grad_output, const Tensor& input, const PoolParams& params) {
    const std::string_view op = detail::pool_op_label(params.spatial_rank, PoolOpFamily::Max, true);
    check_operands(op, {{"grad_output", grad_output}, {"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Max);
    detail::check_grad_output(op, grad_output, g.output_shape());
    const PoolProblem problem = detail::pool_problem(g, PoolOp::Max, input.dtype(), input.device());
    if (!runs_natively(problem, input, false)) {
        return computed_in_float32(
            input.dtype(), [&](const Tensor& dy, const Tensor& x) { return max_pool_backward(dy, x, params); },
            grad_output, input);
    }
    return pool_backward(op, problem, input.shape(), grad_output, input);
}

Tensor avg_pool_forward(const Tensor& input, const PoolParams& params) {
    const std::string_view op = detail::pool_op_label(params.spatial_rank, PoolOpFamily::Average, false);
    check_operands(op, {{"input", input}});
    const PoolGeometry g = detail::pool_geometry(op, input.shape(), params, PoolKind::Average);
    const PoolProblem problem = detail::pool_problem(g, PoolOp::Average, input.dtype(), input.device());
    if (!runs_natively(problem, input, true)) {
        return computed_in_float32(
            input.dtype(), [&](const Tensor& x) { return avg_pool_forward(x, params); }, input);
    }
    return pool_forward(op, input, problem);
}

Tensor avg_pool_backward(const Tensor& grad_output, const Shape& input_shape, const PoolParams& params) {
    const std::string_view op = detail::pool_op_label(params.spatial_rank, PoolOpFamily::Average, true);
    check_operands(op, {{"grad_output", grad_output}});
    const PoolGeometry g = detail::pool_geometry(op, input_shape, params, PoolKind::Average);
    detail::check_grad_output(op, grad_output, g.output_shape());
    const PoolProblem problem = detail::pool_problem(g, PoolOp::Average, grad_output.dtype(), grad_output.device());
    if (!runs_natively(problem, grad_output, false)) {
        return computed_in_float32(
            grad_output.dtype(), [&](const Tensor& dy) { return avg_pool_backward(dy, input_shape, params); },
            grad_output);
    }
    return pool_backward(op, problem, input_shape, grad_output, Tensor());
}

namespace {
// The rank comes from the tensor, so a tensor of no image rank names none.
int image_rank(const Tensor& t) { return t.defined() ? t.rank() - 2 : 0; }
}  // namespace

Tensor adaptive_avg_pool_forward(const Tensor& input, const std::vector<std::int64_t>& output_size) {
    const std::string_view op = detail::pool_op_label(image_rank(input), PoolOpFamily::AdaptiveAverage, false);
    check_operands(op, {{"input", input}});
    const PoolGeometry g = detail::adaptive_pool_geometry(op, input.shape(), output_size);
    const PoolProblem problem = detail::pool_problem(g, PoolOp::AdaptiveAverage, input.dtype(), input.device());
    if (!runs_natively(problem, input, true)) {
        return computed_in_float32(
            input.dtype(), [&](const Tensor& x) { return adaptive_avg_pool_forward(x, output_size); }, input);
    }
    return pool_forward(op, input, problem);
}

Tensor adaptive_avg_pool_backward(const Tensor& grad_output, const Shape& input_shape) {
    const std::string_view op = detail::pool_op_label(image_rank(grad_output), PoolOpFamily::AdaptiveAverage, true);
    check_operands(op, {{"grad_output", grad_output}});
    CONVKIT_REQUIRE(grad_output.rank() >= 3 && grad_output.rank() == input_shape.rank(), op, "grad_output shape ",
                    grad_output.shape().to_string(), " and input shape ", input_shape.to_string(),
                    " must both be [N, C, spatial...] of one rank");
    const PoolGeometry g =
        detail::adaptive_pool_geometry(op, input_shape, spatial_sizes_of(grad_output.shape()).to_vector());
    detail::check_grad_output(op, grad_output, g.output_shape());
    const PoolProblem problem =
        detail::pool_problem(g, PoolOp::AdaptiveAverage, grad_output.dtype(), grad_output.device());
    if (!runs_natively(problem, grad_output, false)) {
        return computed_in_float32(
            grad_output.dtype(), [&](const Tensor& dy) { return adaptive_avg_pool_backward(dy, input_shape); },
            grad_output);
    }
    return pool_backward(op, problem, input_shape, grad_output, Tensor());
}

// Global average pooling is adaptive pooling to one element per dim.
Tensor global_avg_pool_forward(const Tensor& input) {
    const std::string_view op = detail::pool_op_label(image_rank(input), PoolOpFamily::GlobalAverage, false);
    CONVKIT_REQUIRE(input.defined() && input.rank() >= 3, op, "input must be [N, C, spatial...], got ",
                    input.defined() ? input.shape().to_string() : std::string("an undefined tensor"));
    return adaptive_avg_pool_forward(input, ones(input.rank() - 2));
}

Tensor global_avg_pool_backward(const Tensor& grad_output, const Shape& input_shape) {
    const std::string_view op = detail::pool_op_label(image_rank(grad_output), PoolOpFamily::GlobalAverage, true);
    check_operands(op, {{"grad_output", grad_output}});
    const bool one_per_plane =
        grad_output.rank() >= 3 &&
        std::all_of(grad_output.shape().begin() + 2, grad_output.shape().end(), [](std::int64_t d) { return d == 1; });
    CONVKIT_REQUIRE(one_per_plane, op, "grad_output must be [N, C, 1...] (one value per plane), got ",
                    grad_output.shape().to_string());
    return adaptive_avg_pool_backward(grad_output, input_shape);
}

}  // namespace convkit
