// The CUDA pooling kernels' special cases against the host reference (label gpu): adaptive and
// global average, max pooling's special values bit for bit, sizes past 2^31 elements; outputs
// NaN-filled first. The sweep of max and average pooling over the kernel sweeps runs through the
// cuda.direct variant in tests/test_variant_sweep.cpp.
#include <cmath>
#include <limits>

#include "kernels/pool.h"
#include "backend_api/geometry.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

// Runs kernel(out) into a NaN-filled tensor of `shape` and checks it against `reference`.
template <typename Launch>
void expect_matches(const Shape& shape, DType dtype, const Tensor& reference, const char* what, Launch launch) {
    Tensor out = testing::nan_tensor(shape, dtype, Device::cuda());
    launch(out);
    const double tolerance = dtype == DType::Float64 ? testing::kFloat64Tolerance : testing::kCudaStrictFloat32Tolerance;
    EXPECT_LT(testing::relative_error(out, reference), tolerance) << what;
}

class CudaPoolOps : public testing::WithCuda<> {};

TEST_F(CudaPoolOps, AdaptiveAndGlobalAverageMatchTheHostReference) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<std::pair<Shape, std::vector<std::int64_t>>> problems = {{Shape{2, 3, 10}, {4}},
                                                                               {Shape{1, 2, 7, 5}, {3, 3}},
                                                                               {Shape{2, 3, 3, 4}, {5, 6}},
                                                                               {Shape{1, 2, 5, 4, 6}, {2, 3, 4}}};
    for (const auto& [shape, out] : problems) {
        SCOPED_TRACE(shape.to_string());
        const Tensor x = testing::random_tensor(shape, rng);
        const Tensor y = adaptive_avg_pool_forward(x, out);
        const Tensor dy = testing::random_tensor(y.shape(), rng);
        const Tensor gpu_y = adaptive_avg_pool_forward(x.to(Device::cuda()), out);
        EXPECT_LT(testing::relative_error(gpu_y, y), testing::kFloat64Tolerance);
        const Tensor gpu_dx = adaptive_avg_pool_backward(dy.to(Device::cuda()), shape);
        EXPECT_LT(testing::relative_error(gpu_dx, adaptive_avg_pool_backward(dy, shape)), testing::kFloat64Tolerance);
        const Tensor global = global_avg_pool_forward(x.to(Device::cuda()));
        EXPECT_LT(testing::relative_error(global, global_avg_pool_forward(x)), testing::kFloat64Tolerance);
        // Poisoned buffers through the kernel launchers, float32.
        const detail::PoolGeometry g = detail::adaptive_pool_geometry("adaptive_avg_pool", shape, out);
        const Tensor xf = x.to(DType::Float32).to(Device::cuda());
        const Tensor dyf = dy.to(DType::Float32).to(Device::cuda());
        expect_matches(y.shape(), DType::Float32, y, "adaptive forward", [&](Tensor& o) {
            kernels::adaptive_avg_pool_forward(g, DType::Float32, xf.raw_data(), o.raw_data(), current_stream(0));
        });
        expect_matches(
            shape, DType::Float32, adaptive_avg_pool_backward(dy, shape), "adaptive backward", [&](Tensor& o) {
                kernels::adaptive_avg_pool_backward(g, DType::Float32, dyf.raw_data(), o.raw_data(), current_stream(0));
            });
    }
}

// Ties, NaN and -inf, and dilated windows that miss the input: the GPU must pick the same
// element as the host (first maximum, last NaN) and give the same bits.
TEST_F(CudaPoolOps, MaxPoolingSpecialValuesMatchTheHostBitForBit) {
    CONVKIT_SEEDED_RNG(rng);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<std::pair<PoolParams, Shape>> problems = {
        {PoolParams(2, 3).set_stride(1).set_padding(1), Shape{2, 3, 7, 6}},
        {PoolParams(1, 2).set_stride(1).set_dilation(3).set_padding(1), Shape{1, 2, 2}},  // a window misses the input
        {PoolParams(3, 2).set_stride(1), Shape{1, 2, 3, 4, 5}},
    };
    for (const auto& [params, shape] : problems) {
        SCOPED_TRACE(params.to_string() + " " + shape.to_string());
        std::vector<double> values = testing::small_integer_tensor(shape, rng(), 2).to_vector();  // many ties
        for (std::size_t i = 0; i < values.size(); i += 7) values[i] = (i / 7) % 3 == 0 ? nan : -inf;
        const Tensor x = Tensor::from_vector(shape, values);
        const Tensor y = max_pool_forward(x, params);
        const Tensor dy = testing::small_integer_tensor(y.shape(), rng(), 3);
        for (DType dtype : {DType::Float64, DType::Float32}) {
            const Tensor xd = x.to(dtype).to(Device::cuda());
            const std::vector<double> gpu_y = max_pool_forward(xd, params).to_vector();
            const std::vector<double> host_y = y.to_vector();
            ASSERT_EQ(gpu_y.size(), host_y.size());
            for (std::size_t i = 0; i < gpu_y.size(); ++i) {
                EXPECT_TRUE((std::isnan(gpu_y[i]) && std::isnan(host_y[i])) || gpu_y[i] == host_y[i]) << "output " << i;
            }
            EXPECT_TRUE(testing::exactly_equal(max_pool_backward(dy.to(dtype).to(Device::cuda()), xd, params),
                                               max_pool_backward(dy, x, params)));
        }
    }
}

// More than 2^31 input elements: 2-wide max pooling of a ramp has a closed form at every index.
TEST_F(CudaPoolOps, MaxPoolingPastTwoToTheThirtyOneElements) {
    CONVKIT_SKIP_ON_EMULATED_DEVICE("2^31 elements (8 GiB) are too many to emulate");
    const std::int64_t n = (std::int64_t{1} << 31) + 6;
    std::vector<float> ramp(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) ramp[static_cast<std::size_t>(i)] = static_cast<float>(i % 1000);
    const Tensor x = Tensor::from_vector(Shape{1, 1, n}, ramp, Device::cuda());
    std::vector<float>().swap(ramp);  // release the 8 GiB before the result comes back
    const Tensor y = max_pool_forward(x, PoolParams(1, 2)).to(Device::host());
    ASSERT_EQ(y.numel(), n / 2);
    const float* values = y.data<float>();
    std::int64_t wrong = 0;
    for (std::int64_t j = 0; j < n / 2; ++j) {
        const float expected = static_cast<float>(std::max((2 * j) % 1000, (2 * j + 1) % 1000));
        wrong += values[j] != expected;
    }
    EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace convkit
