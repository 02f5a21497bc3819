// The angle-finding CNN of test_training, trained on the GPU: the same accuracy, and its first
// steps' losses follow the host's.
#include <gtest/gtest.h>

#include "angle_training.h"
#include "convkit/convkit.h"
#include "test_util.h"

namespace convkit {
namespace {
using namespace convkit::testing;

class CudaTraining : public WithCuda<> {};

// Trains on the GPU in `dtype` and compares the first steps' losses with the host's in the same
// dtype. `loss_tolerance`: same data, initial weights and batches, but float32 sums in another
// order drift apart slowly (and a 16-bit loss is rounded to its ulp), so only the first steps
// are compared, and loosely.
void expect_gpu_training_reaches_the_host_accuracy(DType dtype, double loss_tolerance) {
    AngleTrainingConfig config;
    config.seed = fresh_seed();
    config.dtype = dtype;
    SCOPED_TRACE("seed " + std::to_string(config.seed) + " " + dtype_name(dtype));
    // The emulated device runs the first steps only (the whole run would take many minutes there),
    // and evaluates 32 test images instead of 512 (a third of its time, under CI's sanitizers);
    // the accuracy is a GPU's to show.
    if (cuda_is_emulated()) {
        config.max_steps = 10;
        config.test_images = 32;
    }
    const AngleTrainingResult gpu = train_angle_classifier(Device::cuda(0), config);
    std::printf("angle task on the GPU in %s: held-out accuracy %.4f\n", dtype_name(dtype), gpu.test_accuracy);
    if (!cuda_is_emulated()) {
        EXPECT_GE(gpu.test_accuracy, 0.95);
    }

    AngleTrainingConfig short_run = config;
    short_run.max_steps = 10;
    const AngleTrainingResult host = train_angle_classifier(Device::host(), short_run);
    ASSERT_EQ(host.losses.size(), 10u);
    for (std::size_t step = 0; step < host.losses.size(); ++step) {
        EXPECT_NEAR(gpu.losses[step], host.losses[step], loss_tolerance * std::max(1.0, host.losses[step]))
            << "step " << step;
    }
}

TEST_F(CudaTraining, SmallCnnReachesTheHostAccuracyAndItsFirstLossesMatch) {
    expect_gpu_training_reaches_the_host_accuracy(DType::Float32, 2e-3);
}

// bfloat16 parameters and activations with float32 master weights, as on the host
// (test_training): a loss is rounded to 8 significant bits, so a step may differ by an ulp.
TEST_F(CudaTraining, SmallCnnTrainsInBfloat16WithFloat32MasterWeights) {
    expect_gpu_training_reaches_the_host_accuracy(DType::BFloat16, 2e-2);
}

TEST_F(CudaTraining, DeterministicModeGivesBitIdenticalGradientsOnTheGpu) {
    set_deterministic_mode(true);
    const std::uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    for (Backend backend : {Backend::Cuda, Backend::Cudnn}) {
#ifndef CONVKIT_WITH_CUDNN
        if (backend == Backend::Cudnn) continue;
#endif
        if (backend == Backend::Cudnn && cuda_is_emulated()) continue;  // cuDNN needs a GPU
        SCOPED_TRACE(backend_name(backend));
        BackendGuard guard(backend);
        const std::vector<Tensor> first = angle_classifier_gradients(Device::cuda(0), seed);
        const std::vector<Tensor> second = angle_classifier_gradients(Device::cuda(0), seed);
        for (std::size_t i = 0; i < first.size(); ++i) {
            EXPECT_TRUE(exactly_equal(first[i], second[i])) << "parameter " << i;
        }
    }
    set_deterministic_mode(false);
}

}  // namespace
}  // namespace convkit
