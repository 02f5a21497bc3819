// Losses: checks, geometry, device dispatch, autograd. The arithmetic is ops/loss_math.h's.
#include "convkit/ops/loss.h"


#include "autograd/graph.h"
#include "backends/host/loss_host.h"
#include "core/check.h"
#include "ops/position_text.h"
#include "cuda/deferred_errors.h"
#include "kernels/loss.h"
#include "ops/op_support.h"

namespace convkit {

const char* reduction_name(Reduction reduction) {
    switch (reduction) {
        case Reduction::None: return "none";
        case Reduction::Mean: return "mean";
        case Reduction::Sum: return "sum";
    }
    return "reduction";
}

namespace detail {
const char* pointwise_loss_name(PointwiseLoss loss) {
    return loss == PointwiseLoss::SquaredError ? "mse_loss" : "binary_cross_entropy_with_logits";
}
}  // namespace detail

namespace {
using autograd::SavedTensor;
using detail::PointwiseLoss;

Shape reduced_shape(Reduction reduction, const Shape& per_element) {
    return reduction == Reduction::None ? per_element : Shape{};
}

// The gradient of each element is grad_output times this (per element for None).
double gradient_scale(Reduction reduction, std::int64_t count) {
    return reduction == Reduction::Mean ? 1.0 / static_cast<double>(count) : 1.0;
}

// ---- cross-entropy ----

// logits without their class dim: [N, C, d...] -> [N, d...]; [C] -> [].
Shape cross_entropy_target_shape(const Shape& logits) {
    std::vector<std::int64_t> dims = logits.to_vector();
    dims.erase(dims.begin() + (logits.rank() == 1 ? 0 : 1));
    return Shape(dims);
}

// The message of an out-of-range target, the same whether found on the host or on a device.
std::string invalid_target_message(const std::string& op, const Shape& targets, std::int64_t row, std::int64_t value,
                                   const Shape& logits, std::int64_t classes, std::int64_t ignore_index) {
    return detail::concat(op, ": targets", detail::position_text(targets, row), " = ", value,
                          " is not a class index: logits of shape ", logits.to_string(), " have ", classes,
                          " classes, so targets must be in [0, ", classes, ") or ignore_index (", ignore_index, ")");
}

detail::CrossEntropyParams cross_entropy_params(const std::string& op, const Tensor& logits, const Tensor& targets,
                                                double label_smoothing, std::int64_t ignore_index) {
    detail::check_same_device_and_dtype(op, {{"logits", logits}}, detail::kComputedInFloat32);
    CONVKIT_REQUIRE(targets.defined(), op, "targets is undefined");
    CONVKIT_REQUIRE(targets.dtype() == DType::Int64, op, "targets must be int64 class indices, got ",
                    dtype_name(targets.dtype()));
    CONVKIT_REQUIRE(targets.device() == logits.device(), op, "targets is on ", targets.device().to_string(),
                    " but logits is on ", logits.device().to_string());
    CONVKIT_REQUIRE(logits.rank() >= 1, op, "logits must be [C], [N, C] or [N, C, d1, ...], got a scalar");
    const Shape target_shape = cross_entropy_target_shape(logits.shape());
    CONVKIT_REQUIRE(targets.shape() == target_shape, op, "targets has shape ", targets.shape().to_string(),
                    " but logits of shape ", logits.shape().to_string(), " need targets of shape ",
                    target_shape.to_string(), " (one class index per sample and position)");
    const int class_dim = logits.rank() == 1 ? 0 : 1;
    CONVKIT_REQUIRE(logits.size(class_dim) > 0, op, "logits of shape ", logits.shape().to_string(), " have no classes");
    CONVKIT_REQUIRE(label_smoothing >= 0 && label_smoothing <= 1, op, "label_smoothing must be in [0, 1], got ",
                    label_smoothing);
    return {detail::softmax_geometry(op, logits.shape(), class_dim), label_smoothing, ignore_index};
}

// `device_status`: on a device, the forward pass's kernels::CrossEntropyDeviceStatus, whose
// count of rows the mean's scale comes from there.
Tensor cross_entropy_backward_raw(const detail::CrossEntropyParams& p, Reduction reduction, double scale,
                                  const Tensor& dy, const Tensor& logits, const Tensor& targets, const Tensor& row_lse,
                                  const Tensor& device_status) {
    Tensor dx = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
    const bool per_row = reduction == Reduction::None;
    if (logits.device().is_host()) {
        detail::cross_entropy_backward_host(p, logits.dtype(), dy.raw_data(), per_row, scale, logits.raw_data(),
                                            targets.data<std::int64_t>(), row_lse.raw_data(), dx.raw_data());
    } else {
        const auto* status = static_cast<const kernels::CrossEntropyDeviceStatus*>(device_status.raw_data());
        const double* counted_rows = reduction == Reduction::Mean ? &status->counted_rows : nullptr;
        kernels::cross_entropy_backward(p, logits.dtype(), dy.raw_data(), per_row, scale, counted_rows,
                                        logits.raw_data(), targets.data<std::int64_t>(), row_lse.raw_data(),
                                        dx.raw_data(), detail::stream_of(logits));
    }
    return dx;
}

// ---- pointwise losses ----

Tensor pointwise_loss(PointwiseLoss loss, Reduction reduction, const Tensor& input, const Tensor& target,
                      const Tensor& pos_weight) {
    const std::string op = detail::pointwise_loss_name(loss);
    const detail::BroadcastGeometry g =
        detail::broadcast_geometry(op, input.shape(), pos_weight.defined() ? pos_weight.shape() : Shape{});
    Tensor out = Tensor::empty(reduced_shape(reduction, input.shape()), input.dtype(), input.device());
    const void* pw = pos_weight.defined() ? pos_weight.raw_data() : nullptr;
    if (input.device().is_host()) {
        detail::pointwise_loss_forward_host(loss, reduction, g, input.dtype(), input.raw_data(), target.raw_data(), pw,
                                            out.raw_data());
    } else {
        kernels::pointwise_loss_forward(loss, reduction, g, input.dtype(), input.raw_data(), target.raw_data(), pw,
                                        out.raw_data(), detail::stream_of(input));
    }
    if (!autograd::should_record({input, target})) return out;
    autograd::record(
        op, out, {input, target},
        [loss, reduction, g, x = SavedTensor(input), t = SavedTensor(target), w = SavedTensor(pos_weight)](
            const Tensor& dy, const autograd::NeedsGrad& needs) {
            const Tensor& in = x.get();
            Tensor dx = needs[0] ? Tensor::empty(in.shape(), in.dtype(), in.device()) : Tensor();
            Tensor dt = needs[1] ? Tensor::empty(in.shape(), in.dtype(), in.device()) : Tensor();
            const bool per_element = reduction == Reduction::None;
            const double scale = gradient_scale(reduction, g.count);
            const void* weights = w.defined() ? w.get().raw_data() : nullptr;
            void* grad_input = dx.defined() ? dx.raw_data() : nullptr;
            void* grad_target = dt.defined() ? dt.raw_data() : nullptr;
            if (in.device().is_host()) {
                detail::pointwise_loss_backward_host(loss, g, in.dtype(), dy.raw_data(), per_element, scale,
                                                     in.raw_data(), t.get().raw_data(), weights, grad_input,
                                                     grad_target);
            } else {
                kernels::pointwise_loss_backward(loss, g, in.dtype(), dy.raw_data(), per_element, scale, in.raw_data(),
                                                 t.get().raw_data(), weights, grad_input, grad_target,
                                                 detail::stream_of(in));
            }
            return std::vector<Tensor>{dx, dt};
        });
    return out;
}

void check_same_shape(const std::string& op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
    CONVKIT_REQUIRE(a.shape() == b.shape(), op, a_name, " has shape ", a.shape().to_string(), " but ", b_name,
                    " has shape ", b.shape().to_string(), "; they must be equal (", op, " does not broadcast them)");
}
}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in, double label_smoothing, Reduction reduction,
                     std::int64_t ignore_index) {
    const Tensor logits = detail::contiguous_operand(logits_in);
    const Tensor targets = detail::contiguous_operand(targets_in);
    const std::string op = "cross_entropy";
    const detail::CrossEntropyParams p = cross_entropy_params(op, logits, targets, label_smoothing, ignore_index);
    if (detail::is_reduced_precision_tensor(logits)) {
        // The targets are int64 class indices and stay so; only the logits widen.
        return detail::computed_in_float32(
            logits.dtype(),
            [&](const Tensor& x, const Tensor& t) {
                return cross_entropy(x, t, label_smoothing, reduction, ignore_index);
            },
            logits, targets);
    }
    Tensor out = Tensor::empty(reduced_shape(reduction, targets.shape()), logits.dtype(), logits.device());
    // Each row's log-sum-exp: the backward pass needs the softmax and rebuilds it from this.
    Tensor row_lse = Tensor::empty(targets.shape(), logits.dtype(), logits.device());
    // On a device nothing is read back: the kernels leave the count and the first bad target in
    // device memory, and the host's next wait raises the error (docs/losses.md).
    double scale = 1.0;
    Tensor device_status;
    if (logits.device().is_host()) {
        const detail::CrossEntropyStatus status = detail::cross_entropy_forward_host(
            p, reduction, logits.dtype(), logits.raw_data(), targets.data<std::int64_t>(), out.raw_data(),
            row_lse.raw_data());
        if (status.first_invalid_row >= 0) {
            throw InvalidArgument(invalid_target_message(op, targets.shape(), status.first_invalid_row,
                                                         targets.data<std::int64_t>()[status.first_invalid_row],
                                                         logits.shape(), p.classes(), ignore_index));
        }
        scale = gradient_scale(reduction, status.counted_rows);
    } else {
        static_assert(sizeof(kernels::CrossEntropyDeviceStatus) % sizeof(double) == 0);
        device_status = Tensor::empty(Shape{sizeof(kernels::CrossEntropyDeviceStatus) / sizeof(double)},
                                      DType::Float64, logits.device());
        auto* status = static_cast<kernels::CrossEntropyDeviceStatus*>(device_status.raw_data());
        const Stream stream = detail::stream_of(logits);
        kernels::cross_entropy_forward(p, reduction, logits.dtype(), logits.raw_data(), targets.data<std::int64_t>(),
                                       out.raw_data(), row_lse.raw_data(), status, stream);
        detail::defer_device_check(
            &status->invalid_target, stream,
            [op, target_shape = targets.shape(), logits_shape = logits.shape(), classes = p.classes(),
             ignore_index](std::int64_t row, std::int64_t value) {
                return invalid_target_message(op, target_shape, row, value, logits_shape, classes, ignore_index);
            });
    }
    if (autograd::should_record({logits})) {
        autograd::record(op, out, {logits, targets},
                         [p, reduction, scale, x = SavedTensor(logits), t = SavedTensor(targets),
                          lse = SavedTensor(row_lse), device_status](const Tensor& dy, const autograd::NeedsGrad&) {
                             return std::vector<Tensor>{cross_entropy_backward_raw(p, reduction, scale, dy, x.get(),
                                                                                   t.get(), lse.get(), device_status),
                                                        Tensor()};
                         });
    }
    return out;
}

Tensor mse_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
    const Tensor input = detail::contiguous_operand(input_in);
    const Tensor target = detail::contiguous_operand(target_in);
    const std::string op = "mse_loss";
    detail::check_same_device_and_dtype(op, {{"input", input}, {"target", target}}, detail::kComputedInFloat32);
    check_same_shape(op, "input", input, "target", target);
    if (detail::is_reduced_precision_tensor(input)) {
        return detail::computed_in_float32(
            input.dtype(), [&](const Tensor& x, const Tensor& t) { return mse_loss(x, t, reduction); }, input, target);
    }
    return pointwise_loss(PointwiseLoss::SquaredError, reduction, input, target, Tensor());
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits_in, const Tensor& targets_in, Reduction reduction,
                                        const Tensor& pos_weight_in) {
    const Tensor logits = detail::contiguous_operand(logits_in);
    const Tensor targets = detail::contiguous_operand(targets_in);
    const Tensor pos_weight = detail::contiguous_operand(pos_weight_in);
    const std::string op = "binary_cross_entropy_with_logits";
    detail::check_same_device_and_dtype(op, {{"logits", logits}, {"targets", targets}}, detail::kComputedInFloat32);
    check_same_shape(op, "logits", logits, "targets", targets);
    if (pos_weight.defined()) {
        detail::check_same_device_and_dtype(op, {{"logits", logits}, {"pos_weight", pos_weight}},
                                            detail::kComputedInFloat32);
        const Shape broadcast = detail::broadcast_shape(op, logits.shape(), pos_weight.shape());
        CONVKIT_REQUIRE(broadcast == logits.shape(), op, "pos_weight of shape ", pos_weight.shape().to_string(),
                        " must broadcast to logits of shape ", logits.shape().to_string(), " (it would make ",
                        broadcast.to_string(), ")");
    }
    if (detail::is_reduced_precision_tensor(logits)) {
        return detail::computed_in_float32(
            logits.dtype(),
            [&](const Tensor& x, const Tensor& t, const Tensor& w) {
                return binary_cross_entropy_with_logits(x, t, reduction, w);
            },
            logits, targets, pos_weight);
    }
    return pointwise_loss(PointwiseLoss::BinaryCrossEntropyWithLogits, reduction, logits, targets, pos_weight);
}

}  // namespace convkit
