// The transforms: shapes, dtypes, value ranges, exact identities, the arithmetic, and that a
// seed reproduces every random one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "convkit/convkit.h"
#include "convkit/data/transforms.h"
#include "temp_dir.h"
#include "test_util.h"

namespace convkit {
namespace {

using data::Transform;

// Distinct values 0, 1, 2, ... in a [C, H, W] image.
Tensor counting_image(std::int64_t c, std::int64_t h, std::int64_t w, DType dtype = DType::Float32) {
    std::vector<double> values(static_cast<std::size_t>(c * h * w));
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i);
    return Tensor::from_vector(Shape{c, h, w}, values).to(dtype);
}

Tensor apply(const Transform& t, const Tensor& x, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    return t(x, rng);
}

// Every random transform with its parameters, for the properties they all share.
std::vector<std::pair<std::string, Transform>> random_transforms() {
    return {{"random_crop", data::random_crop(5, 6, 2)},
            {"random_horizontal_flip", data::random_horizontal_flip(0.5)},
            {"random_affine", data::random_affine(30.0, 0.2)},
            {"gaussian_noise", data::gaussian_noise(0.1)},
            {"brightness_contrast", data::brightness_contrast(0.3, 0.3)},
            {"composed", data::compose({data::random_crop(5, 6, 1), data::random_affine(10, 0.1),
                                        data::brightness_contrast(0.2, 0.2), data::gaussian_noise(0.05)})}};
}

TEST(Transforms, AFixedSeedReproducesEveryRandomTransformAndInputsAreNeverWritten) {
    CONVKIT_SEEDED_RNG(rng);
    for (const DType dtype : {DType::Float32, DType::Float64}) {
        const Tensor image = Tensor::uniform(Shape{2, 5, 6}, 0.0, 1.0, rng(), dtype);
        const Tensor original = image.clone();
        for (const auto& [name, transform] : random_transforms()) {
            SCOPED_TRACE(name + " " + dtype_name(dtype));
            const std::uint64_t seed = rng();
            const Tensor a = apply(transform, image, seed);
            const Tensor b = apply(transform, image, seed);
            EXPECT_TRUE(testing::exactly_equal(a, b));
            EXPECT_EQ(a.dtype(), dtype);
            EXPECT_EQ(a.shape(), Shape({2, 5, 6}));
            EXPECT_TRUE(testing::exactly_equal(image, original));
            // Different seeds, different results: a flip or a small crop offset can repeat by chance, so
            // over up to 40 tries (1 in 2^40 for a fair flip; 8 tries failed now and then).
            bool differs = false;
            for (int k = 0; k < 40 && !differs; ++k) differs = !testing::exactly_equal(apply(transform, image, seed + 1 + k), a);
            EXPECT_TRUE(differs);
        }
    }
}

TEST(Transforms, ScaleToUnitDividesAndTurnsIntegersIntoFloat32) {
    const Tensor bytes = Tensor::from_vector(Shape{1, 1, 3}, std::vector<std::int64_t>{0, 51, 255});
    const Tensor scaled = apply(data::scale_to_unit(), bytes, 0);
    EXPECT_EQ(scaled.dtype(), DType::Float32);
    EXPECT_EQ(scaled.to_vector(), (std::vector<double>{0.0, static_cast<double>(0.2f), 1.0}));
    const Tensor halves = apply(data::scale_to_unit(2.0), counting_image(1, 1, 3, DType::Float64), 0);
    EXPECT_EQ(halves.dtype(), DType::Float64);
    EXPECT_EQ(halves.to_vector(), (std::vector<double>{0.0, 0.5, 1.0}));
    EXPECT_THROW((void)data::scale_to_unit(0.0), InvalidArgument);
}

TEST(Transforms, NormalizeSubtractsTheMeanAndDividesByTheStddevPerChannel) {
    const Tensor image = counting_image(2, 1, 2, DType::Float64);  // channel 0: 0 1, channel 1: 2 3
    EXPECT_EQ(apply(data::normalize({1.0, 2.0}, {2.0, 0.5}), image, 0).to_vector(),
              (std::vector<double>{-0.5, 0.0, 0.0, 2.0}));
    EXPECT_EQ(apply(data::normalize({1.0}, {4.0}), image, 0).to_vector(), (std::vector<double>{-0.25, 0.0, 0.25, 0.5}));
    const Tensor f32 = apply(data::normalize({0.2860}, {0.3530}), counting_image(1, 2, 2), 0);
    EXPECT_EQ(f32.dtype(), DType::Float32);
    EXPECT_FLOAT_EQ(static_cast<float>(f32.item(3)), static_cast<float>((3.0 - 0.2860) / 0.3530));
    EXPECT_THROW((void)apply(data::normalize({0.0, 0.0, 0.0}, {1.0}), image, 0), InvalidArgument);
    EXPECT_THROW((void)data::normalize({0.0}, {0.0}), InvalidArgument);
    EXPECT_THROW((void)data::normalize({}, {1.0}), InvalidArgument);
}

TEST(Transforms, RandomCropIsAWindowOfThePaddedImage) {
    const Tensor image = counting_image(2, 4, 5);
    // Without padding, a crop of the full size is the image.
    EXPECT_TRUE(testing::exactly_equal(apply(data::random_crop(4, 5), image, 9), image));

    // With padding 1, a 3 x 4 window can start at rows -1..2 and columns -1..2: 16 places, each
    // reached, and every output element is the input element at its place or padding zero.
    std::set<std::pair<std::int64_t, std::int64_t>> corners;
    const Transform crop = data::random_crop(3, 4, 1);
    for (std::uint64_t seed = 0; seed < 400; ++seed) {
        const Tensor out = apply(crop, image, seed);
        ASSERT_EQ(out.shape(), Shape({2, 3, 4}));
        bool found = false;
        for (std::int64_t top = -1; top <= 2 && !found; ++top) {
            for (std::int64_t left = -1; left <= 2 && !found; ++left) {
                bool match = true;
                for (std::int64_t c = 0; c < 2; ++c) {
                    for (std::int64_t i = 0; i < 3; ++i) {
                        for (std::int64_t j = 0; j < 4; ++j) {
                            const std::int64_t r = top + i, col = left + j;
                            const bool inside = r >= 0 && r < 4 && col >= 0 && col < 5;
                            const double expected = inside ? image.item(c * 20 + r * 5 + col) : 0.0;
                            match = match && out.item((c * 3 + i) * 4 + j) == expected;
                        }
                    }
                }
                if (match) {
                    found = true;
                    corners.insert({top, left});
                }
            }
        }
        EXPECT_TRUE(found) << "seed " << seed << ": not a window of the padded image";
    }
    EXPECT_EQ(corners.size(), 16u);
    EXPECT_THROW((void)apply(data::random_crop(7, 5, 1), image, 0), InvalidArgument);
    EXPECT_THROW((void)data::random_crop(0, 5), InvalidArgument);
}

TEST(Transforms, HorizontalFlipMirrorsAndTwiceIsTheIdentity) {
    const Tensor image = counting_image(2, 2, 3);
    const Tensor flipped = apply(data::random_horizontal_flip(1.0), image, 0);
    EXPECT_EQ(flipped.to_vector(), (std::vector<double>{2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9}));
    EXPECT_TRUE(testing::exactly_equal(apply(data::random_horizontal_flip(1.0), flipped, 1), image));
    EXPECT_TRUE(testing::exactly_equal(apply(data::random_horizontal_flip(0.0), image, 2), image));
    int flips = 0;
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
        flips += testing::exactly_equal(apply(data::random_horizontal_flip(0.5), image, seed), flipped) ? 1 : 0;
    }
    EXPECT_GT(flips, 60);  // 200 fair coins: 100 +- 7 (sd)
    EXPECT_LT(flips, 140);
    EXPECT_THROW((void)data::random_horizontal_flip(1.5), InvalidArgument);
}

TEST(Transforms, RandomAffineWithNothingToDoIsTheIdentityAndStaysInRange) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor image = Tensor::uniform(Shape{3, 7, 8}, -1.0, 2.0, rng(), DType::Float64);
    EXPECT_TRUE(testing::exactly_equal(apply(data::random_affine(0.0, 0.0), image, rng()), image));
    // Bilinear sampling with zeros outside is a convex combination of input values and zeros.
    for (int k = 0; k < 20; ++k) {
        const Tensor out = apply(data::random_affine(45.0, 0.3), image, rng());
        for (double v : out.to_vector()) {
            EXPECT_GE(v, -1.0 - 1e-12);
            EXPECT_LE(v, 2.0 + 1e-12);
        }
    }
}

// The centre of mass of a blob: the geometry of the rotation and shift.
std::pair<double, double> centre_of_mass(const Tensor& image) {
    const std::int64_t h = image.size(1), w = image.size(2);
    double mass = 0, y = 0, x = 0;
    for (std::int64_t i = 0; i < h; ++i) {
        for (std::int64_t j = 0; j < w; ++j) {
            const double v = image.item(i * w + j);
            mass += v;
            y += v * static_cast<double>(i);
            x += v * static_cast<double>(j);
        }
    }
    return {y / mass, x / mass};
}

TEST(Transforms, RandomAffineRotatesAboutTheCentreAndShiftsWithoutLosingMass) {
    CONVKIT_SEEDED_RNG(rng);
    // A 3 x 3 blob 4 pixels right of the centre (7, 7) of a 15 x 15 image.
    Tensor image = Tensor::zeros(Shape{1, 15, 15}, DType::Float64);
    for (std::int64_t i = 6; i <= 8; ++i)
        for (std::int64_t j = 10; j <= 12; ++j) image.at<double>({0, i, j}) = 1.0;
    // Rotation only: the centre stays, the blob stays 4 pixels from it.
    Tensor centre_dot = Tensor::zeros(Shape{1, 15, 15}, DType::Float64);
    centre_dot.at<double>({0, 7, 7}) = 1.0;
    for (int k = 0; k < 10; ++k) {
        const std::uint64_t seed = rng();
        EXPECT_EQ(apply(data::random_affine(90.0), centre_dot, seed).at<double>({0, 7, 7}), 1.0);
        const auto [y, x] = centre_of_mass(apply(data::random_affine(90.0), image, seed));
        EXPECT_NEAR(std::hypot(y - 7.0, x - 7.0), 4.0, 0.05);
    }
    // Shift only (at most 0.1 * 15 pixels, so the blob stays inside): bilinear weights sum to 1,
    // so no mass is lost, and the blob moves by at most the allowed shift in each direction.
    for (int k = 0; k < 10; ++k) {
        const Tensor out = apply(data::random_affine(0.0, 0.1), image, rng());
        double sum = 0;
        for (double v : out.to_vector()) sum += v;
        EXPECT_NEAR(sum, 9.0, 1e-12);
        const auto [y, x] = centre_of_mass(out);
        EXPECT_LE(std::abs(y - 7.0), 1.5 + 1e-12);
        EXPECT_LE(std::abs(x - 11.0), 1.5 + 1e-12);
    }
    EXPECT_THROW((void)data::random_affine(-1.0), InvalidArgument);
    EXPECT_THROW((void)data::random_affine(10.0, 2.0), InvalidArgument);
}

TEST(Transforms, GaussianNoiseHasTheRequestedSpread) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor image = Tensor::full(Shape{3, 64, 64}, 0.5, DType::Float64);
    EXPECT_TRUE(testing::exactly_equal(apply(data::gaussian_noise(0.0), image, rng()), image));
    const std::vector<double> noisy = apply(data::gaussian_noise(2.0), image, rng()).to_vector();
    double sum = 0, square_sum = 0;
    for (double v : noisy) {
        sum += v - 0.5;
        square_sum += (v - 0.5) * (v - 0.5);
    }
    const double n = static_cast<double>(noisy.size());
    EXPECT_NEAR(sum / n, 0.0, 0.1);                 // sd of the mean: 2 / sqrt(12288) = 0.018
    EXPECT_NEAR(std::sqrt(square_sum / n), 2.0, 0.1);  // sd of the estimate: about 0.013
    EXPECT_THROW((void)data::gaussian_noise(-1.0), InvalidArgument);
}

TEST(Transforms, BrightnessScalesContrastStretchesAboutTheMeanAndTheResultStaysInUnitRange) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor image = Tensor::uniform(Shape{1, 6, 6}, 0.2, 0.6, rng(), DType::Float64);
    const std::vector<double> x = image.to_vector();
    const double mean = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
    EXPECT_LT(testing::max_abs_difference(apply(data::brightness_contrast(0.0, 0.0), image, rng()), image), 1e-15);
    // The pixel farthest from the mean gives the contrast factor most precisely.
    std::size_t far = 0;
    for (std::size_t i = 0; i < x.size(); ++i) far = std::abs(x[i] - mean) > std::abs(x[far] - mean) ? i : far;
    for (int k = 0; k < 10; ++k) {
        // Brightness only: one factor f in [0.5, 1.5] for every pixel (no clamping: x <= 0.6).
        const std::vector<double> b = apply(data::brightness_contrast(0.5, 0.0), image, rng()).to_vector();
        const double f = b[0] / x[0];
        EXPECT_GE(f, 0.5);
        EXPECT_LE(f, 1.5);
        for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(b[i], std::min(1.0, x[i] * f), 1e-12);
        // Contrast only: m + (x - m) g with g in [0.5, 1.5].
        const std::vector<double> c = apply(data::brightness_contrast(0.0, 0.5), image, rng()).to_vector();
        const double g = (c[far] - mean) / (x[far] - mean);
        EXPECT_GE(g, 0.5 - 1e-9);
        EXPECT_LE(g, 1.5 + 1e-9);
        for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(c[i], mean + (x[i] - mean) * g, 1e-12);
    }
    // Strong changes are clamped to [0, 1].
    const Tensor bright = Tensor::uniform(Shape{2, 8, 8}, 0.0, 1.0, rng(), DType::Float32);
    for (int k = 0; k < 20; ++k) {
        for (double v : apply(data::brightness_contrast(1.0, 1.0), bright, rng()).to_vector()) {
            EXPECT_GE(v, 0.0);
            EXPECT_LE(v, 1.0);
        }
    }
    EXPECT_THROW((void)data::brightness_contrast(1.5, 0.0), InvalidArgument);
}

TEST(Transforms, ComposeAppliesInOrder) {
    const Tensor image = counting_image(1, 2, 2, DType::Float64);
    const Transform t = data::compose({data::scale_to_unit(4.0), data::normalize({0.5}, {0.5})});
    EXPECT_EQ(apply(t, image, 0).to_vector(), (std::vector<double>{-1.0, -0.5, 0.0, 0.5}));
    // The other order gives another result: the order is kept.
    const Transform reversed = data::compose({data::normalize({0.5}, {0.5}), data::scale_to_unit(4.0)});
    EXPECT_EQ(apply(reversed, image, 0).to_vector(), (std::vector<double>{-0.25, 0.25, 0.75, 1.25}));
    EXPECT_TRUE(testing::exactly_equal(apply(data::compose({}), image, 0), image));
    EXPECT_THROW((void)data::compose({Transform{}}), InvalidArgument);
}

TEST(Transforms, ImageTransformsRefuseWhatIsNotAFloatImage) {
    const Tensor flat = Tensor::zeros(Shape{4});
    const Tensor integers = Tensor::zeros(Shape{1, 2, 2}, DType::Int64);
    for (const auto& [name, transform] : random_transforms()) {
        SCOPED_TRACE(name);
        const std::string message = testing::message_of<InvalidArgument>([&] { (void)apply(transform, flat, 0); });
        EXPECT_NE(message.find("[C, H, W]"), std::string::npos) << message;
        EXPECT_THROW((void)apply(transform, integers, 0), InvalidArgument);
    }
}

}  // namespace
}  // namespace convkit
