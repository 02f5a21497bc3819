#include "video_3d/moving_shapes.h"

#include <random>

namespace convkit::samples {

const std::vector<std::string>& direction_names() {
    static const std::vector<std::string> names{"up", "down", "left", "right"};
    return names;
}

namespace {

void draw_clip(std::mt19937_64& rng, const ClipConfig& config, Direction direction, float* clip) {
    const std::int64_t t_count = config.frames, size = config.frame_size, square = config.square_size;
    const std::int64_t travel = t_count - 1;  // one pixel per frame
    std::uniform_int_distribution<std::int64_t> across(0, size - square);           // the fixed coordinate
    std::uniform_int_distribution<std::int64_t> path_start(0, size - square - travel);  // the path's low end
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::normal_distribution<double> noise(0.0, config.noise_stddev);
    const std::int64_t fixed = across(rng), low = path_start(rng);
    const double background = 0.2 * unit(rng), brightness = background + 0.5 + 0.4 * unit(rng);
    // The path runs between low and low + travel; the direction only says from which end.
    const bool forward = direction == kDown || direction == kRight;
    const bool horizontal = direction == kLeft || direction == kRight;
    for (std::int64_t t = 0; t < t_count; ++t) {
        const std::int64_t moving = forward ? low + t : low + travel - t;
        const std::int64_t x0 = horizontal ? moving : fixed, y0 = horizontal ? fixed : moving;
        float* frame = clip + t * size * size;
        for (std::int64_t y = 0; y < size; ++y)
            for (std::int64_t x = 0; x < size; ++x) {
                const bool inside = x >= x0 && x < x0 + square && y >= y0 && y < y0 + square;
                frame[y * size + x] = static_cast<float>((inside ? brightness : background) + noise(rng));
            }
    }
}

}  // namespace

ClipSet generate_clips(std::int64_t count, const ClipConfig& config, std::uint64_t seed, std::int64_t first_index) {
    const std::int64_t t = config.frames, s = config.frame_size;
    ClipSet set{Tensor::zeros(Shape{count, 1, t, s, s}), Tensor::zeros(Shape{count}, DType::Int64)};
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t index = first_index + i;
        std::seed_seq seq{seed, static_cast<std::uint64_t>(index)};
        std::mt19937_64 rng(seq);
        const auto direction = static_cast<Direction>(index % kDirectionCount);
        set.labels.data<std::int64_t>()[i] = direction;
        draw_clip(rng, config, direction, set.clips.data<float>() + i * t * s * s);
    }
    return set;
}

}  // namespace convkit::samples
