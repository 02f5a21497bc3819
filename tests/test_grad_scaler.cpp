// optim::GradScaler: dynamic loss scaling for float16 (label host). Gradients that underflow in
// float16 survive scaling and the update equals the float32 one; an overflowed step is skipped
// with the scale lowered; the scale grows after its interval; disabled, it passes through.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "convkit/convkit.h"
#include "test_util.h"

namespace convkit {
namespace {

// loss = factor x sum(w * x), the sum in w's dtype and the loss in float32 (as a training step
// computes it from widened logits): its gradient is factor x x.
Tensor weighted_loss(const Tensor& w, const std::vector<double>& x, double factor) {
    const Tensor xs = Tensor::from_vector(Shape{static_cast<std::int64_t>(x.size())}, x).to(w.dtype());
    return sum(w * xs).to(DType::Float32) * factor;
}

TEST(GradScaler, GradientsThatUnderflowInFloat16SurviveAndTheUpdateIsTheFloat32One) {
    const std::vector<double> x{1.0, -2.0, 3.0, 0.5};
    constexpr double kFactor = 1e-8;  // gradients 5e-9 to 3e-8: below float16's smallest subnormal (6e-8) or near it
    const auto train = [&](bool scaled) {
        Tensor w = Tensor::from_vector(Shape{4}, std::vector<double>{0.25, 0.5, -0.75, 1.0}).to(DType::Float16).set_requires_grad();
        optim::SGD sgd({w}, {.lr = 1e6});
        optim::GradScaler scaler({.enabled = scaled});
        scaler.scale(weighted_loss(w, x, kFactor)).backward();
        EXPECT_TRUE(scaler.step(sgd));
        return sgd.state_dict().at("state.0.master_weights").to_vector();
    };
    const std::vector<double> with_scaling = train(true);
    const std::vector<double> without = train(false);
    const std::vector<double> start{0.25, 0.5, -0.75, 1.0};
    for (std::size_t i = 0; i < x.size(); ++i) {
        // w - lr * factor * x = w - 0.01 x, in float32 (the master weights).
        const double expected = start[i] - 1e6 * kFactor * x[i];
        EXPECT_NEAR(with_scaling[i], expected, 1e-3 * std::abs(1e6 * kFactor * x[i])) << i;
    }
    // Unscaled, the float16 gradients lost most of their value: the control that makes the
    // comparison above mean something.
    double lost = 0;
    for (std::size_t i = 0; i < x.size(); ++i) lost += std::abs(without[i] - with_scaling[i]);
    EXPECT_GT(lost, 1e-3);
}

TEST(GradScaler, AnOverflowedStepIsSkippedAndTheScaleBacksOff) {
    Tensor w = Tensor::from_vector(Shape{2}, std::vector<double>{1.0, 2.0}).to(DType::Float16).set_requires_grad();
    optim::Adam adam({w}, {.lr = 0.1});
    // 2^20 x a gradient of 100 overflows float16 (largest 65504).
    optim::GradScaler scaler({.init_scale = 1 << 20});
    scaler.scale(weighted_loss(w, {100.0, 100.0}, 1.0)).backward();
    EXPECT_FALSE(scaler.step(adam));
    EXPECT_EQ(scaler.current_scale(), 1 << 19);
    EXPECT_EQ(scaler.skipped_steps(), 1);
    EXPECT_EQ(w.to_vector(), (std::vector<double>{1.0, 2.0})) << "a skipped step changes nothing";
    EXPECT_EQ(adam.state_dict().count("state.0.exp_avg"), 0U) << "nor the optimizer's state";
    // Lowered until it fits: 2^19 x 100 still overflows, 2^9 x 100 does not.
    int skipped = 1;
    while (true) {
        adam.zero_grad();
        scaler.scale(weighted_loss(w, {100.0, 100.0}, 1.0)).backward();
        if (scaler.step(adam)) break;
        ++skipped;
        ASSERT_LT(skipped, 30);
    }
    EXPECT_LE(scaler.current_scale() * 100, 65504);
    EXPECT_NE(w.to_vector(), (std::vector<double>{1.0, 2.0}));
}

TEST(GradScaler, TheScaleGrowsAfterItsIntervalAndBadOptionsAreRefused) {
    Tensor w = Tensor::from_vector(Shape{1}, std::vector<double>{1.0}).set_requires_grad();
    optim::SGD sgd({w}, {.lr = 0.1});
    optim::GradScaler scaler({.init_scale = 4, .growth_interval = 3});
    for (int step = 1; step <= 6; ++step) {
        sgd.zero_grad();
        scaler.scale(weighted_loss(w, {1.0}, 1.0)).backward();
        ASSERT_TRUE(scaler.step(sgd));
        EXPECT_EQ(scaler.current_scale(), step < 3 ? 4 : step < 6 ? 8 : 16) << "after step " << step;
    }
    // float32 parameter: unscaled exactly, so six steps of lr 0.1 x gradient 1.
    EXPECT_NEAR(w.item(0), 1.0 - 0.6, 1e-6);
    EXPECT_THROW(optim::GradScaler({.init_scale = 0}), InvalidArgument);
    EXPECT_THROW(optim::GradScaler({.growth_factor = 1}), InvalidArgument);
    EXPECT_THROW(optim::GradScaler({.backoff_factor = 1}), InvalidArgument);
    EXPECT_THROW(optim::GradScaler({.growth_interval = 0}), InvalidArgument);
    EXPECT_THROW(sgd.step_with_gradients_divided_by(0), InvalidArgument);
}

}  // namespace
}  // namespace convkit
