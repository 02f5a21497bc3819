#pragma once
// Evaluation metrics for classification and segmentation. They run on the host (tensors on a
// CUDA device are copied there first): they are evaluation-time summaries, not training ops,
// and record no gradients. correct_predictions is the exception: it counts on the tensors'
// device, for running accuracies in a training loop that must not wait for the device.
//
// Shapes follow cross_entropy (convkit/ops/loss.h): logits [N, C] or [N, C, d1, ...] (a score
// per class and pixel), targets int64 [N] or [N, d1, ...]. The predicted class of a sample or
// pixel is the argmax over dim 1, the first maximum in class order (a NaN counts as the
// maximum, as in torch.argmax). Targets equal to ignore_index (e.g. 255, the boundary label of
// Pascal VOC) are left out of every count.
#include <cstdint>
#include <vector>

#include "convkit/tensor.h"

namespace convkit {

// int64 [N] or [N, d1, ...]: the argmax of logits over dim 1 (the class dim).
Tensor predicted_classes(const Tensor& logits);

// The fraction of counted targets whose predicted class equals the target; NaN when no target
// is counted. Targets must be in [0, C) or ignore_index (else InvalidArgument naming the value
// and its position).
double accuracy(const Tensor& logits, const Tensor& targets, std::int64_t ignore_index = -100);

// The number of targets other than ignore_index whose predicted class equals them, as an int64
// scalar on the logits' device. On a CUDA device it is computed there and nothing waits: a
// target outside [0, C) other than ignore_index is an InvalidArgument (naming the value and its
// position) raised at the host's next wait for the device, as cross_entropy's; on the host at
// once. Add the counts of a whole epoch on the device and read the sum once.
Tensor correct_predictions(const Tensor& logits, const Tensor& targets, std::int64_t ignore_index = -100);

// int64 [num_classes, num_classes]: entry [i][j] counts the samples (pixels) whose TRUE class is
// i (row) and whose PREDICTED class is j (column), as in scikit-learn. The first argument is
// either int64 predicted classes of the targets' shape, or float logits [N, num_classes, ...]
// (then predicted_classes is applied). Classes and targets outside [0, num_classes), other than
// ignore_index, are an InvalidArgument naming the value and its position.
Tensor confusion_matrix(const Tensor& predictions_or_logits, const Tensor& targets, std::int64_t num_classes,
                        std::int64_t ignore_index = -100);

// Intersection over union per class from a confusion matrix (rows true, columns predicted):
//   IoU_c = M[c][c] / (sum_j M[c][j] + sum_i M[i][c] - M[c][c]).
// A class absent from both truth and prediction has no IoU: its entry is NaN.
std::vector<double> iou_per_class(const Tensor& confusion);

// The mean of iou_per_class over the classes that have one: classes absent from both truth and
// prediction are EXCLUDED from the mean (they would otherwise count as 0 or 1 arbitrarily). NaN
// when no class is present.
double mean_iou(const Tensor& confusion);

}  // namespace convkit
