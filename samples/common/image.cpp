#include "common/image.h"

#include <algorithm>
#include <cmath>

#include "convkit/error.h"

namespace convkit::samples {

Image::Image(int width, int height, int channels, Rgb background)
    : width_(width), height_(height), channels_(channels) {
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3))
        throw InvalidArgument("Image: width and height must be positive and channels 1 or 3, got " +
                              std::to_string(width) + "x" + std::to_string(height) + "x" + std::to_string(channels));
    pixels_.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) *
                   static_cast<std::size_t>(channels));
    fill_rect(0, 0, width, height, background);
}

void Image::set(int x, int y, Rgb color) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    std::uint8_t* p = &pixels_[(static_cast<std::size_t>(y) * width_ + x) * channels_];
    if (channels_ == 1) {
        p[0] = static_cast<std::uint8_t>((color.r + color.g + color.b) / 3);
    } else {
        p[0] = color.r;
        p[1] = color.g;
        p[2] = color.b;
    }
}

Rgb Image::get(int x, int y) const {
    const std::uint8_t* p = &pixels_[(static_cast<std::size_t>(y) * width_ + x) * channels_];
    return channels_ == 1 ? Rgb{p[0], p[0], p[0]} : Rgb{p[0], p[1], p[2]};
}

void Image::fill_rect(int x, int y, int width, int height, Rgb color) {
    for (int row = std::max(y, 0); row < std::min(y + height, height_); ++row)
        for (int col = std::max(x, 0); col < std::min(x + width, width_); ++col) set(col, row, color);
}

void Image::paste(const Image& source, int x, int y) {
    for (int row = 0; row < source.height(); ++row)
        for (int col = 0; col < source.width(); ++col) set(x + col, y + row, source.get(col, row));
}

Image Image::enlarged(int factor) const {
    Image result(width_ * factor, height_ * factor, channels_);
    for (int row = 0; row < height_; ++row)
        for (int col = 0; col < width_; ++col)
            result.fill_rect(col * factor, row * factor, factor, factor, get(col, row));
    return result;
}

Image image_from_tensor(const Tensor& tensor, double low, double high) {
    const bool chw = tensor.rank() == 3;
    if (!(tensor.rank() == 2 || (chw && (tensor.size(0) == 1 || tensor.size(0) == 3))))
        throw InvalidArgument("image_from_tensor: expected [H, W] or [C, H, W] with C = 1 or 3, got " +
                              tensor.shape().to_string());
    const int channels = chw ? static_cast<int>(tensor.size(0)) : 1;
    const int height = static_cast<int>(tensor.size(-2));
    const int width = static_cast<int>(tensor.size(-1));
    const std::vector<double> values = tensor.to_vector();
    const double span = high > low ? high - low : 1.0;
    auto byte = [&](int c, int y, int x) {
        const double v = values[(static_cast<std::size_t>(c) * height + y) * width + x];
        return static_cast<std::uint8_t>(std::lround(std::clamp((v - low) / span, 0.0, 1.0) * 255.0));
    };
    Image image(width, height, channels);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            const std::uint8_t first = byte(0, y, x);
            image.set(x, y, channels == 1 ? Rgb{first, first, first} : Rgb{first, byte(1, y, x), byte(2, y, x)});
        }
    return image;
}

}  // namespace convkit::samples
