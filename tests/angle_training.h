#pragma once
// The small CNN that the training tests teach to find angles (tests/synthetic_angles.h), and
// its training loop, shared by the host test and the GPU test so both run the same thing.
#include <cstdint>
#include <memory>
#include <vector>

#include "convkit/nn.h"

namespace convkit::testing {

// conv-BN-ReLU-pool twice, then a linear head over the 3x3 map of a 12x12 image.
std::shared_ptr<nn::Sequential> make_angle_classifier();

struct AngleTrainingResult {
    std::vector<double> losses;  // of every training step, in order
    double test_accuracy = 0;    // on held-out images, in [0, 1]
    std::vector<DType> parameter_dtypes;  // of the trained model's parameters
    std::vector<DType> master_weights;    // the dtypes of Adam's master weights (none for float32)
};

struct AngleTrainingConfig {
    std::int64_t train_images = 4096;
    std::int64_t test_images = 512;
    std::int64_t batch = 32;
    int epochs = 8;
    std::int64_t max_steps = -1;  // stop after this many steps (-1: all epochs)
    std::uint64_t seed = 1;       // data, initial weights and shuffling
    // The model's parameters, buffers and activations (images converted on the way in). Adam
    // keeps float32 master weights for bfloat16/float16; the initial weights are the float32
    // model's, rounded.
    DType dtype = DType::Float32;
};

// The gradients of every parameter of the angle classifier (built with `seed`) for one batch of
// `batch` images, on `device`, in the current backend and deterministic-mode settings.
std::vector<Tensor> angle_classifier_gradients(Device device, std::uint64_t seed, std::int64_t batch = 64);

// Builds the model (seeded), moves it to `device` and `config.dtype`, trains it with Adam and
// returns the losses and the accuracy on the test images.
AngleTrainingResult train_angle_classifier(Device device, const AngleTrainingConfig& config);

}  // namespace convkit::testing
