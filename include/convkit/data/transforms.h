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

// A transform takes one example's input and returns its result, which may be the input itself
// when nothing changes; it never writes its input, which may share the dataset's storage.
using Transform = std::function<Tensor(const Tensor& input, std::mt19937_64& rng)>;

// Unless said otherwise a transform takes a host tensor [C, H, W] of float32 or float64 and
// returns one of the same shape and dtype; anything else is an InvalidArgument naming the
// transform. The random ones draw from `rng` with their own portable arithmetic (not the
// implementation-defined std:: distributions), so results are the same with every standard library.

// Applies the transforms in order, all drawing from the same generator.
Transform compose(std::vector<Transform> transforms);
// x / max_value. Also takes int64 inputs of any shape (raw pixel values), giving float32.
Transform scale_to_unit(double max_value = 255.0);
// (x - mean[c]) / stddev[c] per channel; one value of each applies to every channel.
Transform normalize(std::vector<double> mean, std::vector<double> stddev);
// A height x width window at a uniformly random place in the input zero-padded by `padding` on
// every side: [C, height, width]. Needs height, width <= H, W + 2 * padding.
Transform random_crop(std::int64_t height, std::int64_t width, std::int64_t padding = 0);
// Mirrors left-right with probability p.
Transform random_horizontal_flip(double p = 0.5);
// Rotation about the centre by an angle uniform in [-degrees, degrees] and a shift uniform in
// [-translate, translate] times the width (x) and the height (y), bilinear, zeros outside.
Transform random_affine(double degrees, double translate = 0.0);
// Adds independent normal noise of this standard deviation to every element (no clamping).
Transform gaussian_noise(double stddev);
// For images in [0, 1]: brightness x * f, f uniform in [1 - brightness, 1 + brightness], then
// contrast m + (x - m) * g, g uniform in [1 - contrast, 1 + contrast], m the image's mean after
// the brightness change; the result is clamped to [0, 1] (as torchvision does).
Transform brightness_contrast(double brightness, double contrast);

}  // namespace convkit::data
