// The CUDA pooling kernels against the host reference (label gpu): max, average (both
// count_include_pad settings, ceil mode), adaptive and global average, forward and backward,
// written into NaN-filled buffers. float64 to 1e-12; float32 to 1e-5.
#include <cmath>
#include <limits>

#include "kernel_sweeps.h"
#include "kernels/pool.h"
#include "backend_api/geometry.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {


using testing::PoolCase;

class CudaPool : public testing::WithCuda<::testing::TestWithParam<PoolCase>> {};

// Runs kernel(out) into a NaN-filled tensor of `shape` and checks it against `reference`.
template <typename Launch>
void expect_matches(const Shape& shape, DType dtype, const Tensor& reference, const char* what, Launch launch) {
    Tensor out = testing::nan_tensor(shape, dtype, Device::cuda());
    launch(out);
    const double tolerance = dtype == DType::Float64 ? testing::kFloat64Tolerance : testing::kCudaStrictFloat32Tolerance;
    EXPECT_LT(testing::relative_error(out, reference), tolerance) << what;
}

TEST_P(CudaPool, MaxAndAverageMatchTheHostReference) {
    const PoolCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    // Rounded to float32 first, so that both dtypes see the same values and the same argmax.
    const Tensor x_rounded = testing::random_tensor(c.input, rng).to(DType::Float32).to(DType::Float64);
    for (PoolKind kind : {PoolKind::Max, PoolKind::Average}) {
        if (kind == PoolKind::Average && c.params.dilation != SpatialDims{1, 1, 1}) continue;
        SCOPED_TRACE(kind == PoolKind::Max ? "max" : "average");
        const std::string op = pool_op_name(c.params.spatial_rank, kind);
        const detail::PoolGeometry g = detail::pool_geometry(op, c.input, c.params, kind);
        const Tensor dy = testing::random_tensor(g.output_shape(), rng);
        const bool is_max = kind == PoolKind::Max;
        const Tensor ref_y = is_max ? max_pool_forward(x_rounded, c.params) : avg_pool_forward(x_rounded, c.params);
        const Tensor ref_dx =
            is_max ? max_pool_backward(dy, x_rounded, c.params) : avg_pool_backward(dy, c.input, c.params);
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor xd = x_rounded.to(dtype).to(Device::cuda());
            const Tensor dyd = dy.to(dtype).to(Device::cuda());
            const Stream stream = current_stream(0);
            expect_matches(g.output_shape(), dtype, ref_y, "forward", [&](Tensor& out) {
                if (is_max) {
                    kernels::max_pool_forward(g, dtype, xd.raw_data(), out.raw_data(), stream);
                } else {
                    kernels::avg_pool_forward(g, dtype, xd.raw_data(), out.raw_data(), stream);
                }
            });
            expect_matches(c.input, dtype, ref_dx, "backward", [&](Tensor& out) {
                if (is_max) {
                    kernels::max_pool_backward(g, dtype, dyd.raw_data(), xd.raw_data(), out.raw_data(), stream);
                } else {
                    kernels::avg_pool_backward(g, dtype, dyd.raw_data(), out.raw_data(), stream);
                }
            });
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Sweep, CudaPool, ::testing::ValuesIn(testing::pool_sweep()), testing::pool_case_name);

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
