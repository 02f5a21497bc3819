#pragma once
// Composable transforms of one example's input (a host tensor [C, H, W]), applied on the fly
// by the DataLoader. Random transforms draw from the generator they are given, which the loader
// seeds from (seed, epoch, example index): the same seed reproduces them, for any thread count.
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::data {

using Transform = std::function<Tensor(const Tensor& input, std::mt19937_64& rng)>;

Transform compose(std::vector<Transform> transforms);
Transform scale_to_unit(double max_value = 255.0);  // x / max_value
Transform normalize(std::vector<double> mean, std::vector<double> stddev);  // per channel
Transform random_crop(std::int64_t height, std::int64_t width, std::int64_t padding = 0);  // zero padding
Transform random_horizontal_flip(double p = 0.5);
// Rotation by up to +-degrees and translation by up to +-translate (fraction of the size),
// bilinear, zeros outside.
Transform random_affine(double degrees, double translate = 0.0);
Transform gaussian_noise(double stddev);
// Brightness: x * f, f in [1 - b, 1 + b]; contrast: mean + (x - mean) * g, g in [1 - c, 1 + c].
Transform brightness_contrast(double brightness, double contrast);

}  // namespace convkit::data
