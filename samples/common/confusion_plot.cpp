#include "common/confusion_plot.h"

#include <algorithm>
#include <cmath>

#include "common/bitmap_font.h"
#include "convkit/error.h"

namespace convkit::samples {

namespace {
constexpr int kMargin = 6;
constexpr int kCellHeight = kGlyphHeight + 8;
constexpr Rgb kDarkest{8, 48, 107};  // the end of the white-to-blue scale

Rgb shade(double darkness) {
    auto mix = [&](std::uint8_t dark) {
        return static_cast<std::uint8_t>(std::lround(255.0 + (dark - 255.0) * std::clamp(darkness, 0.0, 1.0)));
    };
    return {mix(kDarkest.r), mix(kDarkest.g), mix(kDarkest.b)};
}
}  // namespace

Image confusion_matrix_image(const Tensor& confusion, const std::vector<std::string>& class_names) {
    const auto classes = static_cast<std::int64_t>(class_names.size());
    if (confusion.rank() != 2 || confusion.size(0) != classes || confusion.size(1) != classes)
        throw InvalidArgument("confusion_matrix_image: expected a [" + std::to_string(classes) + ", " +
                              std::to_string(classes) + "] matrix for " + std::to_string(classes) +
                              " class names, got " + confusion.shape().to_string());
    const std::vector<double> counts = confusion.to_vector();
    const auto at = [&](std::int64_t row, std::int64_t col) {
        return counts[static_cast<std::size_t>(row * classes + col)];
    };

    std::vector<std::string> row_labels;
    int label_width = 0;
    int count_width = text_width(std::to_string(classes - 1));
    for (std::int64_t i = 0; i < classes; ++i) {
        row_labels.push_back(std::to_string(i) + " " + class_names[static_cast<std::size_t>(i)]);
        label_width = std::max(label_width, text_width(row_labels.back()));
        for (std::int64_t j = 0; j < classes; ++j)
            count_width = std::max(count_width, text_width(std::to_string(static_cast<long long>(at(i, j)))));
    }
    const int cell_width = count_width + 8;
    const std::string title = "true class (rows) vs predicted class (columns)";
    const int left = kMargin + label_width + kMargin;
    const int top = kMargin + kGlyphHeight + kMargin + kGlyphHeight + 4;  // title, then column indices
    const int grid = static_cast<int>(classes);
    Image image(std::max(left + grid * cell_width, text_width(title) + kMargin) + kMargin,
                top + grid * kCellHeight + kMargin, 3, kWhite);

    draw_text(image, kMargin, kMargin, title, kBlack);
    for (int i = 0; i < grid; ++i) {
        const std::string index = std::to_string(i);
        draw_text(image, left + i * cell_width + (cell_width - text_width(index)) / 2, top - kGlyphHeight - 3, index,
                  kBlack);
        draw_text(image, kMargin, top + i * kCellHeight + (kCellHeight - kGlyphHeight) / 2,
                  row_labels[static_cast<std::size_t>(i)], kBlack);
        double row_total = 0;
        for (int j = 0; j < grid; ++j) row_total += at(i, j);
        for (int j = 0; j < grid; ++j) {
            // The square root lifts the small shares where the interesting confusions are.
            const double darkness = std::sqrt(row_total > 0 ? at(i, j) / row_total : 0.0);
            const int x = left + j * cell_width;
            const int y = top + i * kCellHeight;
            image.fill_rect(x, y, cell_width, kCellHeight, shade(darkness));
            const std::string count = std::to_string(static_cast<long long>(at(i, j)));
            draw_text(image, x + (cell_width - text_width(count)) / 2, y + (kCellHeight - kGlyphHeight) / 2, count,
                      darkness > 0.6 ? kWhite : kBlack);
        }
    }
    // A frame around the grid, so white (empty) cells at the edge still read as cells.
    const Rgb frame{160, 160, 160};
    image.fill_rect(left - 1, top - 1, grid * cell_width + 2, 1, frame);
    image.fill_rect(left - 1, top + grid * kCellHeight, grid * cell_width + 2, 1, frame);
    image.fill_rect(left - 1, top - 1, 1, grid * kCellHeight + 2, frame);
    image.fill_rect(left + grid * cell_width, top - 1, 1, grid * kCellHeight + 2, frame);
    return image;
}

}  // namespace convkit::samples
