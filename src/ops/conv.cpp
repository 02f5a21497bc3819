// Convolution and transposed convolution entry points: checks, problem, variant, call.
// A transposed convolution runs as the adjoint of the convolution its geometry describes, so
// each variant implements three convolution passes and gets all six ops from them.
//
// A forward call checks its arguments and builds its problem once; when it records for
// autograd it also chooses the variants of the backward passes it will need, so the backward
// runs them on the stored problem without checking or choosing again.
//
// Memory formats: each pass runs its activations (input, output and their gradients) in their
// own format when the variant the thread's policy picks for that pass supports it (the host
// reference runs both); otherwise that pass converts its operands to the other format (counted)
// and its result back, so every result has the format of the activation it derives from. The
// backward passes of a recorded call prefer the format its forward ran in. The weight always
// runs contiguous.
//
// Dtypes: a bfloat16/float16 call runs natively where a variant of the policy computes it in
// some format (cuda.igemm on a GPU: channels-last, channels per group a multiple of 8); else it
// is computed in float32 on widened operands and rounded once (computed_in_float32).
#include "convkit/ops/conv.h"

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <utility>

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

// dy in each memory format a backward pass asks for, converted (and counted) at most once: the
// weight and bias gradients of a channels-last float32 depthwise layer both run contiguous and
// share one conversion.
class GradientInFormats {
public:
    explicit GradientInFormats(Tensor dy) : given_(std::move(dy)) {}

    const Tensor& in(MemoryFormat format) {
        if (given_.memory_format() == format) return given_;
        if (!converted_.defined()) converted_ = detail::operand_in_format(given_, format);
        return converted_;  // two formats: the other one
    }

private:
    Tensor given_;
    Tensor converted_;
};

// One backward pass: the problem with its activations in the format this pass runs them in (the
// forward's where the pass's variant runs that, else the other one), and the variant chosen for
// it (empty until needed when the forward did not expect the gradient).
struct BackwardPass {
    ConvProblem problem;
    ConvChoice choice;

    MemoryFormat format() const { return problem.x_layout; }
};

// The passes that compute each input's gradient. A convolution y = conv(x, w) + b takes dx from
// backward-data and dw from backward-filter; a transposed one is the adjoint: dx from forward,
// and dw from backward-filter with the roles of x and dy swapped. Each pass runs in its own
// activation format, so that one pass no variant runs in the forward's format (float32
// depthwise backward-filter on channels-last) converts only its own operands, not the whole
// layer's; dx comes back in its pass's format and autograd delivers it in x's.
struct ConvBackward {
    MemoryFormat format;  // the forward's: of x, y and (as autograd delivers it) dy
    bool transposed = false;
    Shape x_shape;
    Shape w_shape;
    BackwardPass data;    // for dx
    BackwardPass filter;  // for dw
    BackwardPass bias;    // for db

    Tensor grad_input(std::string_view op, GradientInFormats& dy_in, const Tensor& w) {
        const Tensor& dy = dy_in.in(data.format());
        if (transposed) {
            return run(op, data, ConvPass::Forward, x_shape, {.x = activation(dy), .w = w.raw_data()}, dy);
        }
        return run(op, data, ConvPass::BackwardData, x_shape, {.w = w.raw_data(), .dy = activation(dy)}, dy);
    }
    Tensor grad_weight(std::string_view op, GradientInFormats& dy_in, const Tensor& x_saved) {
        const Tensor& dy = dy_in.in(filter.format());
        const Tensor x = detail::operand_in_format(x_saved, filter.format());
        // In the adjoint convolution the transposed input plays the gradient and dy the input.
        const ConvOperands operands = transposed ? ConvOperands{.x = activation(dy), .dy = activation(x)}
                                                 : ConvOperands{.x = activation(x), .dy = activation(dy)};
        return run(op, filter, ConvPass::BackwardFilter, w_shape, operands, dy);
    }
    Tensor grad_bias(std::string_view op, GradientInFormats& dy_in) {
        const Tensor& dy = dy_in.in(bias.format());
        return run(op, bias, ConvPass::BackwardBias, Shape{bias.problem.bias_grad.channels}, {.dy = activation(dy)},
                   dy);
    }

private:
    static Tensor run(std::string_view op, BackwardPass& pass_run, ConvPass pass, const Shape& shape,
                      const ConvOperands& operands, const Tensor& like) {
        return run_pass(op, pass_run.problem, pass, pass_run.choice, shape, operands, like);
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

// A backward pass of the recorded `forward` problem in the format the pass runs: the forward's
// where the thread's policy runs the pass so (no operand to convert), else the other one, else
// the forward's (choosing a variant then raises NotSupported with the policy's reason). Its
// variant is chosen now when `needed`.
BackwardPass backward_pass(std::string_view op, const ConvProblem& forward, ConvPass pass, bool needed) {
    BackwardPass run{
        detail::with_activations_in(
            forward, detail::supported_format(forward, forward.x_layout, {pass}).value_or(forward.x_layout)),
        {}};
    if (needed) run.choice = detail::choose_variant(op, run.problem, pass);
    return run;
}

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
    ConvBackward backward{problem.x_layout,
                          transposed,
                          x.shape(),
                          w.shape(),
                          backward_pass(op, problem, data_pass(transposed), need_dx),
                          backward_pass(op, problem, ConvPass::BackwardFilter, need_dw),
                          backward_pass(op, problem, ConvPass::BackwardBias, need_db)};
    autograd::record(
        std::string(op), y, {x, w, bias, epilogue.residual},
        [saved_x = need_dw ? SavedTensor(x) : SavedTensor(), saved_w = need_dx ? SavedTensor(w) : SavedTensor(),
         saved_y = epilogue.relu ? SavedTensor(y) : SavedTensor(), backward = std::move(backward),
         op](const Tensor& dy_given, const autograd::NeedsGrad& needs) mutable {
            // dy as autograd delivers it (a root gradient given by the caller may come in either
            // format), masked by the ReLU in the format of the saved y.
            GradientInFormats dy(saved_y.defined()
                                     ? detail::unary_backward_raw(detail::UnaryOp::Relu,
                                                                  detail::operand_in_format(dy_given, backward.format),
                                                                  saved_y.get())
                                     : dy_given);
            std::vector<Tensor> grads(4);
            if (needs[0]) grads[0] = backward.grad_input(op, dy, saved_w.get());
            if (needs[1]) grads[1] = backward.grad_weight(op, dy, saved_x.get());
            if (needs[2]) grads[2] = backward.grad_bias(op, dy);
            if (needs[3]) grads[3] = dy.in(backward.format);
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

// The passes a recorded call may run: its forward's and its backward's.
constexpr std::initializer_list<ConvPass> kEveryPass = {ConvPass::Forward, ConvPass::BackwardData,
                                                        ConvPass::BackwardFilter, ConvPass::BackwardBias};

// Whether the thread's policy runs each of `passes` of `problem` natively, each in a memory
// format of its own.
bool policy_runs_each(const ConvProblem& problem, std::initializer_list<ConvPass> passes) {
    return std::all_of(passes.begin(), passes.end(),
                       [&](ConvPass pass) { return detail::policy_runs(problem, {pass}); });
}

// The forward of a convolution (or transposed convolution, as its adjoint's backward-data), in
// the input's format where the variant of this pass supports it, else the other one; the result
// has the input's format. Each backward pass recorded chooses its own format (backward_pass). A
// 16-bit call that no variant of the thread's policy runs natively, this pass or (when
// recording) any other, is `widened()`: computed in float32 and rounded once.
template <typename Widened>
Tensor forward(std::string_view op, const Tensor& input_given, const Tensor& weight, const Tensor& bias,
               const ConvEpilogue& epilogue_given, const ConvGeometry& g, bool transposed, Widened widened) {
    const ConvProblem contiguous = detail::conv_problem(g, input_given.dtype(), input_given.device());
    const ConvPass pass = transposed ? ConvPass::BackwardData : ConvPass::Forward;
    if (is_reduced_precision_tensor(input_given)) {
        const bool records = autograd::should_record({input_given, weight, bias, epilogue_given.residual});
        if (!policy_runs_each(contiguous, records ? kEveryPass : std::initializer_list<ConvPass>{pass})) {
            return widened();
        }
    }
    const ConvProblem problem = detail::with_activations_in(
        contiguous, detail::activation_format(contiguous, input_given.memory_format(), {pass}));
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
