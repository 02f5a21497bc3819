#include "segmentation/shapes.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <random>

namespace convkit::samples {

const std::vector<std::string>& shape_class_names() {
    static const std::vector<std::string> names{"background", "disk", "square", "triangle"};
    return names;
}

namespace {

struct Point {
    double x;
    double y;
};

// Which side of the edge a -> b the point p is on (the sign of the cross product).
double edge_side(Point a, Point b, Point p) { return (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x); }

// A convex polygon of `corners` corners on a circle of radius r around c, turned by `angle`.
bool inside_regular_polygon(Point p, Point c, double r, int corners, double angle) {
    const double step = 2 * std::numbers::pi / corners;
    for (int k = 0; k < corners; ++k) {
        const Point a{c.x + r * std::cos(angle + k * step), c.y + r * std::sin(angle + k * step)};
        const Point b{c.x + r * std::cos(angle + (k + 1) * step), c.y + r * std::sin(angle + (k + 1) * step)};
        if (edge_side(a, b, p) < 0) return false;
    }
    return true;
}

void draw_image(std::mt19937_64& rng, const ShapesConfig& config, float* image, std::int64_t* mask) {
    const std::int64_t size = config.image_size;
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::normal_distribution<double> noise(0.0, config.noise_stddev);
    // Uneven lighting: a random plane of brightness, so that "bright" alone does not mean "shape".
    const double base = 0.15 + 0.25 * unit(rng);
    const double slope_x = (unit(rng) - 0.5) * 0.3 / static_cast<double>(size);
    const double slope_y = (unit(rng) - 0.5) * 0.3 / static_cast<double>(size);
    auto lighting = [&](std::int64_t x, std::int64_t y) {
        return base + slope_x * static_cast<double>(x) + slope_y * static_cast<double>(y);
    };
    std::vector<double> pixels(static_cast<std::size_t>(size * size));
    for (std::int64_t y = 0; y < size; ++y)
        for (std::int64_t x = 0; x < size; ++x) pixels[static_cast<std::size_t>(y * size + x)] = lighting(x, y);
    std::fill(mask, mask + size * size, kBackground);

    const auto shapes = 1 + static_cast<std::int64_t>(unit(rng) * static_cast<double>(config.max_shapes));
    const double min_radius = static_cast<double>(size) / 6, max_radius = static_cast<double>(size) / 3.5;
    for (std::int64_t s = 0; s < shapes; ++s) {
        const auto kind = static_cast<ShapeClass>(1 + static_cast<std::int64_t>(unit(rng) * 3) % 3);
        const double r = min_radius + (max_radius - min_radius) * unit(rng);
        const Point c{r + (static_cast<double>(size) - 2 * r) * unit(rng), r + (static_cast<double>(size) - 2 * r) * unit(rng)};
        const double angle = 2 * std::numbers::pi * unit(rng);
        const double contrast = 0.35 + 0.3 * unit(rng);  // a shape is lit like the background, but brighter
        for (std::int64_t y = 0; y < size; ++y)
            for (std::int64_t x = 0; x < size; ++x) {
                const Point p{static_cast<double>(x) + 0.5, static_cast<double>(y) + 0.5};  // pixel centre
                bool inside = false;
                if (kind == kDisk) inside = std::hypot(p.x - c.x, p.y - c.y) <= r;
                if (kind == kSquare) inside = inside_regular_polygon(p, c, r, 4, angle);
                if (kind == kTriangle) inside = inside_regular_polygon(p, c, r * 1.2, 3, angle);
                if (!inside) continue;
                pixels[static_cast<std::size_t>(y * size + x)] = lighting(x, y) + contrast;
                mask[y * size + x] = kind;
            }
    }
    for (std::size_t i = 0; i < pixels.size(); ++i) image[i] = static_cast<float>(pixels[i] + noise(rng));
}

}  // namespace

SegmentationSet generate_shapes(std::int64_t count, const ShapesConfig& config, std::uint64_t seed,
                                std::int64_t first_index) {
    const std::int64_t size = config.image_size;
    SegmentationSet set{Tensor::zeros(Shape{count, 1, size, size}),
                        Tensor::zeros(Shape{count, size, size}, DType::Int64)};
    for (std::int64_t i = 0; i < count; ++i) {
        // One generator per image, seeded from (seed, i): image i never depends on the count.
        std::seed_seq seq{seed, static_cast<std::uint64_t>(first_index + i)};
        std::mt19937_64 rng(seq);
        draw_image(rng, config, set.images.data<float>() + i * size * size,
                   set.masks.data<std::int64_t>() + i * size * size);
    }
    return set;
}

}  // namespace convkit::samples
