#pragma once
// A built-in 5x7 pixel font with descenders (5x8 cells; printable ASCII) for labels in the
// samples' pictures.
#include <string>

#include "common/image.h"

namespace convkit::samples {

inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 8;                 // 7 above the baseline, 1 for descenders
inline constexpr int kGlyphAdvance = kGlyphWidth + 1;  // one pixel between characters

// Width in pixels of `text` drawn at `scale` (no trailing gap); its height is kGlyphHeight * scale.
int text_width(const std::string& text, int scale = 1);

// Draws `text` with its top-left corner at (x, y), each font pixel a scale x scale block, clipped
// to the image. Characters outside printable ASCII are drawn as '?'.
void draw_text(Image& image, int x, int y, const std::string& text, Rgb color, int scale = 1);

}  // namespace convkit::samples
