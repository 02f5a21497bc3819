// A small CNN trained on the host, end to end through the layer API, must learn to find angles.
#include <gtest/gtest.h>

#include <thread>

#include "angle_training.h"
#include "convkit/convkit.h"
#include "test_util.h"

namespace convkit {
namespace {
using namespace convkit::testing;

TEST(Training, SmallCnnLearnsToFindAnglesOnTheHost) {
    // Any seed does: 18 random seeds reached 98.2% to 100%, so 95% leaves a wide margin.
    AngleTrainingConfig config;
    config.seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(config.seed));
    const AngleTrainingResult result = train_angle_classifier(Device::host(), config);
    ASSERT_FALSE(result.losses.empty());
    const double first = result.losses.front();
    const double last = result.losses.back();
    RecordProperty("test_accuracy", std::to_string(result.test_accuracy));
    std::printf("angle task: first loss %.4f, last loss %.4f, held-out accuracy %.4f\n", first, last,
                result.test_accuracy);
    EXPECT_GE(result.test_accuracy, 0.95);
    EXPECT_LT(last, first);
}

// The same task with bfloat16 (and float16) parameters, buffers and activations: every op
// computes in float32 and rounds its result, and Adam keeps float32 master weights. It must reach
// the float32 model's target, not a looser one.
void expect_sixteen_bit_training_reaches_the_float32_target(DType dtype) {
    AngleTrainingConfig config;
    config.seed = fresh_seed();
    config.dtype = dtype;
    SCOPED_TRACE("seed " + std::to_string(config.seed));
    const AngleTrainingResult result = train_angle_classifier(Device::host(), config);
    ASSERT_FALSE(result.losses.empty());
    ::testing::Test::RecordProperty("test_accuracy", std::to_string(result.test_accuracy));
    std::printf("angle task in %s: first loss %.4f, last loss %.4f, held-out accuracy %.4f\n", dtype_name(dtype),
                result.losses.front(), result.losses.back(), result.test_accuracy);
    EXPECT_GE(result.test_accuracy, 0.95);
    EXPECT_LT(result.losses.back(), result.losses.front());
    // It did train in 16 bits: every parameter is, and each has float32 master weights.
    EXPECT_EQ(result.parameter_dtypes, std::vector<DType>(result.parameter_dtypes.size(), dtype));
    EXPECT_EQ(result.master_weights, std::vector<DType>(result.parameter_dtypes.size(), DType::Float32));
}

TEST(Training, SmallCnnLearnsToFindAnglesInBfloat16WithFloat32MasterWeights) {
    expect_sixteen_bit_training_reaches_the_float32_target(DType::BFloat16);
}

TEST(Training, SmallCnnLearnsToFindAnglesInFloat16WithFloat32MasterWeights) {
    expect_sixteen_bit_training_reaches_the_float32_target(DType::Float16);
}

TEST(Training, DeterministicModeGivesBitIdenticalGradientsRunToRun) {
    set_deterministic_mode(true);
    const std::uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::vector<Tensor> first = angle_classifier_gradients(Device::host(), seed);
    const std::vector<Tensor> second = angle_classifier_gradients(Device::host(), seed);
    set_deterministic_mode(false);
    ASSERT_EQ(first.size(), second.size());
    for (std::size_t i = 0; i < first.size(); ++i) {
        EXPECT_TRUE(exactly_equal(first[i], second[i])) << "parameter " << i;
        EXPECT_GT(norm(first[i]), 0) << "parameter " << i;
    }
}

TEST(Training, DeterministicModeIsAPerThreadSettingWithAnEnvironmentDefault) {
    EXPECT_FALSE(deterministic_mode());  // CONVKIT_DETERMINISTIC is not set in the test run
    set_deterministic_mode(true);
    bool other_thread = true;
    std::thread([&] { other_thread = deterministic_mode(); }).join();
    EXPECT_TRUE(deterministic_mode());
    EXPECT_FALSE(other_thread);
    set_deterministic_mode(false);
}

}  // namespace
}  // namespace convkit
