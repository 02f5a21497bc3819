#include "common/image_grid.h"

#include <algorithm>

#include "common/bitmap_font.h"
#include "convkit/error.h"

namespace convkit::samples {

namespace {
constexpr int kGap = 4;  // between cells and around the grid
constexpr int kLineHeight = kGlyphHeight + 2;
}  // namespace

Image captioned_image_grid(const std::vector<CaptionedImage>& cells, int columns) {
    if (cells.empty() || columns <= 0)
        throw InvalidArgument("captioned_image_grid: needs at least one image and columns > 0, got " +
                              std::to_string(cells.size()) + " images and " + std::to_string(columns) + " columns");
    int cell_width = 0, image_height = 0, caption_lines = 0, channels = 1;
    for (const CaptionedImage& cell : cells) {
        cell_width = std::max(cell_width, cell.image.width());
        image_height = std::max(image_height, cell.image.height());
        caption_lines = std::max(caption_lines, static_cast<int>(cell.captions.size()));
        channels = std::max(channels, cell.image.channels());
        for (const Caption& caption : cell.captions) cell_width = std::max(cell_width, text_width(caption.text));
        for (const Caption& caption : cell.captions)
            if (caption.color.r != caption.color.g || caption.color.g != caption.color.b) channels = 3;
    }
    const int cell_height = image_height + 2 + caption_lines * kLineHeight;
    const int rows = (static_cast<int>(cells.size()) + columns - 1) / columns;
    const int used_columns = std::min(columns, static_cast<int>(cells.size()));
    Image grid(kGap + used_columns * (cell_width + kGap), kGap + rows * (cell_height + kGap), channels, kWhite);
    for (std::size_t i = 0; i < cells.size(); ++i) {
        const int x = kGap + static_cast<int>(i % static_cast<std::size_t>(columns)) * (cell_width + kGap);
        const int y = kGap + static_cast<int>(i / static_cast<std::size_t>(columns)) * (cell_height + kGap);
        const CaptionedImage& cell = cells[i];
        grid.paste(cell.image, x + (cell_width - cell.image.width()) / 2, y + (image_height - cell.image.height()) / 2);
        int line_y = y + image_height + 2;
        for (const Caption& caption : cell.captions) {
            draw_text(grid, x + (cell_width - text_width(caption.text)) / 2, line_y, caption.text, caption.color);
            line_y += kLineHeight;
        }
    }
    return grid;
}

Image with_title(const Image& image, const std::string& title) {
    const int band = kGlyphHeight + 2 * kGap;
    Image result(std::max(image.width(), text_width(title) + 2 * kGap), image.height() + band, image.channels(),
                 kWhite);
    draw_text(result, kGap, kGap, title, kBlack);
    result.paste(image, 0, band);
    return result;
}

}  // namespace convkit::samples
