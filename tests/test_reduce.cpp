// Reductions on the host: sum, mean, max and argmax against an independent definition (a walk
// over every multi-index), exact on small integers; PyTorch's shapes (keepdim, negative dims,
// rank 0, empty tensors), ties and NaN; float64 central-difference gradients; errors.
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

constexpr double kGradTolerance = 1e-6;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <typename F>
std::string error_of(F f) {
    try {
        f();
    } catch (const InvalidArgument& e) {
        return e.what();
    }
    return "no InvalidArgument";
}

// The sums of x over the dims marked in `reduced`, in the keepdim shape: every element of x
// adds into the output element whose multi-index is x's with the reduced coordinates zeroed.
Tensor sum_by_definition(const Tensor& x, const std::vector<bool>& reduced) {
    std::vector<std::int64_t> out_dims;
    for (int d = 0; d < x.rank(); ++d) out_dims.push_back(reduced[static_cast<std::size_t>(d)] ? 1 : x.shape()[d]);
    const Shape out_shape(out_dims);
    std::vector<double> out(static_cast<std::size_t>(out_shape.numel()), 0.0);
    const std::vector<double> in = x.to_vector();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
        std::int64_t rest = i;
        std::int64_t target = 0;
        std::int64_t stride = 1;
        for (int d = x.rank() - 1; d >= 0; --d) {
            const std::int64_t coordinate = rest % x.shape()[d];
            rest /= x.shape()[d];
            if (!reduced[static_cast<std::size_t>(d)]) target += coordinate * stride;
            stride *= out_dims[static_cast<std::size_t>(d)];
        }
        out[static_cast<std::size_t>(target)] += in[static_cast<std::size_t>(i)];
    }
    return Tensor::from_vector(out_shape, out);
}

std::vector<bool> marks(int rank, const std::vector<int>& dims) {
    std::vector<bool> reduced(static_cast<std::size_t>(rank), dims.empty());
    for (int d : dims) reduced[static_cast<std::size_t>(d < 0 ? d + rank : d)] = true;
    return reduced;
}

struct DimsCase {
    Shape shape;
    std::vector<int> dims;
};

std::vector<DimsCase> dims_cases() {
    return {{Shape{2, 3, 4}, {0}},    {Shape{2, 3, 4}, {1}},          {Shape{2, 3, 4}, {-1}},
            {Shape{2, 3, 4}, {0, 2}}, {Shape{2, 3, 4}, {2, 0}},       {Shape{2, 3, 4}, {0, 1, 2}},
            {Shape{2, 3, 4}, {}},     {Shape{3, 1, 5, 2, 2}, {1, 3}}, {Shape{7}, {0}},
            {Shape{4, 300}, {1}},     {Shape{300, 3}, {0}},           {Shape{2, 5, 3, 2}, {-3, -1}}};
}

std::string dims_text_of(const DimsCase& c) {
    std::string text = c.shape.to_string() + " dims {";
    for (int d : c.dims) text += std::to_string(d) + ",";
    return text + "}";
}

TEST(Reduce, SumsAreExactOnSmallIntegersForEveryDimSetAndKeepdim) {
    CONVKIT_SEEDED_RNG(rng);
    for (const DimsCase& c : dims_cases()) {
        SCOPED_TRACE(dims_text_of(c));
        const Tensor x = small_integer_tensor(c.shape, rng());
        const Tensor expected_kept = sum_by_definition(x, marks(c.shape.rank(), c.dims));
        const Tensor kept = sum(x, c.dims, true);
        EXPECT_EQ(kept.shape(), expected_kept.shape());
        EXPECT_TRUE(exactly_equal(kept, expected_kept));
        const Tensor dropped = sum(x, c.dims);
        std::vector<std::int64_t> dropped_dims;
        const std::vector<bool> reduced = marks(c.shape.rank(), c.dims);
        for (int d = 0; d < c.shape.rank(); ++d) {
            if (!reduced[static_cast<std::size_t>(d)]) dropped_dims.push_back(c.shape[d]);
        }
        EXPECT_EQ(dropped.shape(), Shape(dropped_dims));
        EXPECT_EQ(dropped.to_vector(), expected_kept.to_vector());
        const Tensor x32 = to_float32(x);
        EXPECT_TRUE(exactly_equal(sum(x32, c.dims, true), expected_kept)) << "float32";
    }
}

TEST(Reduce, MeansAreSumsOverTheCountOfReducedElements) {
    CONVKIT_SEEDED_RNG(rng);
    for (const DimsCase& c : dims_cases()) {
        SCOPED_TRACE(dims_text_of(c));
        const Tensor x = random_tensor(c.shape, rng);
        const std::vector<bool> reduced = marks(c.shape.rank(), c.dims);
        const Tensor kept = sum_by_definition(x, reduced);
        const double terms = static_cast<double>(x.numel() / kept.numel());
        const auto divided = [&](const Tensor& sums) {
            std::vector<double> v = sums.to_vector();
            for (double& e : v) e /= terms;
            return Tensor::from_vector(sums.shape(), v);
        };
        const Tensor expected = divided(kept);
        EXPECT_LT(relative_error(mean(x, c.dims, true), expected), kFloat64Tolerance);
        // float32 per element against the mean of the terms' magnitudes: random terms whose mean
        // lands near zero leave no relative accuracy to judge (seed 225 did: 1.05e-5 relative).
        EXPECT_LT(
            summation_error(mean(to_float32(x), c.dims, true), expected, divided(sum_by_definition(abs(x), reduced))),
            kHostBlasFloat32SummationTolerance);
    }
}

TEST(Reduce, WholeTensorSumAndMeanAreScalars) {
    const Tensor x = Tensor::from_values(Shape{2, 3}, {1, 2, 3, 4, 5, 6}, DType::Float64);
    const Tensor s = sum(x);
    EXPECT_EQ(s.rank(), 0);
    EXPECT_EQ(s.item(0), 21);
    EXPECT_EQ(mean(x).rank(), 0);
    EXPECT_EQ(mean(x).item(0), 3.5);
    EXPECT_EQ(sum(x, {}, true).shape(), (Shape{1, 1}));  // an empty list reduces every dim
    // Rank 0: dims 0 and -1 name the one element, as in PyTorch.
    const Tensor scalar = Tensor::full(Shape{}, 4.0, DType::Float64);
    EXPECT_EQ(sum(scalar).item(0), 4);
    EXPECT_EQ(sum(scalar, {0}).rank(), 0);
    EXPECT_EQ(mean(scalar, {-1}, true).rank(), 0);
    EXPECT_EQ(max(scalar, 0).item(0), 4);
    EXPECT_EQ(argmax(scalar, -1).item(0), 0);
}

TEST(Reduce, Float32SumsAccumulateInDouble) {
    // A million values in [0, 1): a float32 running sum would be off by about 1e-4 relative.
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = Tensor::uniform(Shape{1000, 1000}, 0, 1, rng(), DType::Float32);
    const Tensor exact = sum(x.to(DType::Float64));
    EXPECT_LT(relative_error(sum(x).to(DType::Float64), exact), kFloat32VsFloat64Tolerance);
    EXPECT_LT(relative_error(sum(x, {0, 1}).to(DType::Float64), exact), kFloat32VsFloat64Tolerance);
}

TEST(Reduce, EmptyTensorsSumToZeroAndAverageToNaN) {
    const Tensor empty = Tensor::zeros(Shape{3, 0}, DType::Float64);
    EXPECT_EQ(sum(empty).item(0), 0);
    EXPECT_TRUE(std::isnan(mean(empty).item(0)));
    EXPECT_EQ(sum(empty, {1}).to_vector(), (std::vector<double>{0, 0, 0}));
    const Tensor means = mean(empty, {1});
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isnan(means.item(i)));
    EXPECT_EQ(sum(empty, {0}).shape(), (Shape{0}));
    EXPECT_EQ(max(empty, 0).shape(), (Shape{0}));  // reducing a non-empty dim of an empty tensor
    EXPECT_NE(error_of([&] { (void)max(empty); }).find("max: the input has no elements (shape [3, 0])"),
              std::string::npos);
    EXPECT_NE(error_of([&] { (void)max(empty, 1); }).find("max: dim 1 of the input (shape [3, 0]) is empty"),
              std::string::npos);
    EXPECT_NE(error_of([&] { (void)argmax(empty, -1); }).find("argmax: dim -1 of the input"), std::string::npos);
}

TEST(Reduce, BadDimsAreRejectedWithTheirValues) {
    const Tensor x = Tensor::zeros(Shape{2, 3, 4});
    EXPECT_NE(error_of([&] {
                  (void)sum(x, {3});
              }).find("sum: dim 3 is out of range for a tensor of shape [2, 3, 4] (expected a dim in [-3, 2])"),
              std::string::npos);
    EXPECT_NE(error_of([&] { (void)mean(x, {-4}); }).find("mean: dim -4 is out of range"), std::string::npos);
    EXPECT_NE(error_of([&] { (void)sum(x, {1, -2}); }).find("sum: dim 1 appears more than once"), std::string::npos);
    EXPECT_NE(error_of([&] { (void)max(x, 5); }).find("max: dim 5 is out of range"), std::string::npos);
    EXPECT_NE(error_of([&] { (void)argmax(x, -4, true); }).find("argmax: dim -4 is out of range"), std::string::npos);
    EXPECT_NE(error_of([] { (void)max(Tensor::zeros(Shape{}), 1); }).find("expected a dim in [-1, 0]"),
              std::string::npos);
    EXPECT_NE(error_of([] {
                  (void)sum(Tensor::zeros(Shape{2}, DType::Int64));
              }).find("sum: input must be float32 or float64, got int64"),
              std::string::npos);
}

// ---- max and argmax ---------------------------------------------------------------------------

// Values and first indices of the maximum along `dim` of a [a, b, c] tensor, by a direct loop.
struct MaxByDefinition {
    std::vector<double> values;
    std::vector<double> indices;
};
MaxByDefinition max_by_definition(const Tensor& x, int dim) {
    MaxByDefinition result;
    const std::int64_t a = x.size(0), b = x.size(1), c = x.size(2);
    const std::int64_t extent[3] = {a, b, c};
    const std::vector<double> v = x.to_vector();
    auto at = [&](std::int64_t i, std::int64_t j, std::int64_t k) {
        return v[static_cast<std::size_t>((i * b + j) * c + k)];
    };
    for (std::int64_t i = 0; i < (dim == 0 ? 1 : a); ++i) {
        for (std::int64_t j = 0; j < (dim == 1 ? 1 : b); ++j) {
            for (std::int64_t k = 0; k < (dim == 2 ? 1 : c); ++k) {
                double best = -std::numeric_limits<double>::infinity();
                std::int64_t best_at = 0;
                for (std::int64_t r = 0; r < extent[dim]; ++r) {
                    const double e = at(dim == 0 ? r : i, dim == 1 ? r : j, dim == 2 ? r : k);
                    if (e > best) {
                        best = e;
                        best_at = r;
                    }
                }
                result.values.push_back(best);
                result.indices.push_back(static_cast<double>(best_at));
            }
        }
    }
    return result;
}

TEST(Reduce, MaxAndArgmaxAlongEachDimMatchADirectLoop) {
    CONVKIT_SEEDED_RNG(rng);
    // Small integers make ties common, so the first-index rule is exercised.
    const Tensor x = small_integer_tensor(Shape{4, 5, 6}, rng(), 2);
    for (int dim = 0; dim < 3; ++dim) {
        SCOPED_TRACE(dim);
        const MaxByDefinition expected = max_by_definition(x, dim);
        for (DType dtype : {DType::Float64, DType::Float32}) {
            const Tensor xd = x.to(dtype);
            EXPECT_EQ(max(xd, dim).to_vector(), expected.values);
            const Tensor indices = argmax(xd, dim);
            EXPECT_EQ(indices.dtype(), DType::Int64);
            EXPECT_EQ(indices.to_vector(), expected.indices);
            EXPECT_EQ(argmax(xd, dim - 3).to_vector(), expected.indices);
        }
        Shape kept = x.shape();
        kept[dim] = 1;
        EXPECT_EQ(max(x, dim, true).shape(), kept);
        EXPECT_EQ(argmax(x, dim, true).shape(), kept);
        EXPECT_EQ(max(x, dim).rank(), 2);
    }
}

TEST(Reduce, TiesGoToTheFirstMaximumAndNaNIsTheMaximum) {
    const Tensor x = Tensor::from_values(
        Shape{3, 4},
        {1, 3, 3, 2,  //
         5, kNaN, 7, kNaN, -std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
         -std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()},
        DType::Float64);
    EXPECT_EQ(argmax(x, 1).to_vector(), (std::vector<double>{1, 1, 0}));
    const Tensor values = max(x, 1);
    EXPECT_EQ(values.item(0), 3);
    EXPECT_TRUE(std::isnan(values.item(1)));
    EXPECT_EQ(values.item(2), -std::numeric_limits<double>::infinity());
    EXPECT_TRUE(std::isnan(max(x).item(0)));
    EXPECT_EQ(max(Tensor::from_values(Shape{2, 2}, {4, -1, 4, 2})).item(0), 4);

    // The gradient goes to the first maximum only.
    Tensor leaf = Tensor::from_values(Shape{2, 4}, {1, 3, 3, 2, 9, 0, 9, 9}, DType::Float64).set_requires_grad();
    max(leaf, 1).backward(Tensor::from_values(Shape{2}, {10, 20}, DType::Float64));
    EXPECT_EQ(leaf.grad().to_vector(), (std::vector<double>{0, 10, 0, 0, 20, 0, 0, 0}));
    leaf.clear_grad();
    max(leaf).backward(Tensor::full(Shape{}, 5.0, DType::Float64));
    EXPECT_EQ(leaf.grad().to_vector(), (std::vector<double>{0, 0, 0, 0, 5, 0, 0, 0}));
}

TEST(Reduce, ArgmaxIsNotDifferentiable) {
    Tensor x = Tensor::zeros(Shape{2, 3}, DType::Float64).set_requires_grad();
    EXPECT_FALSE(argmax(x, 1).requires_grad());
    EXPECT_TRUE(max(x, 1).requires_grad());
    EXPECT_EQ(max(x, 1).grad_fn_name(), "max");
    EXPECT_EQ(sum(x, {0}).grad_fn_name(), "sum");
}

// ---- gradients --------------------------------------------------------------------------------

// Distinct values at least 0.1 apart in random order: no tie within a finite-difference step.
Tensor distinct_values(const Shape& shape, std::mt19937_64& rng) {
    std::vector<double> v(static_cast<std::size_t>(shape.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * static_cast<double>(i) - 1;
    std::shuffle(v.begin(), v.end(), rng);
    return Tensor::from_vector(shape, v);
}

TEST(Reduce, GradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    for (const DimsCase& c : dims_cases()) {
        if (c.shape.numel() > 400) continue;  // central differences cost two evaluations per element
        SCOPED_TRACE(dims_text_of(c));
        const Tensor x = random_tensor(c.shape, rng);
        for (bool keepdim : {false, true}) {
            const std::vector<int> dims = c.dims;
            EXPECT_LT(
                gradcheck_error([&](const std::vector<Tensor>& in) { return sum(in[0], dims, keepdim); }, {x}, rng()),
                kGradTolerance);
            EXPECT_LT(
                gradcheck_error([&](const std::vector<Tensor>& in) { return mean(in[0], dims, keepdim); }, {x}, rng()),
                kGradTolerance);
        }
    }
    const Tensor x = random_tensor(Shape{3, 4, 5}, rng);
    EXPECT_LT(gradcheck_error([](const std::vector<Tensor>& in) { return sum(in[0]); }, {x}, rng()), kGradTolerance);
    EXPECT_LT(gradcheck_error([](const std::vector<Tensor>& in) { return mean(in[0]); }, {x}, rng()), kGradTolerance);
    // A reduction inside a larger expression: the gradient broadcasts back through it.
    EXPECT_LT(gradcheck_error([](const std::vector<Tensor>& in) { return in[0] * mean(in[0], {1}, true); }, {x}, rng()),
              kGradTolerance);
}

TEST(Reduce, MaxGradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = distinct_values(Shape{3, 4, 5}, rng);
    for (int dim : {0, 1, 2, -1}) {
        SCOPED_TRACE(dim);
        for (bool keepdim : {false, true}) {
            EXPECT_LT(
                gradcheck_error([&](const std::vector<Tensor>& in) { return max(in[0], dim, keepdim); }, {x}, rng()),
                kGradTolerance);
        }
    }
    EXPECT_LT(gradcheck_error([](const std::vector<Tensor>& in) { return max(in[0]); }, {x}, rng()), kGradTolerance);
}

}  // namespace
}  // namespace convkit
