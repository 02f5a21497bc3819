#pragma once
// A confusion matrix as a heatmap with its counts, for a classifier's test set.
#include <string>
#include <vector>

#include "common/image.h"
#include "convkit/tensor.h"

namespace convkit::samples {

// `confusion`: int64 [C, C], row = true class, column = predicted class (convkit::confusion_matrix).
// Each cell shows its count, shaded from white to dark blue by the square root of its share of
// its row (the recall on the diagonal): rows of different sizes compare, and confusions of a few
// percent still show. Rows are labelled "<index> <name>",
// columns by index. `class_names` has C entries.
Image confusion_matrix_image(const Tensor& confusion, const std::vector<std::string>& class_names);

}  // namespace convkit::samples
