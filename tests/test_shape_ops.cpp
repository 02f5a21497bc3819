// Shape ops on the host (label host): flatten, concat, slice, split, nearest upsampling.
// Values are checked exactly on small integers against index formulas written here
// independently of ops/shape_geometry.h; every backward by float64 central differences.
#include <gtest/gtest.h>

#include <numeric>

#include "convkit/convkit.h"
#include "test_util.h"

namespace convkit {
namespace {
using namespace convkit::testing;

constexpr double kGradTolerance = 1e-6;  // float64 central differences (tests/test_util.h)

// 0, 1, 2, ... in row-major order: every element names its own position.
Tensor iota(const Shape& shape, DType dtype = DType::Float64) {
    std::vector<double> values(static_cast<std::size_t>(shape.numel()));
    std::iota(values.begin(), values.end(), 0.0);
    return Tensor::from_vector(shape, values).to(dtype);
}

// Expects `call` to throw InvalidArgument whose message contains `text`.
template <typename Call>
void expect_invalid(Call call, const std::string& text) {
    try {
        call();
        FAIL() << "expected InvalidArgument containing: " << text;
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
}

// Row-major offset of `index` in `shape`.
std::int64_t offset_of(const Shape& shape, const std::vector<std::int64_t>& index) {
    std::int64_t offset = 0;
    for (int d = 0; d < shape.rank(); ++d) offset = offset * shape[d] + index[static_cast<std::size_t>(d)];
    return offset;
}

// Calls f(index) for every multi-index of `shape` in row-major order.
template <typename F>
void for_each_index(const Shape& shape, F&& f) {
    std::vector<std::int64_t> index(static_cast<std::size_t>(shape.rank()), 0);
    for (std::int64_t flat = 0; flat < shape.numel(); ++flat) {
        f(index);
        for (int d = shape.rank() - 1; d >= 0; --d) {
            auto& i = index[static_cast<std::size_t>(d)];
            if (++i < shape[d]) break;
            i = 0;
        }
    }
}

// ---- flatten -----------------------------------------------------------------------------

TEST(Flatten, MergesTheGivenDimsAsPyTorchDoes) {
    const Tensor x = iota(Shape{2, 3, 4, 5});
    EXPECT_EQ(flatten(x).shape(), (Shape{2, 60}));
    EXPECT_EQ(flatten(x, 0).shape(), (Shape{120}));
    EXPECT_EQ(flatten(x, 1, 2).shape(), (Shape{2, 12, 5}));
    EXPECT_EQ(flatten(x, -3, -2).shape(), (Shape{2, 12, 5}));
    EXPECT_EQ(flatten(x, 2, 2).shape(), (Shape{2, 3, 4, 5}));
    EXPECT_EQ(flatten(x).to_vector(), x.to_vector());  // row-major order is kept
    // torch.flatten(torch.tensor(5.)) has shape [1]; dims -1 and 0 are valid for a scalar.
    EXPECT_EQ(flatten(Tensor::full(Shape{}, 5.0), 0).shape(), (Shape{1}));
    EXPECT_EQ(flatten(Tensor::full(Shape{}, 5.0), -1, 0).shape(), (Shape{1}));
}

TEST(Flatten, RejectsDimsOutOfRangeOrOutOfOrder) {
    const Tensor x = Tensor::zeros(Shape{2, 3, 4});
    expect_invalid([&] { (void)flatten(x, 2, 1); }, "flatten: start_dim 2 comes after end_dim 1");
    expect_invalid([&] { (void)flatten(x, 3); }, "flatten: start_dim 3 is out of range for a tensor of rank 3");
    expect_invalid([&] { (void)flatten(x, 0, -4); }, "flatten: end_dim -4 is out of range");
    // PyTorch: "Dimension out of range (expected to be in range of [-1, 0], but got 1)".
    expect_invalid([&] { (void)flatten(Tensor::zeros(Shape{})); }, "flatten: start_dim 1 is out of range");
    expect_invalid([&] { (void)flatten(Tensor()); }, "flatten: input is undefined");
}

TEST(Flatten, IsDifferentiable) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{2, 3, 4}, rng);
    EXPECT_LT(gradcheck_error([](const std::vector<Tensor>& in) { return flatten(in[0], 1) * flatten(in[0], 1); }, {x},
                              rng()),
              kGradTolerance);
}

// ---- concat ------------------------------------------------------------------------------

TEST(Concat, JoinsAlongADimExactly) {
    const Tensor a = Tensor::from_values(Shape{2, 2}, {1, 2, 3, 4}, DType::Float64);
    const Tensor b = Tensor::from_values(Shape{2, 1}, {5, 6}, DType::Float64);
    EXPECT_EQ(concat({a, b}, 1).to_vector(), (std::vector<double>{1, 2, 5, 3, 4, 6}));
    EXPECT_EQ(concat({a, b}, -1).shape(), (Shape{2, 3}));
    const Tensor c = Tensor::from_values(Shape{1, 2}, {7, 8}, DType::Float64);
    EXPECT_EQ(concat({a, c, a}, 0).to_vector(), (std::vector<double>{1, 2, 3, 4, 7, 8, 1, 2, 3, 4}));
    EXPECT_EQ(concat({a}, 0).to_vector(), a.to_vector());
    // An empty piece contributes nothing.
    EXPECT_EQ(concat({a, Tensor::zeros(Shape{2, 0}, DType::Float64), b}, 1).to_vector(),
              (std::vector<double>{1, 2, 5, 3, 4, 6}));
}

// A U-Net skip connection: decoder features [N, C1, H, W] and encoder features [N, C2, H, W]
// joined along channels, checked element by element against the definition.
TEST(Concat, JoinsFeatureMapsAlongChannelsInEveryDtype) {
    CONVKIT_SEEDED_RNG(rng);
    for (DType dtype : {DType::Float64, DType::Float32, DType::Int64}) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor a = small_integer_tensor(Shape{2, 3, 4, 5}, rng()).to(dtype);
        const Tensor b = small_integer_tensor(Shape{2, 2, 4, 5}, rng()).to(dtype);
        const Tensor c = small_integer_tensor(Shape{2, 1, 4, 5}, rng()).to(dtype);
        const Tensor y = concat({a, b, c}, 1);
        ASSERT_EQ(y.shape(), (Shape{2, 6, 4, 5}));
        ASSERT_EQ(y.dtype(), dtype);
        for_each_index(y.shape(), [&](const std::vector<std::int64_t>& i) {
            std::vector<std::int64_t> source = i;
            const Tensor* from = &a;
            if (i[1] >= 5) {
                from = &c;
                source[1] -= 5;
            } else if (i[1] >= 3) {
                from = &b;
                source[1] -= 3;
            }
            ASSERT_EQ(y.item(offset_of(y.shape(), i)), from->item(offset_of(from->shape(), source)));
        });
    }
}

TEST(Concat, RejectsMismatchedInputs) {
    const Tensor a = Tensor::zeros(Shape{2, 3});
    expect_invalid([&] { (void)concat({}, 0); }, "concat: needs at least one tensor, got an empty list");
    expect_invalid(
        [&] {
            (void)concat({a, Tensor::zeros(Shape{3, 4})}, 1);
        },
        "concat: tensors[1] has shape [3, 4] but tensors[0] has shape [2, 3]: every dim but dim 1 must "
        "agree (they differ in dim 0)");
    expect_invalid(
        [&] {
            (void)concat({a, Tensor::zeros(Shape{2, 3, 1})}, 0);
        },
        "concat: tensors[1] has shape [2, 3, 1] but tensors[0] has shape [2, 3]: ranks differ");
    expect_invalid(
        [&] {
            (void)concat({a, Tensor::zeros(Shape{2, 3}, DType::Float64)}, 0);
        },
        "concat: tensors[1] is float64 but tensors[0] is float32");
    expect_invalid([&] { (void)concat({a, Tensor()}, 0); }, "concat: tensors[1] is undefined");
    expect_invalid([&] { (void)concat({a, a}, 2); }, "concat: dim 2 is out of range for a tensor of rank 2");
    expect_invalid([&] { (void)concat({Tensor::zeros(Shape{})}, 0); }, "concat: tensors[0] is a scalar");
}

TEST(Concat, GradientsAreTheSlicesOfTheOutputGradient) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor a = random_tensor(Shape{2, 3, 4}, rng);
    const Tensor b = random_tensor(Shape{2, 1, 4}, rng);
    const Tensor c = random_tensor(Shape{2, 2, 4}, rng);
    for (int dim : {1, -2}) {
        EXPECT_LT(gradcheck_error(
                      [dim](const std::vector<Tensor>& in) {
                          return concat({in[0], in[1], in[2]}, dim);
                      },
                      {a, b, c}, rng()),
                  kGradTolerance);
    }
    // One input that needs no gradient, and one used twice.
    EXPECT_LT(gradcheck_error(
                  [](const std::vector<Tensor>& in) {
                      return concat({in[0], in[1], in[0]}, 0);
                  },
                  {random_tensor(Shape{2, 5}, rng), random_tensor(Shape{3, 5}, rng)}, rng(), {1}),
              kGradTolerance);
    // Exactly: d(sum of w * concat)/d(each input) is the matching block of w.
    Tensor x = Tensor::from_values(Shape{1, 2}, {0, 0}, DType::Float64).set_requires_grad();
    Tensor z = Tensor::from_values(Shape{1, 1}, {0}, DType::Float64).set_requires_grad();
    concat({x, z}, 1).backward(Tensor::from_values(Shape{1, 3}, {7, 8, 9}, DType::Float64));
    EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{7, 8}));
    EXPECT_EQ(z.grad().to_vector(), (std::vector<double>{9}));
}

// ---- slice and split ---------------------------------------------------------------------

TEST(Slice, CopiesAWindowAlongADim) {
    const Tensor x = iota(Shape{2, 3, 4});
    const Tensor y = slice(x, 2, 1, 3);
    ASSERT_EQ(y.shape(), (Shape{2, 3, 2}));
    for_each_index(y.shape(), [&](const std::vector<std::int64_t>& i) {
        ASSERT_EQ(y.item(offset_of(y.shape(), i)), static_cast<double>((i[0] * 3 + i[1]) * 4 + i[2] + 1));
    });
    EXPECT_EQ(slice(x, 1, 1, 2).to_vector(), (std::vector<double>{4, 5, 6, 7, 16, 17, 18, 19}));
    EXPECT_EQ(slice(x, 0, 1, 2).to_vector(), slice(x, 0, -1, 2).to_vector());  // negative counts from the end
    EXPECT_EQ(slice(x, -1, -3, -1).to_vector(), y.to_vector());
    EXPECT_EQ(slice(x, 1, 0, 3).to_vector(), x.to_vector());
    EXPECT_EQ(slice(x, 1, 2, 2).shape(), (Shape{2, 0, 4}));
    EXPECT_EQ(slice(iota(Shape{5}, DType::Int64), 0, 1, 4).to_vector(), (std::vector<double>{1, 2, 3}));
}

TEST(Slice, RejectsWindowsOutsideTheDim) {
    const Tensor x = Tensor::zeros(Shape{2, 3, 4});
    expect_invalid([&] { (void)slice(x, 2, 1, 5); },
                   "slice: start 1 and end 5 do not give a range within [0, 4] with start <= end along dim 2 of shape "
                   "[2, 3, 4]");
    expect_invalid([&] { (void)slice(x, 1, 2, 1); }, "slice: start 2 and end 1 do not give a range");
    expect_invalid([&] { (void)slice(x, 0, -3, 1); }, "slice: start -3 and end 1");
    expect_invalid([&] { (void)slice(x, 3, 0, 1); }, "slice: dim 3 is out of range for a tensor of rank 3");
    expect_invalid([&] { (void)slice(Tensor::zeros(Shape{}), 0, 0, 1); }, "slice: input is a scalar");
}

TEST(Slice, GradientIsTheOutputGradientPlacedIntoZeros) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{2, 5, 3}, rng);
    EXPECT_LT(gradcheck_error([](const std::vector<Tensor>& in) { return slice(in[0], 1, 1, 4); }, {x}, rng()),
              kGradTolerance);
    EXPECT_LT(gradcheck_error([](const std::vector<Tensor>& in) { return slice(in[0], -1, 2, 3); }, {x}, rng()),
              kGradTolerance);
    Tensor leaf = Tensor::zeros(Shape{2, 3}, DType::Float64).set_requires_grad();
    slice(leaf, 1, 1, 2).backward(Tensor::from_values(Shape{2, 1}, {4, 5}, DType::Float64));
    EXPECT_EQ(leaf.grad().to_vector(), (std::vector<double>{0, 4, 0, 0, 5, 0}));
}

TEST(Split, GivesConsecutiveSlicesThatConcatBackToTheInput) {
    const Tensor x = iota(Shape{2, 6, 3});
    const std::vector<Tensor> parts = split(x, 1, {1, 0, 3, 2});
    ASSERT_EQ(parts.size(), 4u);
    EXPECT_EQ(parts[0].to_vector(), slice(x, 1, 0, 1).to_vector());
    EXPECT_EQ(parts[1].shape(), (Shape{2, 0, 3}));
    EXPECT_EQ(parts[2].to_vector(), slice(x, 1, 1, 4).to_vector());
    EXPECT_EQ(parts[3].to_vector(), slice(x, 1, 4, 6).to_vector());
    EXPECT_EQ(concat(parts, 1).to_vector(), x.to_vector());
    expect_invalid(
        [&] {
            (void)split(x, 1, {2, 3});
        },
        "split: sizes [2, 3] add up to 5 but dim 1 of shape [2, 6, 3] has size 6");
    expect_invalid([&] { (void)split(x, 1, {7, -1}); }, "split: sizes must not be negative, got [7, -1]");
}

TEST(Split, IsDifferentiableAndUnusedPartsGetZeroGradient) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{3, 7}, rng);
    EXPECT_LT(gradcheck_error(
                  [](const std::vector<Tensor>& in) {
                      const std::vector<Tensor> p = split(in[0], -1, {2, 4, 1});
                      return concat({p[2] * p[2], p[0]}, 1);  // p[1] unused
                  },
                  {x}, rng()),
              kGradTolerance);
}

// ---- nearest upsampling ------------------------------------------------------------------

TEST(UpsampleNearest, RepeatsEveryPositionByTheScaleFactors) {
    const Tensor x1 = Tensor::from_values(Shape{1, 1, 3}, {1, 2, 3}, DType::Float64);
    EXPECT_EQ(upsample_nearest(x1, {2}).to_vector(), (std::vector<double>{1, 1, 2, 2, 3, 3}));
    // F.interpolate(x, scale_factor=(2, 3), mode='nearest') on [[1, 2], [3, 4]] (PyTorch 1.13).
    const Tensor x2 = Tensor::from_values(Shape{1, 1, 2, 2}, {1, 2, 3, 4}, DType::Float32);
    const Tensor y2 = upsample_nearest(x2, {2, 3});
    EXPECT_EQ(y2.shape(), (Shape{1, 1, 4, 6}));
    EXPECT_EQ(y2.dtype(), DType::Float32);
    EXPECT_EQ(y2.to_vector(), (std::vector<double>{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2,  //
                                                   3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4}));
    EXPECT_EQ(upsample_nearest(x2, {2}).shape(), (Shape{1, 1, 4, 4}));  // one factor for all dims
}

TEST(UpsampleNearest, EveryOutputReadsItsSourceIn1d2d3d) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<std::pair<Shape, std::vector<std::int64_t>>> problems = {
        {Shape{2, 3, 5}, {3}}, {Shape{2, 2, 3, 4}, {2, 1}}, {Shape{1, 3, 2, 3, 2}, {2, 3, 1}}, {Shape{0, 2, 3}, {2}}};
    for (const auto& [shape, factors] : problems) {
        SCOPED_TRACE(shape.to_string());
        const Tensor x = small_integer_tensor(shape, rng());
        const Tensor y = upsample_nearest(x, factors);
        for_each_index(y.shape(), [&](const std::vector<std::int64_t>& i) {
            std::vector<std::int64_t> source = i;
            for (std::size_t s = 0; s < factors.size(); ++s) source[2 + s] /= factors[s];
            ASSERT_EQ(y.item(offset_of(y.shape(), i)), x.item(offset_of(shape, source)));
        });
    }
}

TEST(UpsampleNearest, ToSizeUsesPyTorchsFloorRule) {
    // F.interpolate(..., size=..., mode='nearest') values from PyTorch 1.13.
    const Tensor x3 = Tensor::from_values(Shape{1, 1, 3}, {1, 2, 3}, DType::Float64);
    EXPECT_EQ(upsample_nearest_to_size(x3, {7}).to_vector(), (std::vector<double>{1, 1, 1, 2, 2, 3, 3}));
    const Tensor x5 = Tensor::from_values(Shape{1, 1, 5}, {1, 2, 3, 4, 5}, DType::Float64);
    EXPECT_EQ(upsample_nearest_to_size(x5, {2}).to_vector(), (std::vector<double>{1, 3}));
    const Tensor y = upsample_nearest_to_size(iota(Shape{1, 1, 3, 4}), {5, 3});
    EXPECT_EQ(y.to_vector(), (std::vector<double>{0, 1, 2, 0, 1, 2, 4, 5, 6, 4, 5, 6, 8, 9, 10}));
    // A size that is an integer multiple is the scale-factor op.
    const Tensor z = iota(Shape{2, 1, 2, 3, 2});
    EXPECT_EQ(upsample_nearest_to_size(z, {4, 3, 6}).to_vector(), upsample_nearest(z, {2, 1, 3}).to_vector());
}

TEST(UpsampleNearest, BackwardSumsEachOutputGradientIntoItsSource) {
    // With dy = 1 every input receives the number of outputs that read it.
    auto counts = [](const Tensor& x, const std::function<Tensor(const Tensor&)>& up) {
        Tensor leaf = x.detach().clone().set_requires_grad();
        const Tensor y = up(leaf);
        y.backward(Tensor::full(y.shape(), 1.0, DType::Float64));
        return leaf.grad().to_vector();
    };
    const Tensor x3 = Tensor::zeros(Shape{1, 1, 3}, DType::Float64);
    EXPECT_EQ(counts(x3, [](const Tensor& t) { return upsample_nearest_to_size(t, {7}); }),
              (std::vector<double>{3, 2, 2}));
    EXPECT_EQ(counts(Tensor::zeros(Shape{1, 1, 5}, DType::Float64),
                     [](const Tensor& t) { return upsample_nearest_to_size(t, {2}); }),
              (std::vector<double>{1, 0, 1, 0, 0}));  // skipped inputs get nothing
    EXPECT_EQ(counts(Tensor::zeros(Shape{1, 1, 2, 2}, DType::Float64),
                     [](const Tensor& t) {
                         return upsample_nearest(t, {2, 3});
                     }),
              (std::vector<double>{6, 6, 6, 6}));
}

TEST(UpsampleNearest, IsDifferentiableIn1d2d3d) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<std::pair<Shape, std::vector<std::int64_t>>> factor_problems = {
        {Shape{2, 2, 4}, {3}}, {Shape{1, 3, 3, 2}, {2, 3}}, {Shape{1, 2, 2, 2, 3}, {2, 1, 2}}};
    for (const auto& [shape, factors] : factor_problems) {
        SCOPED_TRACE(shape.to_string());
        EXPECT_LT(gradcheck_error([f = factors](const std::vector<Tensor>& in) { return upsample_nearest(in[0], f); },
                                  {random_tensor(shape, rng)}, rng()),
                  kGradTolerance);
    }
    const std::vector<std::pair<Shape, std::vector<std::int64_t>>> size_problems = {
        {Shape{2, 2, 5}, {7}}, {Shape{1, 2, 5, 3}, {2, 8}}, {Shape{1, 1, 3, 4, 2}, {5, 3, 3}}};
    for (const auto& [shape, sizes] : size_problems) {
        SCOPED_TRACE(shape.to_string());
        EXPECT_LT(
            gradcheck_error([s = sizes](const std::vector<Tensor>& in) { return upsample_nearest_to_size(in[0], s); },
                            {random_tensor(shape, rng)}, rng()),
            kGradTolerance);
    }
}

TEST(UpsampleNearest, RejectsBadArguments) {
    const Tensor x = Tensor::zeros(Shape{1, 2, 3, 4});
    expect_invalid(
        [&] {
            (void)upsample_nearest(Tensor::zeros(Shape{2, 3}), {2});
        },
        "upsample_nearest: input must be [N, C, spatial...] with 1 to 3 spatial dims, got shape [2, 3]");
    expect_invalid(
        [&] {
            (void)upsample_nearest(x, {2, 0});
        },
        "upsample_nearest2d: scale_factors must be integers >= 1, got [2, 0]");
    expect_invalid(
        [&] {
            (void)upsample_nearest(x, {2, 2, 2});
        },
        "upsample_nearest2d: scale_factors must have 1 or 2 values (one per spatial dim), got 3");
    expect_invalid(
        [&] {
            (void)upsample_nearest_to_size(x, {0, 3});
        },
        "upsample_nearest2d: output_size must be >= 1 in every dim, got [0, 3]");
    expect_invalid(
        [&] {
            (void)upsample_nearest_to_size(Tensor::zeros(Shape{1, 1, 0}), {3});
        },
        "upsample_nearest1d: cannot resample an empty spatial dim");
    expect_invalid(
        [&] {
            (void)upsample_nearest(Tensor::zeros(Shape{1, 1, 3}, DType::Int64), {2});
        },
        "upsample_nearest1d: input must be float32 or float64, got int64");
}

}  // namespace
}  // namespace convkit
