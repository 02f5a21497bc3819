#pragma once
// Pictures laid out in a grid with text under each (a sample's predictions: the image, the
// predicted class in green or red, the true class), and a title bar above any picture.
#include <string>
#include <vector>

#include "common/image.h"

namespace convkit::samples {

struct Caption {
    std::string text;
    Rgb color = kBlack;
};

struct CaptionedImage {
    Image image;
    std::vector<Caption> captions;  // one line each, under the image
};

// `columns` cells per row on a white background. Every cell has the size of the largest image
// and is wide enough for the longest caption; images are centred in their cell.
Image captioned_image_grid(const std::vector<CaptionedImage>& cells, int columns);

// `image` with a white band above it holding `title`, left-aligned.
Image with_title(const Image& image, const std::string& title);

}  // namespace convkit::samples
