#include "synthetic_angles.h"

#include <random>
#include <vector>

namespace convkit::testing {

namespace {
struct Canvas {
    std::int64_t size;
    float* pixels;
    void stroke(std::int64_t row, std::int64_t col, std::int64_t d_row, std::int64_t d_col, std::int64_t length) {
        for (std::int64_t i = 0; i < length; ++i) pixels[(row + i * d_row) * size + (col + i * d_col)] = 1.0f;
    }
};

// Arms of `a` and `b` pixels from a corner; the orientation picks the arms' directions.
void draw_angle(Canvas& c, std::mt19937_64& rng, std::int64_t a, std::int64_t b) {
    const int orientation = static_cast<int>(rng() % 4);
    const std::int64_t d_row = orientation < 2 ? 1 : -1;
    const std::int64_t d_col = orientation % 2 == 0 ? 1 : -1;
    const std::int64_t reach = std::max(a, b);
    std::uniform_int_distribution<std::int64_t> position(0, c.size - reach);
    std::int64_t row = position(rng), col = position(rng);
    if (d_row < 0) row += reach - 1;
    if (d_col < 0) col += reach - 1;
    c.stroke(row, col, d_row, 0, a);
    c.stroke(row, col, 0, d_col, b);
}

// The same two strokes with a gap of at least two pixels between them, or one straight stroke.
void draw_non_angle(Canvas& c, std::mt19937_64& rng, std::int64_t a, std::int64_t b) {
    if (rng() % 3 == 0) {
        const std::int64_t length = std::min(a + b - 1, c.size);
        std::uniform_int_distribution<std::int64_t> along(0, c.size - length);
        std::uniform_int_distribution<std::int64_t> across(0, c.size - 1);
        if (rng() % 2 == 0) {
            c.stroke(across(rng), along(rng), 0, 1, length);
        } else {
            c.stroke(along(rng), across(rng), 1, 0, length);
        }
        return;
    }
    // A vertical stroke in the left part and a horizontal one in the right part (or mirrored).
    const std::int64_t half = c.size / 2;
    std::uniform_int_distribution<std::int64_t> row_v(0, c.size - a), row_h(0, c.size - 1);
    std::uniform_int_distribution<std::int64_t> col_v(0, half - 3), col_h(half, c.size - b);
    const bool mirrored = rng() % 2 == 0;
    const std::int64_t v_col = col_v(rng), h_col = col_h(rng);
    c.stroke(row_v(rng), mirrored ? c.size - 1 - v_col : v_col, 1, 0, a);
    c.stroke(row_h(rng), mirrored ? c.size - (h_col + b) : h_col, 0, 1, b);
}
}  // namespace

LabelledImages make_angle_images(std::int64_t count, std::int64_t size, std::uint64_t seed, double noise) {
    std::mt19937_64 rng(seed);
    std::vector<float> pixels(static_cast<std::size_t>(count * size * size), 0.0f);
    std::vector<std::int64_t> labels(static_cast<std::size_t>(count));
    std::uniform_int_distribution<std::int64_t> arm(3, std::max<std::int64_t>(3, size / 2 - 1));
    std::normal_distribution<float> gaussian(0.0f, static_cast<float>(noise));
    for (std::int64_t n = 0; n < count; ++n) {
        Canvas canvas{size, pixels.data() + n * size * size};
        const bool angle = rng() % 2 == 0;
        labels[static_cast<std::size_t>(n)] = angle ? 1 : 0;
        const std::int64_t a = arm(rng), b = arm(rng);
        angle ? draw_angle(canvas, rng, a, b) : draw_non_angle(canvas, rng, a, b);
        for (std::int64_t i = 0; i < size * size; ++i) canvas.pixels[i] += gaussian(rng);
    }
    return {Tensor::from_vector(Shape{count, 1, size, size}, pixels), Tensor::from_vector(Shape{count}, labels)};
}

}  // namespace convkit::testing
