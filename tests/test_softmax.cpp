// Softmax and log-softmax on the host: against PyTorch's numbers and an independent definition
// (no max subtraction, coordinates from strides), stability, -inf/NaN semantics, gradients by
// central differences, and the argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {
using namespace convkit::testing;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kGradTolerance = 1e-6;  // float64 central differences (eps 1e-6), as test_autograd

Tensor values64(const Shape& shape, std::initializer_list<double> values) {
    return Tensor::from_values(shape, values, DType::Float64);
}

void expect_values_near(const Tensor& t, const std::vector<double>& expected, double tolerance) {
    const std::vector<double> got = t.to_vector();
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        if (std::isinf(expected[i])) {
            EXPECT_EQ(got[i], expected[i]) << "element " << i;
        } else {
            EXPECT_NEAR(got[i], expected[i], tolerance) << "element " << i;
        }
    }
}

// softmax straight from the definition: the elements sharing all coordinates but `dim`'s, found
// through the row-major strides of the shape. Inputs must be small (no max is subtracted).
Tensor independent_softmax(const Tensor& x, int dim, bool log) {
    const Shape& s = x.shape();
    const int d = dim < 0 ? dim + s.rank() : dim;
    std::int64_t stride = 1;
    for (int i = s.rank() - 1; i > d; --i) stride *= s[i];
    const std::vector<double> v = x.to_vector();
    std::vector<double> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        const std::int64_t coordinate = (static_cast<std::int64_t>(i) / stride) % s[d];
        const std::int64_t first = static_cast<std::int64_t>(i) - coordinate * stride;
        double sum = 0;
        for (std::int64_t k = 0; k < s[d]; ++k) sum += std::exp(v[static_cast<std::size_t>(first + k * stride)]);
        out[i] = log ? v[i] - std::log(sum) : std::exp(v[i]) / sum;
    }
    return Tensor::from_vector(s, out);
}

TEST(Softmax, MatchesPyTorchOnASmallMatrix) {
    // x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]], dtype=torch.float64)
    const Tensor x = values64(Shape{2, 3}, {1.0, 2.0, 3.0, -1.0, 0.5, 4.0});
    // torch.softmax(x, 1), torch.log_softmax(x, 1), torch.softmax(x, 0), torch.log_softmax(x, 0)
    expect_values_near(softmax(x, 1),
                       {0.09003057317038045, 0.2447284710547976, 0.6652409557748218, 0.00649794331566194,
                        0.0291217615374784, 0.9643802951468596},
                       1e-15);
    expect_values_near(log_softmax(x, -1),
                       {-2.4076059644443806, -1.4076059644443804, -0.4076059644443804, -5.036269565124779,
                        -3.5362695651247793, -0.03626956512477912},
                       1e-15);
    expect_values_near(softmax(x, 0),
                       {0.8807970779778823, 0.8175744761936437, 0.2689414213699951, 0.11920292202211755,
                        0.18242552380635632, 0.7310585786300049},
                       1e-15);
    expect_values_near(log_softmax(x, -2),
                       {-0.1269280110429726, -0.20141327798275246, -1.3132616875182228, -2.1269280110429727,
                        -1.7014132779827524, -0.31326168751822286},
                       1e-15);
}

TEST(Softmax, HandComputedTwoClassCase) {
    // softmax([0, ln 3]) = [1/4, 3/4]
    const Tensor x = values64(Shape{2}, {0.0, std::log(3.0)});
    expect_values_near(softmax(x, 0), {0.25, 0.75}, 1e-16);
    expect_values_near(log_softmax(x, 0), {std::log(0.25), std::log(0.75)}, 1e-15);
}

TEST(Softmax, MatchesAnIndependentDefinitionOnEveryDimOfEveryRank) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<Shape> shapes = {Shape{7}, Shape{3, 5}, Shape{2, 3, 4}, Shape{2, 3, 4, 5}, Shape{2, 1, 3, 2, 3}};
    for (const Shape& shape : shapes) {
        const Tensor x = random_tensor(shape, rng);
        for (int dim = -shape.rank(); dim < shape.rank(); ++dim) {
            SCOPED_TRACE(shape.to_string() + " dim " + std::to_string(dim));
            for (bool log : {false, true}) {
                const Tensor expected = independent_softmax(x, dim, log);
                const Tensor y = log ? log_softmax(x, dim) : softmax(x, dim);
                // Absolute: a slice of one element has log_softmax 0, which the definition gives only
                // to rounding (x - log(exp(x))), so a relative error would divide by that rounding.
                // The values are of order 1 (inputs in [-1, 1]).
                EXPECT_LT(max_abs_difference(y, expected), 1e-14);
                const Tensor y32 = log ? log_softmax(to_float32(x), dim) : softmax(to_float32(x), dim);
                EXPECT_EQ(y32.dtype(), DType::Float32);
                EXPECT_LT(max_abs_difference(y32, expected), 1e-6);
            }
        }
    }
}

TEST(Softmax, SlicesSumToOne) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = Tensor::uniform(Shape{3, 4, 5}, -20, 20, rng(), DType::Float64);
    const std::vector<double> y = softmax(x, 1).to_vector();
    for (int n = 0; n < 3; ++n)
        for (int w = 0; w < 5; ++w) {
            double sum = 0;
            for (int c = 0; c < 4; ++c) sum += y[static_cast<std::size_t>((n * 4 + c) * 5 + w)];
            EXPECT_NEAR(sum, 1.0, 1e-15);
        }
}

TEST(Softmax, LargeLogitsDoNotOverflow) {
    // Without the max subtracted, exp(1000) overflows to inf and the result is NaN.
    for (DType dtype : {DType::Float64, DType::Float32}) {
        const Tensor x = Tensor::from_values(Shape{3}, {1000, 1001, 1002}, dtype);
        const Tensor shifted = values64(Shape{3}, {0, 1, 2});
        EXPECT_LT(relative_error(softmax(x, 0), softmax(shifted, 0)), 1e-6);
        EXPECT_LT(relative_error(log_softmax(x, 0), log_softmax(shifted, 0)), 1e-6);
        const Tensor small = Tensor::from_values(Shape{2}, {-1000, -1002}, dtype);
        EXPECT_LT(relative_error(softmax(small, 0), softmax(values64(Shape{2}, {0, -2}), 0)), 1e-6);
    }
}

TEST(Softmax, InfinitiesAndNaNFollowPyTorch) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    // torch.softmax / log_softmax of each row, dim 1 (PyTorch 1.13):
    //   [-inf, -inf, -inf] -> nan;  [0, -inf, 1] -> [0.2689, 0, 0.7311] / [-1.3133, -inf, -0.3133];
    //   [inf, 0, 1] -> nan;  [nan, 0, 1] -> nan;  [inf, inf, 0] -> nan
    const Tensor x = values64(Shape{5, 3}, {-kInf, -kInf, -kInf, 0, -kInf, 1, kInf, 0, 1, nan, 0, 1, kInf, kInf, 0});
    for (bool log : {false, true}) {
        const std::vector<double> y = (log ? log_softmax(x, 1) : softmax(x, 1)).to_vector();
        for (std::size_t i = 0; i < y.size(); ++i) {
            if (i / 3 == 1) continue;
            EXPECT_TRUE(std::isnan(y[i])) << "element " << i << " = " << y[i];
        }
    }
    const std::vector<double> finite_row = softmax(x, 1).to_vector();
    EXPECT_NEAR(finite_row[3], 0.2689414213699951, 1e-15);
    EXPECT_EQ(finite_row[4], 0.0);
    EXPECT_NEAR(finite_row[5], 0.7310585786300049, 1e-15);
    const Tensor log_row = log_softmax(values64(Shape{3}, {0, -kInf, 1}), 0);
    expect_values_near(log_row, {-1.3132616875182228, -kInf, -0.31326168751822286}, 1e-15);
    // A NaN in the middle of a row reaches every element of the row, wherever it sits.
    for (int position = 0; position < 4; ++position) {
        std::vector<double> v{0.5, -1, 2, 1};
        v[static_cast<std::size_t>(position)] = nan;
        for (double y : softmax(Tensor::from_vector(Shape{4}, v), 0).to_vector()) EXPECT_TRUE(std::isnan(y));
    }
}

TEST(Softmax, GradientAtMinusInfinityMatchesPyTorch) {
    // x = torch.tensor([[0., -inf, 1.]], dtype=torch.float64, requires_grad=True)
    // torch.softmax(x, 1).backward(torch.tensor([[1., 2., 3.]])) -> x.grad; likewise log_softmax
    for (bool log : {false, true}) {
        Tensor x = values64(Shape{1, 3}, {0, -kInf, 1}).set_requires_grad();
        const Tensor y = log ? log_softmax(x, 1) : softmax(x, 1);
        EXPECT_EQ(y.grad_fn_name(), log ? "log_softmax" : "softmax");
        y.backward(values64(Shape{1, 3}, {1, 2, 3}));
        if (log) {
            expect_values_near(x.grad(), {-0.6136485282199706, 2.0, -1.3863514717800294}, 1e-15);
        } else {
            expect_values_near(x.grad(), {-0.3932238664829638, 0.0, 0.39322386648296354}, 1e-15);
        }
    }
}

TEST(Softmax, AScalarIsARowOfOneElement) {
    // torch.softmax(torch.tensor(3.0), 0) = 1; torch.log_softmax(torch.tensor(3.0), -1) = 0
    const Tensor x = values64(Shape{}, {3.0});
    EXPECT_EQ(softmax(x, 0).item(0), 1.0);
    EXPECT_EQ(log_softmax(x, -1).item(0), 0.0);
    EXPECT_EQ(softmax(x, 0).shape(), Shape{});
}

TEST(Softmax, EmptyTensorsGiveEmptyResults) {
    EXPECT_EQ(softmax(Tensor::zeros(Shape{0, 3}, DType::Float64), 1).shape(), (Shape{0, 3}));
    EXPECT_EQ(log_softmax(Tensor::zeros(Shape{2, 0}, DType::Float64), 1).shape(), (Shape{2, 0}));
}

TEST(Softmax, GradientsMatchCentralDifferencesOnEveryDim) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<Shape> shapes = {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}, Shape{2, 3, 2, 3}};
    for (const Shape& shape : shapes) {
        const Tensor x = Tensor::uniform(shape, -3, 3, rng(), DType::Float64);
        for (int dim = -shape.rank(); dim < shape.rank(); ++dim) {
            SCOPED_TRACE(shape.to_string() + " dim " + std::to_string(dim));
            EXPECT_LT(gradcheck_error([dim](const std::vector<Tensor>& in) { return softmax(in[0], dim); }, {x}, rng()),
                      kGradTolerance);
            EXPECT_LT(
                gradcheck_error([dim](const std::vector<Tensor>& in) { return log_softmax(in[0], dim); }, {x}, rng()),
                kGradTolerance);
        }
    }
}

TEST(Softmax, BackwardFunctionsMatchTheirFormulas) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{3, 4}, rng);
    const Tensor dy = random_tensor(Shape{3, 4}, rng);
    const Tensor y = softmax(x, 1);
    const Tensor ly = log_softmax(x, 1);
    const std::vector<double> yv = y.to_vector();
    const std::vector<double> lyv = ly.to_vector();
    const std::vector<double> dyv = dy.to_vector();
    std::vector<double> expected_softmax(12);
    std::vector<double> expected_log(12);
    for (std::size_t r = 0; r < 3; ++r) {
        double dot_dy_y = 0;
        double sum_dy = 0;
        for (std::size_t c = 0; c < 4; ++c) {
            dot_dy_y += dyv[r * 4 + c] * yv[r * 4 + c];
            sum_dy += dyv[r * 4 + c];
        }
        for (std::size_t c = 0; c < 4; ++c) {
            const std::size_t i = r * 4 + c;
            expected_softmax[i] = yv[i] * (dyv[i] - dot_dy_y);
            expected_log[i] = dyv[i] - std::exp(lyv[i]) * sum_dy;
        }
    }
    EXPECT_LT(relative_error(softmax_backward(dy, y, 1), Tensor::from_vector(Shape{3, 4}, expected_softmax)),
              kFloat64Tolerance);
    EXPECT_LT(relative_error(log_softmax_backward(dy, ly, -1), Tensor::from_vector(Shape{3, 4}, expected_log)),
              kFloat64Tolerance);
}

template <typename F>
void expect_invalid_argument(F f, const std::string& fragment) {
    try {
        f();
        FAIL() << "expected InvalidArgument containing \"" << fragment << "\"";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}

TEST(Softmax, BadArgumentsAreReportedWithTheirValues) {
    const Tensor x = Tensor::zeros(Shape{2, 3});
    expect_invalid_argument([&] { (void)softmax(x, 2); },
                            "softmax: dim 2 is out of range for a tensor of shape [2, 3] (rank 2, so dim must be in "
                            "[-2, 1])");
    expect_invalid_argument([&] { (void)log_softmax(x, -3); }, "log_softmax: dim -3 is out of range");
    expect_invalid_argument([&] { (void)softmax(Tensor::zeros(Shape{}), 1); }, "softmax: dim 1 is out of range");
    expect_invalid_argument([&] { (void)softmax(Tensor::zeros(Shape{2}, DType::Int64), 0); },
                            "softmax: x must be float32 or float64, got int64");
    expect_invalid_argument([&] { (void)softmax(Tensor(), 0); }, "softmax: x is undefined");
    expect_invalid_argument([&] { (void)softmax_backward(Tensor::zeros(Shape{3, 2}), x, 1); },
                            "softmax_backward: grad_output has shape [3, 2] but the op's output has shape [2, 3]");
    expect_invalid_argument([&] { (void)log_softmax_backward(Tensor::zeros(Shape{2, 3}, DType::Float64), x, 1); },
                            "log_softmax_backward: grad_output is float64 but output is float32");
}

}  // namespace
}  // namespace convkit
