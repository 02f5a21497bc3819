// Convolution and transposed convolution entry points: checks, problem, variant, call.
// A transposed convolution runs as the adjoint of the convolution its geometry describes, so
// each variant implements three convolution passes and gets all six ops from them.
//
// A forward call checks its arguments and builds its problem once; when it records for
// autograd it also chooses the variants of the backward passes it will need, so the backward
// runs them on the stored problem without checking or choosing again.
//
// Memory formats: the activations (input, output and their gradients) run in their own format
// when the variants the thread's policy picks support it (the host reference runs both);
// otherwise they are converted to the other format (counted) and the result converted back, so
// every result has the format of the activation it derives from. The weight always runs
// contiguous.
//
// Dtypes: a bfloat16/float16 call runs natively where a variant of the policy computes it in
// some format (cuda.igemm on a GPU: channels-last, channels per group a multiple of 8); else it
// is computed in float32 on widened operands and rounded once (computed_in_float32).
#include "convkit/ops/conv.h"

#include <initializer_list>
#include <optional>

#include "autograd/graph.h"
#include "backend_api/selection.h"
#include "convkit/autograd.h"
#include "convkit/ops/activation.h"
#include "convkit/ops/elementwise.h"
#include "core/check.h"
#include "ops/op_support.h"
#include "ops/unary.h"

namespace convkit {

namespace {
using detail::computed_in_float32;
using detail::ConvChoice;
using detail::ConvGeometry;
using detail::ConvOperands;
using detail::ConvProblem;
using detail::is_reduced_precision_tensor;
using detail::kComputedInFloat32;

const void* data_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

// The buffer of an activation operand, in the problem's layout (checked by the caller).
const void* activation(const Tensor& t) { return t.raw_physical_data(); }

// dy viewed as [batch, channels, spatial] for the bias gradient.
detail::BiasGradShape bias_grad_of(const Shape& dy) {
    const std::int64_t batch = dy[0];
    const std::int64_t channels = dy[1];
    const std::int64_t spatial = channels == 0 || batch == 0 ? 0 : dy.numel() / (batch * channels);
    return {batch, channels, spatial};
}

// Forward and backward-data produce an activation (in the problem's layout); the weight and
// bias gradients are contiguous.
bool produces_activation(ConvPass pass) { return pass == ConvPass::Forward || pass == ConvPass::BackwardData; }
MemoryFormat result_format(const ConvProblem& problem, ConvPass pass) {
    return produces_activation(pass) ? problem.x_layout : MemoryFormat::Contiguous;
}

// One pass into a new tensor, on the variant of `choice` (chosen at forward time for autograd).
Tensor run_pass(std::string_view op, const ConvProblem& problem, ConvPass pass, ConvChoice& choice, const Shape& shape,
                const ConvOperands& operands, const Tensor& like) {
    return detail::run_pass_into(op, problem, pass, choice, shape, operands, like, result_format(problem, pass));
}

// One pass of a public backward entry point on its activations `a` and `b` (op_support.h).
template <typename MakeOperands>
Tensor run_pass_on_activations(std::string_view op, const ConvProblem& contiguous, ConvPass pass, const Shape& shape,
                               const Tensor& a, const Tensor& b, MakeOperands operands_of) {
    return detail::run_pass_on_activations(op, contiguous, pass, shape, a, b, produces_activation(pass), operands_of);
}

// The passes that compute each input's gradient. A convolution y = conv(x, w) + b takes dx from
// backward-data and dw from backward-filter; a transposed one is the adjoint: dx from forward,
// and dw from backward-filter with the roles of x and dy swapped. dy is first brought to the
// problem's layout (autograd may deliver it in another: a root gradient given by the caller).
struct ConvBackward {
    ConvProblem problem;
    bool transposed = false;
    Shape x_shape;
    Shape w_shape;
    ConvChoice data;    // for dx
    ConvChoice filter;  // for dw
    ConvChoice bias;    // for db

    Tensor in_layout(const Tensor& dy) const { return detail::operand_in_format(dy, problem.x_layout); }

    Tensor grad_input(std::string_view op, const Tensor& dy_given, const Tensor& w) {
        const Tensor dy = in_layout(dy_given);
        if (transposed) {
            return run_pass(op, problem, ConvPass::Forward, data, x_shape, {.x = activation(dy), .w = w.raw_data()},
                            dy);
        }
        return run_pass(op, problem, ConvPass::BackwardData, data, x_shape, {.w = w.raw_data(), .dy = activation(dy)},
                        dy);
    }
    Tensor grad_weight(std::string_view op, const Tensor& dy_given, const Tensor& x) {
        const Tensor dy = in_layout(dy_given);
        // In the adjoint convolution the transposed input plays the gradient and dy the input.
        const ConvOperands operands = transposed ? ConvOperands{.x = activation(dy), .dy = activation(x)}
                                                 : ConvOperands{.x = activation(x), .dy = activation(dy)};
        return run_pass(op, problem, ConvPass::BackwardFilter, filter, w_shape, operands, dy);
    }
    Tensor grad_bias(std::string_view op, const Tensor& dy_given) {
        const Tensor dy = in_layout(dy_given);
        return run_pass(op, problem, ConvPass::BackwardBias, bias, Shape{problem.bias_grad.channels},
                        {.dy = activation(dy)}, dy);
    }
};

ConvPass data_pass(bool transposed) { return transposed ? ConvPass::Forward : ConvPass::BackwardData; }

// The residual and ReLU a forward applies after its bias (ConvEpilogue), the residual in the
// problem's layout.
struct Epilogue {
    Tensor residual;
    bool relu = false;

    bool any() const { return residual.defined() || relu; }
};

// Records the backward of y = relu(op(x, w) + b + r) with the problem of the forward call and the
// variants chosen now for the passes whose gradients will be wanted. Each operand is saved only
// if the other's gradient needs it; y only for the ReLU's mask, applied to dy once for every
// gradient (the residual's is that masked dy itself).
void record_conv(std::string_view op, Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                 const Epilogue& epilogue, ConvProblem problem, bool transposed) {
    if (!autograd::should_record({x, w, bias, epilogue.residual})) return;
    using autograd::SavedTensor;
    const bool need_dx = x.requires_grad();
    const bool need_dw = w.requires_grad();
    const bool need_db = bias.defined() && bias.requires_grad();
    problem.bias_grad = bias_grad_of(y.shape());
    ConvBackward backward{problem, transposed, x.shape(), w.shape(), {}, {}, {}};
    if (need_dx) backward.data = detail::choose_variant(op, problem, data_pass(transposed));
    if (need_dw) backward.filter = detail::choose_variant(op, problem, ConvPass::BackwardFilter);
    if (need_db) backward.bias = detail::choose_variant(op, problem, ConvPass::BackwardBias);
    autograd::record(
        std::string(op), y, {x, w, bias, epilogue.residual},
        [saved_x = need_dw ? SavedTensor(x) : SavedTensor(), saved_w = need_dx ? SavedTensor(w) : SavedTensor(),
         saved_y = epilogue.relu ? SavedTensor(y) : SavedTensor(), backward = std::move(backward),
         op](const Tensor& dy_given, const autograd::NeedsGrad& needs) mutable {
            const Tensor dy =
                saved_y.defined()
                    ? detail::unary_backward_raw(detail::UnaryOp::Relu, backward.in_layout(dy_given), saved_y.get())
                    : dy_given;
            std::vector<Tensor> grads(4);
            if (needs[0]) grads[0] = backward.grad_input(op, dy, saved_w.get());
            if (needs[1]) grads[1] = backward.grad_weight(op, dy, saved_x.get());
            if (needs[2]) grads[2] = backward.grad_bias(op, dy);
            if (needs[3]) grads[3] = dy;
            return grads;
        });
}

// The epilogue after a pass whose variant does not fuse it: the same arithmetic in separate
// elementwise ops, recorded as part of the convolution's node rather than as nodes of their own.
Tensor unfused_epilogue(Tensor y, const Epilogue& epilogue) {
    const NoGradGuard inside_the_convolutions_node;
    if (epilogue.residual.defined()) y = add(y, epilogue.residual);
    if (epilogue.relu) y = relu(y);
    return y;
}

// The passes a forward call runs now and, when it records for autograd, those its backward may.
constexpr std::initializer_list<ConvPass> kForwardOnly = {ConvPass::Forward};
constexpr std::initializer_list<ConvPass> kTransposedForwardOnly = {ConvPass::BackwardData};
constexpr std::initializer_list<ConvPass> kEveryPass = {ConvPass::Forward, ConvPass::BackwardData,
                                                        ConvPass::BackwardFilter, ConvPass::BackwardBias};

// The forward of a convolution (or transposed convolution, as its adjoint's backward-data), in
// the input's format where the variants of this pass (and, when recording, of every backward
// pass) support it; the result has the input's format. A 16-bit call that no variant of the
// thread's policy runs natively is `widened()`: computed in float32 and rounded once.
template <typename Widened>
Tensor forward(std::string_view op, const Tensor& input_given, const Tensor& weight, const Tensor& bias,
               const ConvEpilogue& epilogue_given, const ConvGeometry& g, bool transposed, Widened widened) {
    const ConvProblem contiguous = detail::conv_problem(g, input_given.dtype(), input_given.device());
    const ConvPass pass = transposed ? ConvPass::BackwardData : ConvPass::Forward;
    const std::optional<MemoryFormat> native = detail::supported_format(
        contiguous, input_given.memory_format(),
        autograd::should_record({input_given, weight, bias, epilogue_given.residual}) ? kEveryPass
        : transposed                                                                  ? kTransposedForwardOnly
                                                                                      : kForwardOnly);
    if (!native && is_reduced_precision_tensor(input_given)) return widened();
    const ConvProblem problem = detail::with_activations_in(contiguous, native.value_or(MemoryFormat::Contiguous));
    const Tensor input = detail::operand_in_format(input_given, problem.x_layout);
    const Epilogue epilogue{detail::operand_in_format(epilogue_given.residual, problem.y_layout), epilogue_given.relu};
    ConvOperands operands{.w = weight.raw_data(), .bias = data_or_null(bias)};
    (transposed ? operands.dy : operands.x) = activation(input);
    if (epilogue.residual.defined()) operands.residual = activation(epilogue.residual);
    operands.relu = epilogue.relu;
    ConvChoice choice;
    Tensor y = run_pass(op, problem, pass, choice, transposed ? g.input_shape() : g.output_shape(), operands, input);
    if (epilogue.any() && !choice.variant->fuses_epilogue()) y = unfused_epilogue(y, epilogue);
    record_conv(op, y, input, weight, bias, epilogue, problem, transposed);
    return detail::operand_in_format(y, input_given.memory_format());
}

// Whether a public backward entry point runs `pass` of `problem` natively; a 16-bit call that it
// does not is computed in float32.
bool computed_natively(const ConvProblem& problem, ConvPass pass, const Tensor& grad_output) {
    return !is_reduced_precision_tensor(grad_output) || detail::policy_runs(problem, {pass});
}

// The shared checks of the public entry points: activations in either format, the weight (and
// bias) converted to contiguous before them.
void check_operands(std::string_view op, std::initializer_list<detail::NamedTensor> tensors) {
    detail::check_same_device_and_dtype(op, tensors, kComputedInFloat32, detail::Layouts::Either);
}

// An epilogue's residual: undefined, or the output's shape on the input's device and dtype, in
// either memory format.
void check_residual(std::string_view op, const Tensor& residual, const Shape& output_shape, const Tensor& input) {
    if (!residual.defined()) return;
    check_operands(op, {{"input", input}, {"epilogue.residual", residual}});
    CONVKIT_REQUIRE(residual.shape() == output_shape, op, "epilogue.residual must have the output's shape ",
                    output_shape.to_string(), ", got ", residual.shape().to_string());
}
}  // namespace

Tensor conv_forward(const Tensor& input, const Tensor& weight, const Tensor& bias, const ConvParams& params) {
    return conv_forward(input, weight, bias, params, ConvEpilogue{});
}

Tensor conv_forward(const Tensor& input, const Tensor& weight_in, const Tensor& bias_in, const ConvParams& params,
                    const ConvEpilogue& epilogue) {
    const Tensor weight = detail::contiguous_operand(weight_in);
    const Tensor bias = detail::contiguous_operand(bias_in);
    const std::string_view op = detail::conv_op_label(params.spatial_rank, false, detail::ConvOpPass::Forward);
    check_operands(op, {{"input", input}, {"weight", weight}});
    const ConvGeometry g = detail::conv_geometry(op, input.shape(), weight.shape(), params);
    detail::check_bias(op, bias, g.out_channels, input);
    check_residual(op, epilogue.residual, g.output_shape(), input);
    return forward(op, input, weight, bias, epilogue, g, false, [&] {
        return computed_in_float32(
            input.dtype(),
            [&](const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& r) {
                return conv_forward(x, w, b, params, {r, epilogue.relu});
            },
            input, weight, bias, epilogue.residual);
    });
}

Tensor conv_backward_data(const Tensor& grad_output, const Tensor& weight_in, const Shape& input_shape,
                          const ConvParams& params) {
    const Tensor weight = detail::contiguous_operand(weight_in);
    const std::string_view op = detail::conv_op_label(params.spatial_rank, false, detail::ConvOpPass::BackwardData);
    check_operands(op, {{"grad_output", grad_output}, {"weight", weight}});
    const ConvGeometry g = detail::conv_geometry(op, input_shape, weight.shape(), params);
    detail::check_grad_output(op, grad_output, g.output_shape());
    const ConvProblem problem = detail::conv_problem(g, grad_output.dtype(), grad_output.device());
    if (!computed_natively(problem, ConvPass::BackwardData, grad_output)) {
        return computed_in_float32(
            grad_output.dtype(),
            [&](const Tensor& dy, const Tensor& w) { return conv_backward_data(dy, w, input_shape, params); },
            grad_output, weight);
    }
    return run_pass_on_activations(op, problem, ConvPass::BackwardData, g.input_shape(), grad_output, Tensor(),
                                   [&](const Tensor& dy, const Tensor&) {
                                       return ConvOperands{.w = weight.raw_data(), .dy = activation(dy)};
                                   });
}

Tensor conv_backward_filter(const Tensor& grad_output, const Tensor& input, const Shape& weight_shape,
                            const ConvParams& params) {
    const std::string_view op = detail::conv_op_label(params.spatial_rank, false, detail::ConvOpPass::BackwardFilter);
    check_operands(op, {{"grad_output", grad_output}, {"input", input}});
    const ConvGeometry g = detail::conv_geometry(op, input.shape(), weight_shape, params);
    detail::check_grad_output(op, grad_output, g.output_shape());
    const ConvProblem problem = detail::conv_problem(g, grad_output.dtype(), grad_output.device());
    if (!computed_natively(problem, ConvPass::BackwardFilter, grad_output)) {
        return computed_in_float32(
            grad_output.dtype(),
            [&](const Tensor& dy, const Tensor& x) { return conv_backward_filter(dy, x, weight_shape, params); },
            grad_output, input);
    }
    return run_pass_on_activations(op, problem, ConvPass::BackwardFilter, g.weight_shape(), grad_output, input,
                                   [](const Tensor& dy, const Tensor& x) {
                                       return ConvOperands{.x = activation(x), .dy = activation(dy)};
                                   });
}

Tensor conv_backward_bias(const Tensor& grad_output) {
    constexpr std::string_view op = "conv_backward_bias";
    check_operands(op, {{"grad_output", grad_output}});
    CONVKIT_REQUIRE(grad_output.rank() >= 2, op, "grad_output must be [N, C, ...], got shape ",
                    grad_output.shape().to_string());
    // The bias gradient depends on no geometry, only on dy's shape.
    ConvProblem problem = detail::conv_problem(ConvGeometry{}, grad_output.dtype(), grad_output.device());
    problem.bias_grad = bias_grad_of(grad_output.shape());
    if (!computed_natively(problem, ConvPass::BackwardBias, grad_output)) {
        return computed_in_float32(grad_output.dtype(), &conv_backward_bias, grad_output);
    }
    return run_pass_on_activations(op, problem, ConvPass::BackwardBias, Shape{problem.bias_grad.channels},
                                   grad_output, Tensor(), [](const Tensor& dy, const Tensor&) {
                                       return ConvOperands{.dy = activation(dy)};
                                   });
}

Tensor conv_transpose_forward(const Tensor& input, const Tensor& weight, const Tensor& bias, const ConvParams& params) {
    return conv_transpose_forward(input, weight, bias, params, ConvEpilogue{});
}

Tensor conv_transpose_forward(const Tensor& input, const Tensor& weight_in, const Tensor& bias_in,
                              const ConvParams& params, const ConvEpilogue& epilogue) {
    const Tensor weight = detail::contiguous_operand(weight_in);
    const Tensor bias = detail::contiguous_operand(bias_in);
    const std::string_view op = detail::conv_op_label(params.spatial_rank, true, detail::ConvOpPass::Forward);
    check_operands(op, {{"input", input}, {"weight", weight}});
    const ConvGeometry g = detail::conv_transpose_geometry(op, input.shape(), weight.shape(), params);
    detail::check_bias(op, bias, g.in_channels, input);
    check_residual(op, epilogue.residual, g.input_shape(), input);
    return forward(op, input, weight, bias, epilogue, g, true, [&] {
        return computed_in_float32(
            input.dtype(),
            [&](const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& r) {
                return conv_transpose_forward(x, w, b, params, {r, epilogue.relu});
            },
            input, weight, bias, epilogue.residual);
    });
}

Tensor conv_transpose_backward_data(const Tensor& grad_output, const Tensor& weight_in, const Shape& input_shape,
                                    const ConvParams& params) {
    const Tensor weight = detail::contiguous_operand(weight_in);
    const std::string_view op = detail::conv_op_label(params.spatial_rank, true, detail::ConvOpPass::BackwardData);
    check_operands(op, {{"grad_output", grad_output}, {"weight", weight}});
    const ConvGeometry g = detail::conv_transpose_geometry(op, input_shape, weight.shape(), params);
    detail::check_grad_output(op, grad_output, g.input_shape());
    const ConvProblem problem = detail::conv_problem(g, grad_output.dtype(), grad_output.device());
    if (!computed_natively(problem, ConvPass::Forward, grad_output)) {
        return computed_in_float32(
            grad_output.dtype(),
            [&](const Tensor& dy, const Tensor& w) { return conv_transpose_backward_data(dy, w, input_shape, params); },
            grad_output, weight);
    }
    return run_pass_on_activations(op, problem, ConvPass::Forward, g.output_shape(), grad_output, Tensor(),
                                   [&](const Tensor& dy, const Tensor&) {
                                       return ConvOperands{.x = activation(dy), .w = weight.raw_data()};
                                   });
}

Tensor conv_transpose_backward_filter(const Tensor& grad_output, const Tensor& input, const Shape& weight_shape,
                                      const ConvParams& params) {
    const std::string_view op = detail::conv_op_label(params.spatial_rank, true, detail::ConvOpPass::BackwardFilter);
    check_operands(op, {{"grad_output", grad_output}, {"input", input}});
    const ConvGeometry g = detail::conv_transpose_geometry(op, input.shape(), weight_shape, params);
    detail::check_grad_output(op, grad_output, g.input_shape());
    const ConvProblem problem = detail::conv_problem(g, grad_output.dtype(), grad_output.device());
    if (!computed_natively(problem, ConvPass::BackwardFilter, grad_output)) {
        return computed_in_float32(
            grad_output.dtype(),
            [&](const Tensor& dy, const Tensor& x) {
                return conv_transpose_backward_filter(dy, x, weight_shape, params);
            },
            grad_output, input);
    }
    // In the adjoint convolution the transposed input plays the gradient and grad_output the input.
    return run_pass_on_activations(op, problem, ConvPass::BackwardFilter, g.weight_shape(), grad_output, input,
                                   [](const Tensor& dy, const Tensor& x) {
                                       return ConvOperands{.x = activation(dy), .dy = activation(x)};
                                   });
}

}  // namespace convkit
