#pragma once
// A generated segmentation task: disks, squares and triangles on noisy, unevenly lit
// backgrounds, with the class of every pixel as the label. Generated data has two virtues for
// a first segmentation model: there is an endless supply (every training step sees new
// images, so the model cannot memorise them), and the truth is exact.
#include <cstdint>
#include <string>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::samples {

// Pixel classes. A pixel covered by two shapes belongs to the one drawn last (on top).
enum ShapeClass : std::int64_t { kBackground = 0, kDisk = 1, kSquare = 2, kTriangle = 3 };
inline constexpr std::int64_t kShapeClassCount = 4;
const std::vector<std::string>& shape_class_names();  // "background", "disk", "square", "triangle"

struct ShapesConfig {
    std::int64_t image_size = 48;  // square images, a multiple of 8 for a three-level U-Net
    std::int64_t max_shapes = 3;   // 1..max_shapes shapes per image
    double noise_stddev = 0.15;    // Gaussian pixel noise on top of the lit background
};

struct SegmentationSet {
    Tensor images;  // float32 [N, 1, S, S], roughly in [0, 1]
    Tensor masks;   // int64 [N, S, S]: a ShapeClass per pixel
};

// Images first_index .. first_index + count - 1 of the endless stream `seed`: image i depends
// only on (seed, i), so training batch k is images k*B.., and a test set drawn from another
// seed is the same on every run.
SegmentationSet generate_shapes(std::int64_t count, const ShapesConfig& config, std::uint64_t seed,
                                std::int64_t first_index = 0);

}  // namespace convkit::samples
