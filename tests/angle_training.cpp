#include "angle_training.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "convkit/convkit.h"
#include "synthetic_angles.h"

namespace convkit::testing {

std::shared_ptr<nn::Sequential> make_angle_classifier() {
    const ConvParams same = ConvParams(2).set_padding(1);
    return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(1, 8, 3, same), std::make_shared<nn::BatchNorm2d>(8),
        std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),
        std::make_shared<nn::Conv2d>(8, 16, 3, same), std::make_shared<nn::BatchNorm2d>(16),
        std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),
        std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(16 * 3 * 3, 2)});
}

namespace {
// Rows `order[first, first + count)` of images and labels, as a batch on `device`.
std::pair<Tensor, Tensor> gather_batch(const LabelledImages& data, const std::vector<std::int64_t>& order,
                                       std::int64_t first, std::int64_t count, Device device) {
    const std::int64_t pixels = data.images.numel() / data.images.size(0);
    std::vector<float> images(static_cast<std::size_t>(count * pixels));
    std::vector<std::int64_t> labels(static_cast<std::size_t>(count));
    const float* source = data.images.data<float>();
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t row = order[static_cast<std::size_t>(first + i)];
        std::copy_n(source + row * pixels, pixels, images.begin() + i * pixels);
        labels[static_cast<std::size_t>(i)] = data.labels.data<std::int64_t>()[row];
    }
    Shape shape = data.images.shape();
    shape[0] = count;
    return {Tensor::from_vector(shape, images, device), Tensor::from_vector(Shape{count}, labels, device)};
}
}  // namespace

std::vector<Tensor> angle_classifier_gradients(Device device, std::uint64_t seed, std::int64_t batch) {
    const LabelledImages data = make_angle_images(batch, 12, seed);
    nn::init::manual_seed(seed);
    auto model = make_angle_classifier();
    model->to(device);
    cross_entropy((*model)(data.images.to(device)), data.labels.to(device)).backward();
    std::vector<Tensor> grads;
    for (const Tensor& p : model->parameters()) grads.push_back(p.grad().to(Device::host()));
    return grads;
}

AngleTrainingResult train_angle_classifier(Device device, const AngleTrainingConfig& config) {
    const LabelledImages train = make_angle_images(config.train_images, 12, config.seed);
    const LabelledImages test = make_angle_images(config.test_images, 12, config.seed + 1);
    nn::init::manual_seed(config.seed);
    auto model = make_angle_classifier();
    model->to(device);
    model->to(config.dtype);
    optim::Adam adam(model->parameters(), {.lr = 3e-3});
    // Annealing the rate to zero settles the last epochs (a constant rate ends 1-2% lower now and then).
    const std::int64_t steps_per_epoch = config.train_images / config.batch;
    optim::CosineAnnealingLR schedule(adam, steps_per_epoch * config.epochs);

    AngleTrainingResult result;
    std::vector<std::int64_t> order(static_cast<std::size_t>(config.train_images));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 shuffle(config.seed);
    for (int epoch = 0; epoch < config.epochs; ++epoch) {
        std::shuffle(order.begin(), order.end(), shuffle);
        for (std::int64_t first = 0; first + config.batch <= config.train_images; first += config.batch) {
            if (config.max_steps >= 0 && static_cast<std::int64_t>(result.losses.size()) >= config.max_steps) break;
            const auto [images, labels] = gather_batch(train, order, first, config.batch, device);
            adam.zero_grad();
            const Tensor loss = cross_entropy((*model)(images.to(config.dtype)), labels);
            loss.backward();
            adam.step();
            schedule.step();
            result.losses.push_back(loss.to(Device::host()).item(0));
        }
    }

    for (const Tensor& p : model->parameters()) result.parameter_dtypes.push_back(p.dtype());
    for (const auto& [key, value] : adam.state_dict()) {
        if (key.ends_with(".master_weights")) result.master_weights.push_back(value.dtype());
    }

    model->eval();
    NoGradGuard no_grad;
    std::vector<std::int64_t> all(static_cast<std::size_t>(config.test_images));
    std::iota(all.begin(), all.end(), 0);
    const auto [images, labels] = gather_batch(test, all, 0, config.test_images, device);
    result.test_accuracy = accuracy((*model)(images.to(config.dtype)).to(DType::Float32), labels);
    return result;
}

}  // namespace convkit::testing
