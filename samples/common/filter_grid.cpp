#include "common/filter_grid.h"

#include <algorithm>
#include <vector>

#include "convkit/error.h"

namespace convkit::samples {

namespace {

// One tile: `channels` planes of kh x kw from `values` at `offset`, stretched to [0, 255].
Image filter_tile(const std::vector<double>& values, std::size_t offset, int channels, int kh, int kw) {
    const auto count = static_cast<std::size_t>(channels * kh * kw);
    const auto [low, high] = std::minmax_element(values.begin() + static_cast<std::ptrdiff_t>(offset),
                                                 values.begin() + static_cast<std::ptrdiff_t>(offset + count));
    const double span = *high > *low ? *high - *low : 1.0;
    auto byte = [&](int c, int y, int x) {
        const double v = values[offset + static_cast<std::size_t>((c * kh + y) * kw + x)];
        return static_cast<std::uint8_t>((v - *low) / span * 255.0 + 0.5);
    };
    Image tile(kw, kh, channels);
    for (int y = 0; y < kh; ++y)
        for (int x = 0; x < kw; ++x) {
            const std::uint8_t first = byte(0, y, x);
            tile.set(x, y, channels == 1 ? Rgb{first, first, first} : Rgb{first, byte(1, y, x), byte(2, y, x)});
        }
    return tile;
}
}  // namespace

Image filter_grid_image(const Tensor& weight, int zoom) {
    if (weight.rank() != 4 || zoom <= 0)
        throw InvalidArgument("filter_grid_image: expected a conv2d weight [O, C, kH, kW] and zoom > 0, got " +
                              weight.shape().to_string() + " and zoom " + std::to_string(zoom));
    const int outputs = static_cast<int>(weight.size(0));
    const int inputs = static_cast<int>(weight.size(1));
    const int kh = static_cast<int>(weight.size(2));
    const int kw = static_cast<int>(weight.size(3));
    const std::vector<double> values = weight.to_vector();

    const bool rgb = inputs == 3;
    const int tile_channels = rgb ? 3 : 1;
    const int tiles = rgb ? outputs : outputs * inputs;
    const int columns = rgb || inputs == 1 ? std::min(tiles, 8) : inputs;
    const int rows = (tiles + columns - 1) / columns;
    const int tile_w = kw * zoom, tile_h = kh * zoom;
    const int gap = std::max(2, zoom / 2);  // wide enough to tell tiles apart at any zoom
    Image grid(gap + columns * (tile_w + gap), gap + rows * (tile_h + gap), tile_channels, kWhite);
    for (int t = 0; t < tiles; ++t) {
        const std::size_t offset = static_cast<std::size_t>(t) * static_cast<std::size_t>(tile_channels * kh * kw);
        const Image tile = filter_tile(values, offset, tile_channels, kh, kw).enlarged(zoom);
        grid.paste(tile, gap + (t % columns) * (tile_w + gap), gap + (t / columns) * (tile_h + gap));
    }
    return grid;
}

}  // namespace convkit::samples
