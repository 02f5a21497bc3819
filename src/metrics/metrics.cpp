// Classification and segmentation metrics (see convkit/metrics.h): on the host, except
// correct_predictions, which counts on the tensors' device. The class
// geometry of logits is the softmax row geometry: rows of C scores, `inner` apart.
#include "convkit/metrics.h"

#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

#include "convkit/ops/reduce.h"
#include "core/check.h"
#include "cuda/deferred_errors.h"
#include "kernels/metrics.h"
#include "ops/op_support.h"
#include "ops/position_text.h"
#include "backend_api/softmax_math.h"
#include "tensor/memory_format_support.h"

namespace convkit {

namespace {

void check_logits(const std::string& op, const Tensor& logits) {
    CONVKIT_REQUIRE(logits.defined(), op, "logits is undefined");
    CONVKIT_REQUIRE(is_floating_point(logits.dtype()), op, "logits must be float32 or float64, got ",
                    dtype_name(logits.dtype()));
    CONVKIT_REQUIRE(logits.rank() >= 2, op, "logits must be [N, C] or [N, C, d1, ...], got shape ",
                    logits.shape().to_string());
    CONVKIT_REQUIRE(logits.size(1) > 0, op, "logits of shape ", logits.shape().to_string(), " have no classes");
}

void check_int64(const std::string& op, const char* name, const Tensor& t) {
    CONVKIT_REQUIRE(t.defined(), op, name, " is undefined");
    CONVKIT_REQUIRE(t.dtype() == DType::Int64, op, name, " must be int64 class indices, got ", dtype_name(t.dtype()));
}

// [N, C, d...] -> [N, d...].
Shape without_class_dim(const Shape& logits) {
    std::vector<std::int64_t> dims = logits.to_vector();
    dims.erase(dims.begin() + 1);
    return Shape(dims);
}

// The values of an int64 tensor on the host, in the logical order.
std::vector<std::int64_t> host_indices(const Tensor& t) {
    const Tensor host = detail::contiguous_operand(t.to(Device::host()));
    const std::int64_t* data = host.data<std::int64_t>();
    return std::vector<std::int64_t>(data, data + host.numel());
}

// "<op>: targets at [i, j] = v is not a class index: there are C classes, so it must be in
// [0, C) or ignore_index (-100)".
std::string not_a_class_index(const std::string& op, const char* name, const Shape& shape, std::int64_t position,
                              std::int64_t value, std::int64_t classes, std::optional<std::int64_t> ignore_index) {
    std::ostringstream allowed;
    allowed << "[0, " << classes << ")";
    if (ignore_index) allowed << " or ignore_index (" << *ignore_index << ")";
    return detail::concat(op, ": ", name, detail::position_text(shape, position), " = ", value,
                          " is not a class index: there are ", classes, " classes, so it must be in ", allowed.str());
}

// Every value in [0, classes) or ignore_index (if any); else InvalidArgument naming the first
// other one.
void check_classes(const std::string& op, const char* name, const std::vector<std::int64_t>& values,
                   const Shape& shape, std::int64_t classes, std::optional<std::int64_t> ignore_index) {
    for (std::size_t i = 0; i < values.size(); ++i) {
        const std::int64_t v = values[i];
        if ((v >= 0 && v < classes) || v == ignore_index) continue;
        throw InvalidArgument(
            not_a_class_index(op, name, shape, static_cast<std::int64_t>(i), v, classes, ignore_index));
    }
}

struct Predictions {
    std::vector<std::int64_t> classes;
    Shape shape;
};

Predictions predictions_from(const std::string& op, const Tensor& predictions_or_logits) {
    if (predictions_or_logits.defined() && predictions_or_logits.dtype() == DType::Int64) {
        return {host_indices(predictions_or_logits), predictions_or_logits.shape()};
    }
    check_logits(op, predictions_or_logits);
    const Tensor predicted = predicted_classes(predictions_or_logits);
    return {host_indices(predicted), predicted.shape()};
}

void check_target_shape(const std::string& op, const Shape& predictions, const Tensor& targets) {
    CONVKIT_REQUIRE(targets.shape() == predictions, op, "targets has shape ", targets.shape().to_string(),
                    " but the predictions have shape ", predictions.to_string(),
                    " (one class index per sample and position)");
}

// Of the targets other than ignore_index (counted), how many the logits predict (correct).
struct PredictionTally {
    std::int64_t correct = 0;
    std::int64_t counted = 0;
};

// The tally on the host, after the checks every host metric makes (targets' shape and values).
PredictionTally tally_on_host(const std::string& op, const Tensor& logits, const Tensor& targets,
                              std::int64_t ignore_index) {
    const Predictions predicted = predictions_from(op, logits);
    check_target_shape(op, predicted.shape, targets);
    const std::vector<std::int64_t> truth = host_indices(targets);
    check_classes(op, "targets", truth, targets.shape(), logits.size(1), ignore_index);
    PredictionTally tally;
    for (std::size_t i = 0; i < truth.size(); ++i) {
        if (truth[i] == ignore_index) continue;
        ++tally.counted;
        tally.correct += predicted.classes[i] == truth[i] ? 1 : 0;
    }
    return tally;
}

std::vector<std::int64_t> confusion_counts(const Tensor& confusion, std::int64_t& classes) {
    const std::string op = "iou_per_class";
    CONVKIT_REQUIRE(confusion.defined(), op, "confusion is undefined");
    CONVKIT_REQUIRE(confusion.dtype() == DType::Int64, op, "confusion must be an int64 matrix of counts, got ",
                    dtype_name(confusion.dtype()));
    CONVKIT_REQUIRE(confusion.rank() == 2 && confusion.size(0) == confusion.size(1), op,
                    "confusion must be a square matrix [num_classes, num_classes], got shape ",
                    confusion.shape().to_string());
    classes = confusion.size(0);
    return host_indices(confusion);
}

}  // namespace

Tensor predicted_classes(const Tensor& logits) {
    const std::string op = "predicted_classes";
    check_logits(op, logits);
    // Read in the logical order: channels-last logits (a convolution's output) are converted.
    const Tensor host = detail::contiguous_operand(logits.to(Device::host())).to(DType::Float64);
    const double* x = host.data<double>();
    const detail::SoftmaxGeometry g = detail::softmax_geometry(op, logits.shape(), 1);
    Tensor out = Tensor::empty(without_class_dim(logits.shape()), DType::Int64);
    std::int64_t* classes = out.data<std::int64_t>();
    for (std::int64_t row = 0; row < g.rows(); ++row) {
        const std::int64_t start = g.row_start(row);
        std::int64_t best = 0;
        for (std::int64_t k = 1; k < g.dim; ++k) {
            const double candidate = x[g.element(start, k)];
            const double current = x[g.element(start, best)];
            if (std::isnan(current)) break;  // the first NaN is the maximum
            if (candidate > current || std::isnan(candidate)) best = k;
        }
        classes[row] = best;
    }
    return out.to(logits.device());
}

double accuracy(const Tensor& logits, const Tensor& targets, std::int64_t ignore_index) {
    const std::string op = "accuracy";
    check_logits(op, logits);
    check_int64(op, "targets", targets);
    const PredictionTally tally = tally_on_host(op, logits, targets, ignore_index);
    return tally.counted == 0 ? std::numeric_limits<double>::quiet_NaN()
                              : static_cast<double>(tally.correct) / static_cast<double>(tally.counted);
}

Tensor correct_predictions(const Tensor& logits, const Tensor& targets, std::int64_t ignore_index) {
    const std::string op = "correct_predictions";
    check_logits(op, logits);
    check_int64(op, "targets", targets);
    CONVKIT_REQUIRE(targets.device() == logits.device(), op, "targets are on ", targets.device().to_string(),
                    " but logits are on ", logits.device().to_string());
    if (logits.device().is_host()) {
        const PredictionTally tally = tally_on_host(op, logits, targets, ignore_index);
        return Tensor::full(Shape{}, static_cast<double>(tally.correct), DType::Int64);
    }
    check_target_shape(op, without_class_dim(logits.shape()), targets);
    const std::int64_t classes = logits.size(1);
    // On a CUDA device nothing waits: argmax and the count are enqueued, and a bad target is
    // raised at the host's next wait, as cross_entropy does.
    const Tensor predicted = argmax(logits.detach(), 1);
    Tensor correct = Tensor::empty(Shape{}, DType::Int64, logits.device());
    static_assert(sizeof(detail::DeviceErrorSlot) % sizeof(std::int64_t) == 0);
    const Tensor slot = Tensor::empty(Shape{sizeof(detail::DeviceErrorSlot) / sizeof(std::int64_t)}, DType::Int64,
                                      logits.device());
    auto* invalid = static_cast<detail::DeviceErrorSlot*>(slot.raw_data());
    const Stream stream = detail::stream_of(logits);
    kernels::count_correct(predicted.data<std::int64_t>(), targets.data<std::int64_t>(), targets.numel(), classes,
                           ignore_index, correct.data<std::int64_t>(), invalid, stream);
    detail::defer_device_check(invalid, stream,
                               [op, shape = targets.shape(), classes, ignore_index](std::int64_t i, std::int64_t v) {
                                   return not_a_class_index(op, "targets", shape, i, v, classes, ignore_index);
                               });
    return correct;
}

Tensor confusion_matrix(const Tensor& predictions_or_logits, const Tensor& targets, std::int64_t num_classes,
                        std::int64_t ignore_index) {
    const std::string op = "confusion_matrix";
    CONVKIT_REQUIRE(num_classes > 0, op, "num_classes must be positive, got ", num_classes);
    CONVKIT_REQUIRE(predictions_or_logits.defined(), op, "predictions_or_logits is undefined");
    if (predictions_or_logits.dtype() != DType::Int64) {
        check_logits(op, predictions_or_logits);
        CONVKIT_REQUIRE(predictions_or_logits.size(1) == num_classes, op, "logits of shape ",
                        predictions_or_logits.shape().to_string(), " have ", predictions_or_logits.size(1),
                        " classes but num_classes is ", num_classes);
    }
    check_int64(op, "targets", targets);
    const Predictions predicted = predictions_from(op, predictions_or_logits);
    check_target_shape(op, predicted.shape, targets);
    const std::vector<std::int64_t> truth = host_indices(targets);
    check_classes(op, "targets", truth, targets.shape(), num_classes, ignore_index);
    // A prediction is never ignored: ignore_index marks unlabelled truth only.
    check_classes(op, "predictions", predicted.classes, predicted.shape, num_classes, std::nullopt);
    Tensor matrix = Tensor::zeros(Shape{num_classes, num_classes}, DType::Int64);
    std::int64_t* counts = matrix.data<std::int64_t>();
    for (std::size_t i = 0; i < truth.size(); ++i) {
        if (truth[i] == ignore_index) continue;
        ++counts[truth[i] * num_classes + predicted.classes[i]];
    }
    return matrix;
}

std::vector<double> iou_per_class(const Tensor& confusion) {
    std::int64_t classes = 0;
    const std::vector<std::int64_t> m = confusion_counts(confusion, classes);
    auto at = [&](std::int64_t i, std::int64_t j) { return m[static_cast<std::size_t>(i * classes + j)]; };
    std::vector<double> iou(static_cast<std::size_t>(classes));
    for (std::int64_t c = 0; c < classes; ++c) {
        std::int64_t true_count = 0;       // row sum: samples of class c
        std::int64_t predicted_count = 0;  // column sum: samples predicted as c
        for (std::int64_t j = 0; j < classes; ++j) {
            true_count += at(c, j);
            predicted_count += at(j, c);
        }
        const std::int64_t union_count = true_count + predicted_count - at(c, c);
        iou[static_cast<std::size_t>(c)] = union_count == 0 ? std::numeric_limits<double>::quiet_NaN()
                                                            : static_cast<double>(at(c, c)) /
                                                                  static_cast<double>(union_count);
    }
    return iou;
}

double mean_iou(const Tensor& confusion) {
    double sum = 0;
    int present = 0;
    for (double v : iou_per_class(confusion)) {
        if (std::isnan(v)) continue;
        sum += v;
        ++present;
    }
    return present == 0 ? std::numeric_limits<double>::quiet_NaN() : sum / static_cast<double>(present);
}

}  // namespace convkit
