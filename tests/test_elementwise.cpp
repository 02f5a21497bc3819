// Unary elementwise ops, scalar ops and their operators, activations and dropout on the host:
// values against closed forms and exact small-integer results, PyTorch's conventions at kinks
// and for NaN, float64 central-difference gradients, and the argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {
using namespace convkit::testing;

constexpr double kGradTolerance = 1e-6;  // float64 central differences, eps 1e-6 (as test_autograd)
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using UnaryFunction = std::function<Tensor(const Tensor&)>;

Tensor values64(std::initializer_list<double> values) {
    return Tensor::from_values(Shape{static_cast<std::int64_t>(values.size())}, values, DType::Float64);
}

// Uniform magnitudes in [low, high) with random signs: inputs at least `low` away from a kink at 0.
Tensor away_from_zero(const Shape& shape, double low, double high, std::mt19937_64& rng) {
    Tensor magnitude = Tensor::uniform(shape, low, high, rng(), DType::Float64);
    Tensor sign = Tensor::uniform(shape, -1, 1, rng(), DType::Float64);
    std::vector<double> m = magnitude.to_vector();
    const std::vector<double> s = sign.to_vector();
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = s[i] < 0 ? -m[i] : m[i];
    return Tensor::from_vector(shape, m);
}

// f applied to every element in double, as an independent definition.
Tensor map_values(const Tensor& x, const std::function<double(double)>& f) {
    std::vector<double> v = x.to_vector();
    for (double& e : v) e = f(e);
    return Tensor::from_vector(x.shape(), v);
}

// Which elements are zero.
std::vector<bool> zero_pattern(const Tensor& t) {
    std::vector<bool> zero;
    for (double v : t.to_vector()) zero.push_back(v == 0);
    return zero;
}

void expect_values(const Tensor& t, const std::vector<double>& expected) {
    EXPECT_EQ(t.to_vector(), expected);
}

template <typename F>
std::string error_of(F f) {
    try {
        f();
    } catch (const InvalidArgument& e) {
        return e.what();
    }
    return "no InvalidArgument";
}

// ---- unary and scalar ops --------------------------------------------------------------------

TEST(Unary, ValuesAreExactOnSmallIntegers) {
    const Tensor x = Tensor::from_values(Shape{2, 3}, {-3, -1, 0, 1, 2, 4}, DType::Float64);
    expect_values(neg(x), {3, 1, -0.0, -1, -2, -4});
    expect_values(square(x), {9, 1, 0, 1, 4, 16});
    expect_values(abs(x), {3, 1, 0, 1, 2, 4});
    expect_values(add_scalar(x, 2.5), {-0.5, 1.5, 2.5, 3.5, 4.5, 6.5});
    expect_values(mul_scalar(x, -2), {6, 2, -0.0, -2, -4, -8});
    expect_values(div_scalar(x, 4), {-0.75, -0.25, 0, 0.25, 0.5, 1});
    expect_values(pow_scalar(x, 3), {-27, -1, 0, 1, 8, 64});
    expect_values(clamp(x, -1, 2), {-1, -1, 0, 1, 2, 2});
    expect_values(sqrt(Tensor::from_values(Shape{3}, {0, 4, 9}, DType::Float64)), {0, 2, 3});
    expect_values(exp(Tensor::zeros(Shape{2}, DType::Float64)), {1, 1});
    expect_values(log(Tensor::full(Shape{2}, 1.0, DType::Float64)), {0, 0});
    EXPECT_EQ(x.shape(), neg(x).shape());
}

TEST(Unary, OperatorsWithScalarsAreTheScalarOps) {
    const Tensor x = Tensor::from_values(Shape{3}, {-2, 1, 6}, DType::Float64);
    expect_values(-x, {2, -1, -6});
    expect_values(x + 1.5, {-0.5, 2.5, 7.5});
    expect_values(1.5 + x, {-0.5, 2.5, 7.5});
    expect_values(x - 1, {-3, 0, 5});
    expect_values(x * 3, {-6, 3, 18});
    expect_values(3 * x, {-6, 3, 18});
    expect_values(x / 4, {-0.5, 0.25, 1.5});
    // A true division, as torch's t / s: 5 * (1 / 3) is 1.6666666666666665, 5 / 3 is ...67.
    EXPECT_EQ((values64({5}) / 3.0).item(0), 5.0 / 3.0);
    EXPECT_NE(5.0 / 3.0, 5.0 * (1.0 / 3.0));
}

TEST(Unary, MatchIndependentDefinitionsInBothDtypes) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor any = Tensor::uniform(Shape{4, 33}, -3, 3, rng(), DType::Float64);
    const Tensor positive = Tensor::uniform(Shape{4, 33}, 0.05, 4, rng(), DType::Float64);
    struct Case {
        const char* name;
        UnaryFunction op;
        std::function<double(double)> definition;
        const Tensor& input;
    };
    const std::vector<Case> cases = {
        {"exp", [](const Tensor& t) { return exp(t); }, [](double v) { return std::exp(v); }, any},
        {"log", [](const Tensor& t) { return log(t); }, [](double v) { return std::log(v); }, positive},
        {"sqrt", [](const Tensor& t) { return sqrt(t); }, [](double v) { return std::sqrt(v); }, positive},
        {"pow 1.5", [](const Tensor& t) { return pow_scalar(t, 1.5); }, [](double v) { return v * std::sqrt(v); },
         positive},
        {"pow -2", [](const Tensor& t) { return pow_scalar(t, -2); }, [](double v) { return 1 / (v * v); }, positive},
        // Identities rather than the same library call: tanh and sigmoid through exp, GELU's CDF
        // through erfc.
        {"sigmoid", [](const Tensor& t) { return sigmoid(t); }, [](double v) { return 0.5 * (1 + std::tanh(v / 2)); },
         any},
        {"tanh", [](const Tensor& t) { return tanh(t); },
         [](double v) { return std::expm1(2 * v) / (std::exp(2 * v) + 1); }, any},
        {"gelu", [](const Tensor& t) { return gelu(t); },
         [](double v) { return v * 0.5 * std::erfc(-v / std::sqrt(2.0)); }, any},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        const Tensor expected = map_values(c.input, c.definition);
        EXPECT_LT(relative_error(c.op(c.input), expected), 1e-13);
        const Tensor y32 = c.op(to_float32(c.input));
        EXPECT_EQ(y32.dtype(), DType::Float32);
        EXPECT_LT(relative_error(y32, expected), kFloat32VsIndependentTolerance);
    }
}

TEST(Unary, LogAndSqrtOutsideTheirDomainFollowIeee) {
    const Tensor y = log(Tensor::from_values(Shape{2}, {0, -1}, DType::Float64));
    EXPECT_EQ(y.item(0), -std::numeric_limits<double>::infinity());
    EXPECT_TRUE(std::isnan(y.item(1)));
    EXPECT_TRUE(std::isnan(sqrt(Tensor::from_values(Shape{1}, {-4})).item(0)));
}

TEST(Unary, ClampKeepsNaNAndGivesHiWhenLoExceedsHi) {
    const Tensor x = values64({-5, 0.5, kNaN, 7});
    const Tensor y = clamp(x, 0, 1);
    EXPECT_EQ(y.item(0), 0);
    EXPECT_EQ(y.item(1), 0.5);
    EXPECT_TRUE(std::isnan(y.item(2)));
    EXPECT_EQ(y.item(3), 1);
    expect_values(clamp(values64({-5, 0.5, 7}), 2, 1), {1, 1, 1});  // torch.clamp(min=2, max=1)
}

TEST(Unary, GradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    const Shape shape{3, 4, 5};
    const Tensor any = random_tensor(shape, rng);
    const Tensor positive = Tensor::uniform(shape, 0.2, 2, rng(), DType::Float64);
    const Tensor off_kink = away_from_zero(shape, 0.1, 1.5, rng);
    // Clamp's edges at +-0.5 and values at least 0.05 away from them.
    std::vector<double> c = Tensor::uniform(shape, 0.05, 0.45, rng(), DType::Float64).to_vector();
    for (std::size_t i = 0; i < c.size(); ++i) c[i] = std::vector<double>{-1, -0.5, 0, 0.5}[i % 4] + c[i];
    const Tensor clamp_input = Tensor::from_vector(shape, c);
    struct Case {
        const char* name;
        UnaryFunction op;
        const Tensor& input;
    };
    const std::vector<Case> cases = {
        {"neg", [](const Tensor& t) { return neg(t); }, any},
        {"exp", [](const Tensor& t) { return exp(t); }, any},
        {"log", [](const Tensor& t) { return log(t); }, positive},
        {"sqrt", [](const Tensor& t) { return sqrt(t); }, positive},
        {"square", [](const Tensor& t) { return square(t); }, any},
        {"abs", [](const Tensor& t) { return abs(t); }, off_kink},
        {"add_scalar", [](const Tensor& t) { return t + 0.75; }, any},
        {"sub scalar", [](const Tensor& t) { return t - 0.75; }, any},
        {"mul_scalar", [](const Tensor& t) { return -1.5 * t; }, any},
        {"div_scalar", [](const Tensor& t) { return t / 3.0; }, any},
        {"pow 2.5", [](const Tensor& t) { return pow_scalar(t, 2.5); }, positive},
        {"pow -1", [](const Tensor& t) { return pow_scalar(t, -1); }, positive},
        {"pow 3 (negative inputs)", [](const Tensor& t) { return pow_scalar(t, 3); }, any},
        {"clamp", [](const Tensor& t) { return clamp(t, -0.5, 0.5); }, clamp_input},
        {"chain", [](const Tensor& t) { return sqrt(exp(t) * 2.0 + 1.0); }, any},
    };
    for (const Case& cs : cases) {
        SCOPED_TRACE(cs.name);
        EXPECT_LT(gradcheck_error([&](const std::vector<Tensor>& in) { return cs.op(in[0]); }, {cs.input}, rng()),
                  kGradTolerance);
    }
}

// The gradient of x -> f(x) summed, at each element of x.
Tensor gradient_of(const UnaryFunction& f, const Tensor& x) {
    Tensor leaf = x.clone().set_requires_grad();
    f(leaf).backward(Tensor::full(x.shape(), 1.0, x.dtype()));
    return leaf.grad();
}

TEST(Unary, GradientsAtKinksFollowPyTorch) {
    const Tensor x = values64({-1, 0, 1});
    expect_values(gradient_of([](const Tensor& t) { return abs(t); }, x), {-1, 0, 1});  // sgn, 0 at 0
    expect_values(gradient_of([](const Tensor& t) { return clamp(t, -1, 0); }, values64({-1.5, -1, 0, 0.5})),
                  {0, 1, 1, 0});  // edges pass the gradient
    expect_values(gradient_of([](const Tensor& t) { return pow_scalar(t, 0); }, values64({0, 2})), {0, 0});
    expect_values(gradient_of([](const Tensor& t) { return relu(t); }, x), {0, 0, 1});
    expect_values(gradient_of([](const Tensor& t) { return leaky_relu(t, 0.25); }, x), {0.25, 0.25, 1});
}

TEST(Unary, RecordTheirNameAndKeepShapesIncludingEmptyAndScalars) {
    Tensor x = Tensor::full(Shape{2}, 1.0, DType::Float64).set_requires_grad();
    EXPECT_EQ(exp(x).grad_fn_name(), "exp");
    EXPECT_EQ((x * 2.0).grad_fn_name(), "mul_scalar");
    EXPECT_EQ(gelu(x, GeluApproximation::Tanh).grad_fn_name(), "gelu_tanh");
    EXPECT_EQ(relu(Tensor::zeros(Shape{0, 3})).shape(), (Shape{0, 3}));
    const Tensor scalar = sigmoid(Tensor::zeros(Shape{}, DType::Float64));
    EXPECT_EQ(scalar.rank(), 0);
    EXPECT_EQ(scalar.item(0), 0.5);
    // The gradient of an empty tensor is an empty tensor.
    Tensor empty = Tensor::zeros(Shape{0}, DType::Float64).set_requires_grad();
    tanh(empty).backward(Tensor::zeros(Shape{0}, DType::Float64));
    EXPECT_EQ(empty.grad().shape(), (Shape{0}));
}

TEST(Unary, RejectIntegerAndUndefinedInputs) {
    EXPECT_NE(error_of([] {
                  (void)exp(Tensor::zeros(Shape{2}, DType::Int64));
              }).find("exp: input must be float32 or float64, got int64"),
              std::string::npos);
    EXPECT_NE(error_of([] { (void)relu(Tensor()); }).find("relu: input is undefined"), std::string::npos);
    EXPECT_NE(error_of([] { (void)(Tensor::zeros(Shape{1}, DType::Int64) * 2.0); }).find("mul_scalar: input"),
              std::string::npos);
}

// ---- activations ------------------------------------------------------------------------------

TEST(Activation, ValuesMatchPyTorch) {
    const Tensor x = values64({1.0, -0.5, 2.0});
    // torch.nn.functional.<op>(torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64))
    EXPECT_LT(relative_error(gelu(x), values64({0.8413447460685429, -0.15426876936299344, 1.9544997361036416})), 1e-15);
    EXPECT_LT(relative_error(gelu(x, GeluApproximation::Tanh),
                             values64({0.8411919906082768, -0.15428599017485606, 1.954597694087775})),
              1e-15);
    EXPECT_LT(relative_error(sigmoid(x), values64({0.7310585786300049, 0.3775406687981454, 0.8807970779778823})),
              1e-15);
    EXPECT_LT(relative_error(tanh(x), values64({0.7615941559557649, -0.46211715726000974, 0.9640275800758169})), 1e-15);
    expect_values(relu(values64({-2, -0.5, 0, 1.5})), {0, 0, 0, 1.5});
    expect_values(leaky_relu(values64({-2, -0.5, 0, 1.5}), 0.25), {-0.5, -0.125, 0, 1.5});
    expect_values(leaky_relu(values64({-100})), {-1});  // default slope 0.01
}

TEST(Activation, SaturateWithoutOverflowAndKeepNaN) {
    const Tensor big = Tensor::from_values(Shape{2}, {-200, 200});  // float32: exp(200) overflows
    expect_values(sigmoid(big), {0, 1});
    expect_values(tanh(big), {-1, 1});
    expect_values(gelu(big), {-0.0, 200});
    EXPECT_TRUE(std::isnan(relu(values64({kNaN})).item(0)));
    EXPECT_TRUE(std::isnan(sigmoid(values64({kNaN})).item(0)));
}

TEST(Activation, GradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    const Shape shape{2, 3, 7};
    const Tensor wide = Tensor::uniform(shape, -4, 4, rng(), DType::Float64);
    const Tensor off_kink = away_from_zero(shape, 0.05, 3, rng);
    struct Case {
        const char* name;
        UnaryFunction op;
        const Tensor& input;
    };
    const std::vector<Case> cases = {
        {"relu", [](const Tensor& t) { return relu(t); }, off_kink},
        {"leaky_relu", [](const Tensor& t) { return leaky_relu(t, 0.2); }, off_kink},
        {"leaky_relu negative slope", [](const Tensor& t) { return leaky_relu(t, -0.5); }, off_kink},
        {"sigmoid", [](const Tensor& t) { return sigmoid(t); }, wide},
        {"tanh", [](const Tensor& t) { return tanh(t); }, wide},
        {"gelu", [](const Tensor& t) { return gelu(t); }, wide},
        {"gelu tanh", [](const Tensor& t) { return gelu(t, GeluApproximation::Tanh); }, wide},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_LT(gradcheck_error([&](const std::vector<Tensor>& in) { return c.op(in[0]); }, {c.input}, rng()),
                  kGradTolerance);
    }
}

TEST(Activation, SigmoidAndTanhBackwardReadTheOutputNotTheInput) {
    // Their backward reads only what they saved: the output. The input may change afterwards.
    Tensor x = Tensor::from_values(Shape{2}, {0.5, -1}, DType::Float64).set_requires_grad();
    Tensor h = x * 1.0;  // a non-leaf input, so it can be changed in place without grad mode
    const Tensor y = sigmoid(h);
    {
        NoGradGuard no_grad;
        h.fill_(100);
    }
    y.backward(Tensor::full(Shape{2}, 1.0, DType::Float64));
    const std::vector<double> s = y.to_vector();
    EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{s[0] * (1 - s[0]), s[1] * (1 - s[1])}));
    // ... while gelu saved its input, so the same change is caught.
    Tensor h2 = x * 1.0;
    const Tensor g = gelu(h2);
    {
        NoGradGuard no_grad;
        h2.fill_(100);
    }
    EXPECT_NE(error_of([&] { g.backward(Tensor::full(Shape{2}, 1.0, DType::Float64)); }).find("modified in place"),
              std::string::npos);
}

// ---- dropout ----------------------------------------------------------------------------------

TEST(Dropout, ZeroesAboutPAndScalesTheRestByOneOverOneMinusP) {
    CONVKIT_SEEDED_RNG(rng);
    const std::int64_t n = 200000;
    const Tensor x = Tensor::uniform(Shape{n}, 1, 2, rng(), DType::Float64);  // never 0 itself
    for (double p : {0.1, 0.5, 0.9}) {
        SCOPED_TRACE(p);
        const Tensor y = dropout(x, p, true, rng());
        const std::vector<double> vx = x.to_vector();
        const std::vector<double> vy = y.to_vector();
        std::int64_t dropped = 0;
        for (std::size_t i = 0; i < vx.size(); ++i) {
            if (vy[i] == 0) {
                ++dropped;
            } else {
                ASSERT_EQ(vy[i], vx[i] * (1 / (1 - p))) << "element " << i;
            }
        }
        // Binomial(n, p): 6 standard deviations.
        const double sigma = std::sqrt(n * p * (1 - p));
        EXPECT_NEAR(static_cast<double>(dropped), n * p, 6 * sigma);
    }
}

TEST(Dropout, TheMaskIsAFunctionOfTheSeedAndTheIndexOnly) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = Tensor::full(Shape{4, 1000}, 1.0, DType::Float64);
    const std::uint64_t seed = rng();
    const Tensor a = dropout(x, 0.3, true, seed);
    EXPECT_TRUE(exactly_equal(a, dropout(x, 0.3, true, seed)));
    EXPECT_FALSE(exactly_equal(a, dropout(x, 0.3, true, seed + 1)));
    // Same mask in float32, and for a tensor of another shape with the same element count.
    EXPECT_EQ(zero_pattern(dropout(to_float32(x), 0.3, true, seed)), zero_pattern(a));
    EXPECT_TRUE(exactly_equal(dropout(x.reshape(Shape{2, 2, 1000}), 0.3, true, seed).reshape(Shape{4, 1000}), a));
    // Not the draw of a uniform fill with the same seed (the seed is salted).
    const std::vector<double> fill = Tensor::uniform(Shape{4000}, 0, 1, seed, DType::Float64).to_vector();
    const std::vector<double> mask = a.to_vector();
    std::int64_t agree = 0;
    for (std::size_t i = 0; i < fill.size(); ++i) agree += (fill[i] >= 0.3) == (mask[i] != 0);
    EXPECT_LT(agree, 3500);  // independent masks agree on about 58% of 4000 (p^2 + (1-p)^2)
}

TEST(Dropout, EvaluationAndZeroPReturnTheInputAndOneGivesZeros) {
    const Tensor x = Tensor::from_values(Shape{3}, {1, kNaN, -2}, DType::Float64);
    EXPECT_EQ(dropout(x, 0.5, false, 7).raw_data(), x.raw_data());
    EXPECT_EQ(dropout(x, 0.0, true, 7).raw_data(), x.raw_data());
    const Tensor finite = Tensor::from_values(Shape{3}, {1, 3, -2}, DType::Float64);
    expect_values(dropout(finite, 1.0, true, 7), {0, 0, 0});
    // A product with the mask, as in PyTorch: a dropped NaN stays NaN.
    EXPECT_TRUE(std::isnan(dropout(x, 1.0, true, 7).item(1)));
}

TEST(Dropout, GradientIsTheSameMaskRecomputedFromTheSeed) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = Tensor::uniform(Shape{5, 40}, 1, 2, rng(), DType::Float64);
    const std::uint64_t seed = rng();
    EXPECT_LT(
        gradcheck_error([seed](const std::vector<Tensor>& in) { return dropout(in[0], 0.4, true, seed); }, {x}, rng()),
        kGradTolerance);
    Tensor leaf = x.clone().set_requires_grad();
    const Tensor y = dropout(leaf, 0.4, true, seed);
    EXPECT_EQ(y.grad_fn_name(), "dropout");
    y.backward(Tensor::full(x.shape(), 1.0, DType::Float64));
    // dy = 1: the gradient is the mask times the scale, i.e. y / x.
    EXPECT_TRUE(exactly_equal(leaf.grad(), map_values(y, [](double v) { return v == 0 ? 0 : 1 / 0.6; })));
}

TEST(Dropout, RejectsPOutsideZeroToOne) {
    const Tensor x = Tensor::zeros(Shape{2});
    EXPECT_NE(error_of([&] { (void)dropout(x, -0.1, true, 1); }).find("dropout: p must be in [0, 1], got -0.1"),
              std::string::npos);
    EXPECT_NE(error_of([&] { (void)dropout(x, 1.5, true, 1); }).find("got 1.5"), std::string::npos);
    EXPECT_NE(error_of([&] { (void)dropout(x, kNaN, false, 1); }).find("dropout: p must be in [0, 1]"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  (void)dropout(Tensor::zeros(Shape{2}, DType::Int64), 0.5, true, 1);
              }).find("dropout: input must be float32 or float64"),
              std::string::npos);
}

}  // namespace
}  // namespace convkit
