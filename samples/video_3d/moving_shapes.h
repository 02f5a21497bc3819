#pragma once
// Generated video clips: a bright square drifts across a noisy background, one pixel per
// frame, up, down, left or right. The label is the direction of motion.
//
// The trajectories are drawn so that no single frame gives the answer away: a clip moving
// right from x = a to x = b and a clip moving left from b to a are equally likely, so the
// SET of frames is the same for both directions and only their ORDER differs. A model that
// looks at frames one at a time and pools them over time cannot tell left from right, nor up
// from down; seeing the direction needs time.
#include <cstdint>
#include <string>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::samples {

enum Direction : std::int64_t { kUp = 0, kDown = 1, kLeft = 2, kRight = 3 };
inline constexpr std::int64_t kDirectionCount = 4;
const std::vector<std::string>& direction_names();  // "up", "down", "left", "right"

struct ClipConfig {
    std::int64_t frames = 8;       // T
    std::int64_t frame_size = 16;  // H = W
    std::int64_t square_size = 4;
    double noise_stddev = 0.2;
};

struct ClipSet {
    Tensor clips;   // float32 [N, 1, T, H, W]: one channel, time as the first spatial dim (Conv3d's D)
    Tensor labels;  // int64 [N]: a Direction
};

// Clips first_index .. first_index + count - 1 of the stream `seed` (clip i depends only on
// (seed, i)); labels cycle through the directions.
ClipSet generate_clips(std::int64_t count, const ClipConfig& config, std::uint64_t seed,
                       std::int64_t first_index = 0);

}  // namespace convkit::samples
