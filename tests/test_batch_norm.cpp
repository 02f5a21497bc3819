// Batch normalization on the host (label host): values against the formula computed here in
// double, the running-statistics update over several steps (unbiased variance), evaluation,
// affine off, no running statistics, PyTorch's numbers, errors, and float64 gradient checks.
#include <gtest/gtest.h>

#include <cmath>

#include "convkit/convkit.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {
using namespace convkit::testing;

constexpr double kGradTolerance = 1e-6;  // float64 central differences (tests/test_util.h)
constexpr double kEps = 1e-5;

template <typename Call>
void expect_invalid(Call call, const std::string& text) {
    try {
        call();
        FAIL() << "expected InvalidArgument containing: " << text;
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
}

// x as [N, C, S]: the position of value (n, c, s).
struct Layout {
    std::int64_t n, c, s;
    explicit Layout(const Shape& shape)
        : n(shape[0]), c(shape[1]), s(shape.numel() / std::max<std::int64_t>(1, shape[0] * shape[1])) {}
    std::int64_t at(std::int64_t in, std::int64_t ic, std::int64_t is) const { return (in * c + ic) * s + is; }
};

struct ChannelStatistics {
    std::vector<double> mean, biased_var, unbiased_var;
};

// Straight from the definitions, in double.
ChannelStatistics channel_statistics(const Tensor& x) {
    const Layout l(x.shape());
    const std::vector<double> v = x.to_vector();
    ChannelStatistics st;
    const auto m = static_cast<double>(l.n * l.s);
    for (std::int64_t c = 0; c < l.c; ++c) {
        double sum = 0;
        for (std::int64_t n = 0; n < l.n; ++n)
            for (std::int64_t s = 0; s < l.s; ++s) sum += v[static_cast<std::size_t>(l.at(n, c, s))];
        const double mean = sum / m;
        double squares = 0;
        for (std::int64_t n = 0; n < l.n; ++n)
            for (std::int64_t s = 0; s < l.s; ++s) {
                const double d = v[static_cast<std::size_t>(l.at(n, c, s))] - mean;
                squares += d * d;
            }
        st.mean.push_back(mean);
        st.biased_var.push_back(squares / m);
        st.unbiased_var.push_back(squares / (m - 1));
    }
    return st;
}

// (x - mean) / sqrt(var + eps) * weight + bias per channel, in double (weight/bias may be undefined).
Tensor expected_output(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& var,
                       const Tensor& weight, const Tensor& bias, double eps = kEps) {
    const Layout l(x.shape());
    const std::vector<double> v = x.to_vector();
    std::vector<double> y(v.size());
    for (std::int64_t n = 0; n < l.n; ++n)
        for (std::int64_t c = 0; c < l.c; ++c)
            for (std::int64_t s = 0; s < l.s; ++s) {
                const auto i = static_cast<std::size_t>(l.at(n, c, s));
                const auto k = static_cast<std::size_t>(c);
                const double w = weight.defined() ? weight.item(c) : 1.0;
                const double b = bias.defined() ? bias.item(c) : 0.0;
                y[i] = (v[i] - mean[k]) / std::sqrt(var[k] + eps) * w + b;
            }
    return Tensor::from_vector(x.shape(), y);
}

// Uniform values rounded to float32, as float64: the same numbers in both dtypes.
Tensor float32_exact(const Shape& shape, std::mt19937_64& rng, double low = -1, double high = 1) {
    return Tensor::uniform(shape, low, high, rng(), DType::Float32).to(DType::Float64);
}

const std::vector<Shape>& norm_shapes() {
    static const std::vector<Shape> shapes = {Shape{5, 3}, Shape{4, 3, 6}, Shape{2, 3, 4, 5}, Shape{2, 2, 3, 2, 4}};
    return shapes;
}

TEST(BatchNorm, TrainingNormalizesWithTheBiasedBatchVariance) {
    CONVKIT_SEEDED_RNG(rng);
    for (const Shape& shape : norm_shapes()) {
        for (bool affine : {true, false}) {
            SCOPED_TRACE(shape.to_string() + (affine ? " affine" : " no affine"));
            const Tensor x = float32_exact(shape, rng, -2, 3);
            const Shape channels{shape[1]};
            const Tensor w = affine ? float32_exact(channels, rng, 0.5, 2) : Tensor();
            const Tensor b = affine ? float32_exact(channels, rng) : Tensor();
            const ChannelStatistics st = channel_statistics(x);
            const Tensor expected = expected_output(x, st.mean, st.biased_var, w, b);
            for (DType dtype : {DType::Float64, DType::Float32}) {
                SCOPED_TRACE(dtype_name(dtype));
                Tensor rm = Tensor::zeros(channels, dtype);
                Tensor rv = Tensor::full(channels, 1.0, dtype);
                const Tensor y = batch_norm(x.to(dtype), affine ? w.to(dtype) : Tensor(),
                                            affine ? b.to(dtype) : Tensor(), rm, rv, /*training=*/true);
                ASSERT_EQ(y.dtype(), dtype);
                // The host computes in double and rounds once.
                EXPECT_LT(relative_error(y, expected),
                          dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance);
            }
        }
    }
}

TEST(BatchNorm, RunningStatisticsAverageTheUnbiasedVarianceOverSteps) {
    CONVKIT_SEEDED_RNG(rng);
    const double momentum = 0.3;
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        Tensor rm = Tensor::zeros(Shape{2}, dtype);
        Tensor rv = Tensor::full(Shape{2}, 1.0, dtype);
        std::vector<double> expected_mean = {0, 0};
        std::vector<double> expected_var = {1, 1};
        for (int step = 0; step < 4; ++step) {
            SCOPED_TRACE(step);
            const Tensor x = float32_exact(Shape{3, 2, 5}, rng, -1 + step, 2 + 2 * step);
            const std::uint64_t mean_version = rm.storage_version();
            const std::uint64_t var_version = rv.storage_version();
            (void)batch_norm(x.to(dtype), Tensor(), Tensor(), rm, rv, /*training=*/true, momentum);
            const ChannelStatistics st = channel_statistics(x);
            for (std::size_t c = 0; c < 2; ++c) {
                expected_mean[c] = (1 - momentum) * expected_mean[c] + momentum * st.mean[c];
                expected_var[c] = (1 - momentum) * expected_var[c] + momentum * st.unbiased_var[c];
            }
            const double tolerance = dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance;
            EXPECT_LT(relative_error(rm, Tensor::from_vector(Shape{2}, expected_mean)), tolerance);
            EXPECT_LT(relative_error(rv, Tensor::from_vector(Shape{2}, expected_var)), tolerance);
            // In place: autograd would notice a saved running statistic changing.
            EXPECT_GT(rm.storage_version(), mean_version);
            EXPECT_GT(rv.storage_version(), var_version);
        }
    }
}

// nn.BatchNorm1d(2).double() with weight [2, -1], bias [0.5, 3], momentum 0.1: two training
// steps, then eval on the first batch. Values printed by PyTorch 1.13 (Debian's python3-torch).
TEST(BatchNorm, MatchesPyTorchOnTwoTrainingStepsAndEvaluation) {
    const Tensor w = Tensor::from_values(Shape{2}, {2, -1}, DType::Float64);
    const Tensor b = Tensor::from_values(Shape{2}, {0.5, 3}, DType::Float64);
    Tensor rm = Tensor::zeros(Shape{2}, DType::Float64);
    Tensor rv = Tensor::full(Shape{2}, 1.0, DType::Float64);
    const Tensor x1 = Tensor::from_values(Shape{3, 2}, {1, 2, 3, 5, 4, 0}, DType::Float64);
    const Tensor x2 = Tensor::from_values(Shape{4, 2}, {-2, 1, 0, 7, 6, 4, 1, 1}, DType::Float64);
    const Tensor y1 = batch_norm(x1, w, b, rm, rv, true);
    const Tensor y2 = batch_norm(x2, w, b, rm, rv, true);
    const Tensor y3 = batch_norm(x1, w, b, rm, rv, false);
    const auto torch_values = [](const Shape& shape, const std::vector<double>& v) {
        return Tensor::from_vector(shape, v);
    };
    EXPECT_LT(
        relative_error(y1, torch_values(Shape{3, 2}, {-2.172603828625743, 3.1622212290267893, 1.0345207657251492,
                                                      1.7022301677856855, 2.6380830629005954, 4.135548603187525})),
        kFloat64Tolerance);
    EXPECT_LT(relative_error(y2, torch_values(Shape{4, 2}, {-1.705289947936665, 3.904533302797584, -0.34818844151410194,
                                                            1.49244449533736, 3.723116077753587, 2.6984888990674722,
                                                            0.3303623116971796, 3.904533302797584})),
              kFloat64Tolerance);
    EXPECT_LT(relative_error(rm, torch_values(Shape{2}, {0.365, 0.535})), kFloat64Tolerance);
    EXPECT_LT(relative_error(rv, torch_values(Shape{2}, {2.1783333333333337, 2.205})), kFloat64Tolerance);
    EXPECT_LT(
        relative_error(y3, torch_values(Shape{3, 2}, {1.3604795541342674, 2.0134199186278456, 4.070651378179203,
                                                      -0.006880589301479723, 5.425737290201671, 3.360286923914063})),
        kFloat64Tolerance);
}

TEST(BatchNorm, EvaluationUsesTheRunningStatisticsAndLeavesThemAlone) {
    CONVKIT_SEEDED_RNG(rng);
    for (const Shape& shape : norm_shapes()) {
        SCOPED_TRACE(shape.to_string());
        const Shape channels{shape[1]};
        const Tensor x = random_tensor(shape, rng);
        const Tensor w = random_tensor(channels, rng);
        const Tensor b = random_tensor(channels, rng);
        Tensor rm = random_tensor(channels, rng);
        Tensor rv = Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64);
        const std::vector<double> mean = rm.to_vector();
        const std::vector<double> var = rv.to_vector();
        const std::uint64_t version = rm.storage_version();
        const Tensor y = batch_norm(x, w, b, rm, rv, /*training=*/false, 0.1, 1e-3);
        EXPECT_LT(relative_error(y, expected_output(x, mean, var, w, b, 1e-3)), kFloat64Tolerance);
        EXPECT_EQ(rm.to_vector(), mean);
        EXPECT_EQ(rv.to_vector(), var);
        EXPECT_EQ(rm.storage_version(), version);
    }
    // One value per channel is fine in evaluation: nothing is estimated from the batch.
    Tensor rm = Tensor::zeros(Shape{3}, DType::Float64);
    Tensor rv = Tensor::full(Shape{3}, 4.0, DType::Float64);
    const Tensor y = batch_norm(Tensor::from_values(Shape{1, 3}, {2, 4, 6}, DType::Float64), Tensor(), Tensor(), rm, rv,
                                false, 0.1, 0.0);
    EXPECT_EQ(y.to_vector(), (std::vector<double>{1, 2, 3}));
}

TEST(BatchNorm, WithoutRunningStatisticsEvaluationUsesTheBatch) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{3, 4, 5}, rng);
    const Tensor w = random_tensor(Shape{4}, rng);
    const Tensor b = random_tensor(Shape{4}, rng);
    Tensor none;
    const Tensor eval = batch_norm(x, w, b, none, none, /*training=*/false);
    const Tensor train = batch_norm(x, w, b, none, none, /*training=*/true);
    const ChannelStatistics st = channel_statistics(x);
    EXPECT_LT(relative_error(eval, expected_output(x, st.mean, st.biased_var, w, b)), kFloat64Tolerance);
    EXPECT_TRUE(exactly_equal(eval, train));
    EXPECT_FALSE(none.defined());
    expect_invalid(
        [&] {
            (void)batch_norm(Tensor::zeros(Shape{1, 4, 1}), Tensor(), Tensor(), none, none, false);
        },
        "batch_norm1d: Expected more than 1 value per channel when training, got input shape [1, 4, 1]");
}

// float32 data with a large mean (1e4 +- 1): a one-pass E[x^2] - E[x]^2, or a mean rounded to
// float32 before the subtraction, would lose most digits of the spread.
TEST(BatchNorm, AnInputWithALargeMeanKeepsItsVariance) {
    CONVKIT_SEEDED_RNG(rng);
    const Shape shape{8, 3, 50};
    const Tensor x = (Tensor::normal(shape, 0, 1, rng(), DType::Float64) + Tensor::full(Shape{}, 1e4, DType::Float64))
                         .to(DType::Float32);
    const Tensor x64 = x.to(DType::Float64);
    const ChannelStatistics st = channel_statistics(x64);
    Tensor rm = Tensor::zeros(Shape{3});
    Tensor rv = Tensor::full(Shape{3}, 1.0);
    const Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, /*training=*/true, /*momentum=*/1.0);
    EXPECT_LT(relative_error(y, expected_output(x64, st.mean, st.biased_var, Tensor(), Tensor())),
              kFloat32VsFloat64Tolerance);
    EXPECT_LT(relative_error(rv, Tensor::from_vector(Shape{3}, st.unbiased_var)), kFloat32VsFloat64Tolerance);
}

TEST(BatchNorm, RejectsBadArguments) {
    const Tensor x = Tensor::zeros(Shape{2, 3, 4, 5});
    Tensor rm = Tensor::zeros(Shape{3});
    Tensor rv = Tensor::full(Shape{3}, 1.0);
    Tensor none;
    // PyTorch: "Expected more than 1 value per channel when training, got input size torch.Size([1, 3])".
    expect_invalid(
        [&] {
            (void)batch_norm(Tensor::zeros(Shape{1, 3}), Tensor(), Tensor(), rm, rv, true);
        },
        "batch_norm1d: Expected more than 1 value per channel when training, got input shape [1, 3]");
    expect_invalid([&] { (void)batch_norm(x, Tensor::zeros(Shape{4}), Tensor(), rm, rv, true); },
                   "batch_norm2d: weight must have shape [3] (one value per channel of input [2, 3, 4, 5]), got [4]");
    expect_invalid(
        [&] {
            (void)batch_norm(x, Tensor(), Tensor::zeros(Shape{3, 1}), rm, rv, true);
        },
        "batch_norm2d: bias must have shape [3]");
    expect_invalid([&] { (void)batch_norm(x, Tensor(), Tensor(), rm, none, true); },
                   "batch_norm2d: running_mean and running_var must both be given or both be undefined, got "
                   "running_mean defined and running_var undefined");
    Tensor rm64 = Tensor::zeros(Shape{3}, DType::Float64);
    expect_invalid([&] { (void)batch_norm(x, Tensor(), Tensor(), rm64, rv, true); },
                   "batch_norm2d: running_mean is float64 but input is float32");
    expect_invalid([&] { (void)batch_norm(Tensor::zeros(Shape{6}), Tensor(), Tensor(), none, none, true); },
                   "batch_norm: input must be [N, C] or [N, C, spatial...] with up to 3 spatial dims, got shape [6]");
    expect_invalid([&] { (void)batch_norm(x, Tensor(), Tensor(), rm, rv, true, 0.1, -1.0); },
                   "batch_norm2d: eps must be finite and >= 0, got -1");
    expect_invalid([&] { (void)batch_norm(x, Tensor(), Tensor(), rm, rv, true, NAN); },
                   "batch_norm2d: momentum must be finite, got nan");
    expect_invalid(
        [&] {
            (void)batch_norm(Tensor::zeros(Shape{2, 3, 1, 1, 1}, DType::Int64), Tensor(), Tensor(), none, none, true);
        },
        "batch_norm3d: input must be float32 or float64, got int64");
}

// ---- gradients ---------------------------------------------------------------------------

TEST(BatchNorm, TrainingGradientsMatchCentralDifferencesIn1d2d3d) {
    CONVKIT_SEEDED_RNG(rng);
    for (const Shape& shape : norm_shapes()) {
        SCOPED_TRACE(shape.to_string());
        const Shape channels{shape[1]};
        const Tensor x = random_tensor(shape, rng);
        const Tensor w = Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64);
        const Tensor b = random_tensor(channels, rng);
        // Running statistics are updated on every call; they do not influence training outputs.
        Tensor rm = Tensor::zeros(channels, DType::Float64);
        Tensor rv = Tensor::full(channels, 1.0, DType::Float64);
        EXPECT_LT(gradcheck_error(
                      [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, true); },
                      {x, w, b}, rng()),
                  kGradTolerance);
        Tensor none;
        EXPECT_LT(
            gradcheck_error(
                [&](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), Tensor(), none, none, true); },
                {x}, rng()),
            kGradTolerance);
        // Only weight and bias need gradients (x a constant): dx is then never computed.
        EXPECT_LT(gradcheck_error(
                      [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, true); },
                      {x, w, b}, rng(), {0}),
                  kGradTolerance);
    }
}

TEST(BatchNorm, EvaluationGradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    for (const Shape& shape : {Shape{4, 3}, Shape{2, 3, 3, 2}, Shape{1, 2, 2, 3, 2}}) {
        SCOPED_TRACE(shape.to_string());
        const Shape channels{shape[1]};
        Tensor rm = random_tensor(channels, rng);
        Tensor rv = Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64);
        EXPECT_LT(gradcheck_error(
                      [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, false); },
                      {random_tensor(shape, rng), random_tensor(channels, rng), random_tensor(channels, rng)}, rng()),
                  kGradTolerance);
    }
    // No running statistics: evaluation uses the batch, and so does its gradient.
    Tensor none;
    EXPECT_LT(
        gradcheck_error(
            [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], none, none, false); },
            {random_tensor(Shape{3, 2, 4}, rng), random_tensor(Shape{2}, rng), random_tensor(Shape{2}, rng)}, rng()),
        kGradTolerance);
}

// Training gradients in closed form on a case small enough to check by hand: with dy = x_hat,
// sum(dy) = 0 and sum(dy * x_hat) = count, so dx = w * invstd * (x_hat - x_hat) = 0, dw = count.
TEST(BatchNorm, GradientOfTheNormalizedOutputAlongItselfVanishesForX) {
    Tensor x = Tensor::from_values(Shape{4, 1}, {1, 2, 4, 9}, DType::Float64).set_requires_grad();
    Tensor w = Tensor::from_values(Shape{1}, {3}, DType::Float64).set_requires_grad();
    Tensor none;
    const Tensor y = batch_norm(x, w, Tensor(), none, none, true, 0.1, 0.0);
    y.backward(batch_norm(x.detach(), Tensor(), Tensor(), none, none, true, 0.1, 0.0));
    EXPECT_LT(norm(x.grad()), 1e-14);
    EXPECT_NEAR(w.grad().item(0), 4.0, 1e-14);
}

TEST(BatchNorm, BackwardUsesTheStatisticsOfItsForwardPass) {
    Tensor x = Tensor::from_values(Shape{2, 1}, {1, 3}, DType::Float64).set_requires_grad();
    Tensor rm = Tensor::from_values(Shape{1}, {1}, DType::Float64);
    Tensor rv = Tensor::from_values(Shape{1}, {4}, DType::Float64);
    const Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, /*training=*/false, 0.1, 0.0);
    (void)batch_norm(Tensor::from_values(Shape{2, 1}, {10, 30}, DType::Float64), Tensor(), Tensor(), rm, rv, true);
    y.backward(Tensor::full(Shape{2, 1}, 1.0, DType::Float64));
    EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0.5, 0.5}));  // 1 / sqrt(4), not the updated variance
    // The input itself changed in place after the forward pass is an error, not a wrong gradient.
    Tensor a = Tensor::from_values(Shape{2, 1}, {1, 3}, DType::Float64);
    Tensor w = Tensor::from_values(Shape{1}, {2}, DType::Float64).set_requires_grad();
    Tensor none;
    const Tensor z = batch_norm(a, w, Tensor(), none, none, true);
    a.fill_(0);
    expect_invalid([&] { z.backward(Tensor::full(Shape{2, 1}, 1.0, DType::Float64)); }, "modified in place");
}

}  // namespace
}  // namespace convkit
