// Metrics on hand-computed cases: predicted classes (ties, NaN), accuracy, the confusion
// matrix's orientation (rows true, columns predicted), IoU per class and its mean without the
// absent classes, ignore_index, and the argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "test_util.h"

namespace convkit {
namespace {

Tensor indices(const Shape& shape, const std::vector<std::int64_t>& values) {
    return Tensor::from_vector(shape, values);
}

std::vector<std::int64_t> int_values(const Tensor& t) {
    std::vector<std::int64_t> out;
    for (double v : t.to_vector()) out.push_back(static_cast<std::int64_t>(v));
    return out;
}

template <typename F>
void expect_invalid_argument(F f, const std::string& fragment) {
    try {
        f();
        FAIL() << "expected InvalidArgument containing \"" << fragment << "\"";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}

TEST(Metrics, PredictedClassesAreTheFirstMaximumOverDimOne) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    // Rows: a clear max, a tie (first wins), a NaN (counts as the maximum, as torch.argmax).
    const Tensor logits = Tensor::from_vector(Shape{3, 3}, std::vector<double>{0.1, 0.7, 0.2, 2, 0, 2, 1, nan, 5});
    const Tensor predicted = predicted_classes(logits);
    EXPECT_EQ(predicted.dtype(), DType::Int64);
    EXPECT_EQ(int_values(predicted), (std::vector<std::int64_t>{1, 0, 1}));
    // Per pixel: [N=1, C=2, H=2, W=2] -> [1, 2, 2]; class 1 wins where its score is larger.
    const Tensor pixels = Tensor::from_values(Shape{1, 2, 2, 2}, {0, 5, 1, -1, 1, 4, 0, 2});
    EXPECT_EQ(predicted_classes(pixels).shape(), (Shape{1, 2, 2}));
    EXPECT_EQ(int_values(predicted_classes(pixels)), (std::vector<std::int64_t>{1, 0, 0, 1}));
}

TEST(Metrics, AccuracyCountsCorrectPredictions) {
    const Tensor logits =
        Tensor::from_values(Shape{4, 3}, {3, 1, 0, 0, 1, 2, 0, 5, 1, 1, 0, 0});  // predicts 0, 2, 1, 0
    EXPECT_DOUBLE_EQ(accuracy(logits, indices(Shape{4}, {0, 2, 1, 0})), 1.0);
    EXPECT_DOUBLE_EQ(accuracy(logits, indices(Shape{4}, {0, 1, 1, 2})), 0.5);
    EXPECT_DOUBLE_EQ(accuracy(logits, indices(Shape{4}, {1, 1, 0, 2})), 0.0);
    // Ignored targets are left out of both counts: 2 of the 3 counted are right.
    EXPECT_DOUBLE_EQ(accuracy(logits, indices(Shape{4}, {0, 255, 1, 2}), 255), 2.0 / 3.0);
    EXPECT_TRUE(std::isnan(accuracy(logits, indices(Shape{4}, {-100, -100, -100, -100}))));
    // Per pixel, float64 logits.
    const Tensor pixels = Tensor::from_values(Shape{1, 2, 2, 2}, {0, 5, 1, -1, 1, 4, 0, 2}, DType::Float64);
    EXPECT_DOUBLE_EQ(accuracy(pixels, indices(Shape{1, 2, 2}, {1, 0, 1, 1})), 0.75);
}

TEST(Metrics, CorrectPredictionsCountOnTheLogitsDevice) {
    const Tensor logits =
        Tensor::from_values(Shape{4, 3}, {3, 1, 0, 0, 1, 2, 0, 5, 1, 1, 0, 0});  // predicts 0, 2, 1, 0
    const auto count = [](const Tensor& t) {
        EXPECT_EQ(t.dtype(), DType::Int64);
        EXPECT_EQ(t.rank(), 0);
        EXPECT_EQ(t.device(), Device::host());
        return static_cast<std::int64_t>(t.item(0));
    };
    EXPECT_EQ(count(correct_predictions(logits, indices(Shape{4}, {0, 2, 1, 0}))), 4);
    EXPECT_EQ(count(correct_predictions(logits, indices(Shape{4}, {0, 1, 1, 2}))), 2);
    EXPECT_EQ(count(correct_predictions(logits, indices(Shape{4}, {1, 1, 0, 2}))), 0);
    // Ignored targets count nowhere, even where the prediction would match them.
    EXPECT_EQ(count(correct_predictions(logits, indices(Shape{4}, {0, 255, 1, 2}), 255)), 2);
    EXPECT_EQ(count(correct_predictions(logits, indices(Shape{4}, {-100, 2, 1, -100}))), 2);
    const Tensor pixels = Tensor::from_values(Shape{1, 2, 2, 2}, {0, 5, 1, -1, 1, 4, 0, 2}, DType::Float64);
    EXPECT_EQ(count(correct_predictions(pixels, indices(Shape{1, 2, 2}, {1, 0, 1, 1}))), 3);
    expect_invalid_argument([&] { (void)correct_predictions(logits, indices(Shape{4}, {0, 1, 3, 0})); },
                            "correct_predictions: targets[2] = 3 is not a class index: there are 3 classes, so it "
                            "must be in [0, 3) or ignore_index (-100)");
    expect_invalid_argument([&] { (void)correct_predictions(logits, indices(Shape{3}, {0, 1, 2})); },
                            "correct_predictions: targets has shape [3] but the predictions have shape [4]");
}

TEST(Metrics, ConfusionMatrixRowsAreTrueClassesAndColumnsPredictions) {
    const Tensor predicted = indices(Shape{6}, {0, 1, 1, 2, 2, 2});
    const Tensor truth = indices(Shape{6}, {0, 0, 1, 1, 2, 2});
    const Tensor m = confusion_matrix(predicted, truth, 3);
    EXPECT_EQ(m.dtype(), DType::Int64);
    EXPECT_EQ(m.shape(), (Shape{3, 3}));
    // true 0: predicted 0 once, 1 once; true 1: predicted 1 once, 2 once; true 2: predicted 2 twice.
    EXPECT_EQ(int_values(m), (std::vector<std::int64_t>{1, 1, 0, 0, 1, 1, 0, 0, 2}));
    // From logits: the same as from their predicted classes.
    const Tensor logits = Tensor::from_values(Shape{1, 3, 2, 2}, {5, 0, 0, 0, 0, 5, 5, 0, 0, 0, 0, 5});
    const Tensor pixel_truth = indices(Shape{1, 2, 2}, {0, 1, 2, 2});
    EXPECT_EQ(int_values(confusion_matrix(logits, pixel_truth, 3)),
              int_values(confusion_matrix(predicted_classes(logits), pixel_truth, 3)));
    // ignore_index leaves a pixel out altogether.
    const Tensor with_void = indices(Shape{6}, {0, 255, 1, 1, 2, 255});
    EXPECT_EQ(int_values(confusion_matrix(predicted, with_void, 3, 255)),
              (std::vector<std::int64_t>{1, 0, 0, 0, 1, 1, 0, 0, 1}));
}

TEST(Metrics, IouPerClassAndItsMeanOverPresentClasses) {
    // Rows true, columns predicted, 4 classes. Class 2 is never true but predicted once (IoU 0,
    // counted); class 3 occurs in neither (no IoU, left out of the mean).
    const Tensor m = indices(Shape{4, 4}, {3, 1, 0, 0,    // true 0: row sum 4
                                           2, 4, 1, 0,    // true 1: row sum 7
                                           0, 0, 0, 0,    // true 2
                                           0, 0, 0, 0});  // true 3
    // IoU_0 = 3 / (4 + 5 - 3) = 1/2; IoU_1 = 4 / (7 + 5 - 4) = 1/2; IoU_2 = 0 / (0 + 1 - 0) = 0.
    const std::vector<double> iou = iou_per_class(m);
    ASSERT_EQ(iou.size(), 4u);
    EXPECT_DOUBLE_EQ(iou[0], 0.5);
    EXPECT_DOUBLE_EQ(iou[1], 0.5);
    EXPECT_EQ(iou[2], 0.0);
    EXPECT_TRUE(std::isnan(iou[3]));
    EXPECT_DOUBLE_EQ(mean_iou(m), 1.0 / 3.0);
    // A class predicted but never true has IoU 0 and counts in the mean.
    const Tensor false_positive = indices(Shape{2, 2}, {2, 2, 0, 0});
    EXPECT_EQ(iou_per_class(false_positive), (std::vector<double>{0.5, 0.0}));
    EXPECT_DOUBLE_EQ(mean_iou(false_positive), 0.25);
    EXPECT_TRUE(std::isnan(mean_iou(Tensor::zeros(Shape{3, 3}, DType::Int64))));
}

TEST(Metrics, BadArgumentsAreReportedWithTheirValues) {
    const Tensor logits = Tensor::zeros(Shape{2, 3});
    expect_invalid_argument([&] { (void)accuracy(logits, indices(Shape{2}, {0, 3})); },
                            "accuracy: targets[1] = 3 is not a class index: there are 3 classes, so it must be in "
                            "[0, 3) or ignore_index (-100)");
    expect_invalid_argument([&] { (void)accuracy(logits, indices(Shape{3}, {0, 1, 2})); },
                            "accuracy: targets has shape [3] but the predictions have shape [2]");
    expect_invalid_argument([&] { (void)accuracy(logits, Tensor::zeros(Shape{2})); },
                            "accuracy: targets must be int64 class indices, got float32");
    expect_invalid_argument([&] { (void)accuracy(Tensor::zeros(Shape{3}), indices(Shape{3}, {0, 1, 2})); },
                            "accuracy: logits must be [N, C] or [N, C, d1, ...], got shape [3]");
    expect_invalid_argument([&] { (void)confusion_matrix(indices(Shape{2}, {0, 4}), indices(Shape{2}, {0, 1}), 3); },
                            "confusion_matrix: predictions[1] = 4 is not a class index: there are 3 classes, so it "
                            "must be in [0, 3)");
    expect_invalid_argument([&] { (void)confusion_matrix(indices(Shape{2}, {0, -100}), indices(Shape{2}, {0, 1}), 3); },
                            "confusion_matrix: predictions[1] = -100 is not a class index");
    expect_invalid_argument(
        [&] {
            (void)confusion_matrix(indices(Shape{1, 2}, {0, 1}), indices(Shape{1, 2}, {0, 7}), 3);
        },
        "confusion_matrix: targets[0, 1] = 7 is not a class index");
    expect_invalid_argument([&] { (void)confusion_matrix(logits, indices(Shape{2}, {0, 1}), 4); },
                            "confusion_matrix: logits of shape [2, 3] have 3 classes but num_classes is 4");
    expect_invalid_argument([&] { (void)confusion_matrix(logits, indices(Shape{2}, {0, 1}), 0); },
                            "confusion_matrix: num_classes must be positive, got 0");
    expect_invalid_argument([] { (void)iou_per_class(Tensor::zeros(Shape{2, 3}, DType::Int64)); },
                            "iou_per_class: confusion must be a square matrix [num_classes, num_classes], got shape "
                            "[2, 3]");
    expect_invalid_argument([] { (void)mean_iou(Tensor::zeros(Shape{2, 2})); },
                            "iou_per_class: confusion must be an int64 matrix of counts, got float32");
}

}  // namespace
}  // namespace convkit
