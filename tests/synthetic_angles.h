#pragma once
// The synthetic task of the training tests: small images that contain an angle (two strokes
// meeting at a right-angled corner, in any of four orientations, anywhere) versus images that
// contain the same two strokes apart, or one straight stroke of the same ink. Ink alone does
// not tell the classes apart: a network has to detect the corner.
#include <cstdint>

#include "convkit/tensor.h"

namespace convkit::testing {

struct LabelledImages {
    Tensor images;  // [count, 1, size, size] float32, strokes 1 on 0, plus Gaussian noise
    Tensor labels;  // [count] int64: 1 = contains an angle, 0 = does not
};

// Half the images (at random) contain an angle. The same seed gives the same set.
LabelledImages make_angle_images(std::int64_t count, std::int64_t size, std::uint64_t seed, double noise = 0.1);

}  // namespace convkit::testing
