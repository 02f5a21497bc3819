// correct_predictions on CUDA tensors (label gpu): the device count equals the host's on logits
// with many ties and some NaN, per sample and per pixel, with ignored targets; the call makes no
// host wait; a bad target is raised at the next wait with the host's message.
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "convkit/convkit.h"
#include "cuda/host_waits.h"
#include "test_util.h"

namespace convkit {
namespace {

class CudaMetrics : public testing::WithCuda<> {};

// Targets in [0, classes), about one in eight set to `ignore_index`.
Tensor random_targets(const Shape& shape, std::int64_t classes, std::int64_t ignore_index, std::mt19937_64& rng) {
    std::vector<std::int64_t> values(static_cast<std::size_t>(shape.numel()));
    for (std::int64_t& v : values) {
        v = rng() % 8 == 0 ? ignore_index : static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(classes));
    }
    return Tensor::from_vector(shape, values);
}

TEST_F(CudaMetrics, CorrectPredictionsEqualTheHostCountWithoutWaiting) {
    CONVKIT_SEEDED_RNG(rng);
    struct Case {
        Shape logits;
        std::int64_t ignore_index;
    };
    // More samples than one block's threads and than the emulated grid's 64 blocks, so the
    // grid-stride loop and the atomic sum of blocks both run.
    const std::int64_t many = testing::gpu_or_emulated(100'003, 20'011);
    for (const Case& c : {Case{Shape{many, 10}, -100}, Case{Shape{3, 5, 7, 9}, 255}, Case{Shape{1, 1}, -100},
                          Case{Shape{0, 4}, -100}}) {
        SCOPED_TRACE(c.logits.to_string());
        for (DType dtype : {DType::Float32, DType::Float64}) {
            // Small integers: many ties, where the first maximum must win on both sides.
            std::vector<double> v = testing::small_integer_tensor(c.logits, rng(), 2).to_vector();
            for (std::size_t i = 0; i < v.size(); i += 101) v[i] = std::numeric_limits<double>::quiet_NaN();
            const Tensor logits = Tensor::from_vector(c.logits, v).to(dtype);
            std::vector<std::int64_t> target_dims = c.logits.to_vector();
            target_dims.erase(target_dims.begin() + 1);
            const Tensor targets = random_targets(Shape(target_dims), c.logits[1], c.ignore_index, rng);
            const Tensor logits_gpu = logits.to(Device::cuda()), targets_gpu = targets.to(Device::cuda());
            synchronize(0);
            const std::uint64_t waits_before = detail::host_waits();
            const Tensor on_gpu = correct_predictions(logits_gpu, targets_gpu, c.ignore_index);
            EXPECT_EQ(detail::host_waits(), waits_before) << "correct_predictions waited for the device";
            EXPECT_EQ(on_gpu.device(), Device::cuda());
            EXPECT_EQ(on_gpu.dtype(), DType::Int64);
            EXPECT_EQ(on_gpu.rank(), 0);
            const Tensor on_host = correct_predictions(logits, targets, c.ignore_index);
            EXPECT_EQ(on_gpu.to(Device::host()).item(0), on_host.item(0));
        }
    }
}

TEST_F(CudaMetrics, ABadTargetIsRaisedAtTheNextWaitWithTheHostMessage) {
    const Tensor logits = Tensor::zeros(Shape{2, 3, 2});
    const Tensor targets = Tensor::from_vector(Shape{2, 2}, std::vector<std::int64_t>{0, 1, 3, -7});
    std::string host_message;
    try {
        (void)correct_predictions(logits, targets);
    } catch (const InvalidArgument& e) {
        host_message = e.what();
    }
    ASSERT_NE(host_message.find("correct_predictions: targets[1, 0] = 3 is not a class index"), std::string::npos)
        << host_message;
    Tensor count;
    ASSERT_NO_THROW(count = correct_predictions(logits.to(Device::cuda()), targets.to(Device::cuda())));
    try {
        (void)count.to(Device::host());
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_EQ(std::string(e.what()), host_message);
    }
    EXPECT_NO_THROW(synchronize(0));  // raised once
    const Tensor good = Tensor::from_vector(Shape{2, 2}, std::vector<std::int64_t>{0, 0, 1, 0});
    EXPECT_EQ(correct_predictions(logits.to(Device::cuda()), good.to(Device::cuda())).to(Device::host()).item(0), 3);
}

}  // namespace
}  // namespace convkit
