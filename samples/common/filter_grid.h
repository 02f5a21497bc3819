#pragma once
// The learned filters of a convolution layer as small pictures.
#include "common/image.h"
#include "convkit/tensor.h"

namespace convkit::samples {

// `weight`: a 2-D convolution's weight [O, C, kH, kW]. With C == 3 each filter is one RGB tile;
// otherwise each (output, input channel) pair is a gray tile, one row of C tiles per output
// (for C == 1, up to 8 tiles per row). Each tile is stretched to its own minimum (black) and
// maximum (white), enlarged `zoom` times, on a white background with gaps of
// max(2, zoom / 2) pixels.
Image filter_grid_image(const Tensor& weight, int zoom = 8);

}  // namespace convkit::samples
