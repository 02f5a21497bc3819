#pragma once
// An 8-bit image in memory (grayscale or RGB), the canvas the samples draw their pictures on
// before writing them as PNG (png_writer.h). Deliberately tiny: fill, copy, enlarge, and a
// conversion from a tensor.
#include <cstdint>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::samples {

struct Rgb {
    std::uint8_t r = 0, g = 0, b = 0;
};

inline constexpr Rgb kBlack{0, 0, 0};
inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kGray{110, 110, 110};
inline constexpr Rgb kGreen{0, 130, 0};
inline constexpr Rgb kRed{200, 0, 0};

class Image {
public:
    // channels: 1 (gray) or 3 (RGB); every pixel starts as `background`.
    Image(int width, int height, int channels, Rgb background = kBlack);

    int width() const { return width_; }
    int height() const { return height_; }
    int channels() const { return channels_; }
    // Row-major, channels interleaved: what PNG stores.
    const std::vector<std::uint8_t>& pixels() const { return pixels_; }

    // Writes one pixel; outside the image it is clipped. A gray image takes the colour's mean.
    void set(int x, int y, Rgb color);
    Rgb get(int x, int y) const;  // (x, y) must be inside the image
    void fill_rect(int x, int y, int width, int height, Rgb color);
    // Copies `source` with its top-left corner at (x, y), clipped; gray onto RGB is fine.
    void paste(const Image& source, int x, int y);
    // Each pixel becomes a factor x factor block (nearest neighbour keeps small images crisp).
    Image enlarged(int factor) const;

private:
    int width_;
    int height_;
    int channels_;
    std::vector<std::uint8_t> pixels_;
};

// A [C, H, W] (or [H, W]) float tensor with C = 1 or 3 as an image, mapping [low, high] to
// [0, 255] (values outside are clipped). CUDA tensors are copied to the host first.
Image image_from_tensor(const Tensor& tensor, double low = 0.0, double high = 1.0);

}  // namespace convkit::samples
