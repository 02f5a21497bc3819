// Host-blas max pooling (src/backends/host/pool_parallel.cpp: OpenMP over planes, a vectorised
// loop for 2x2 windows of stride 2) against the reference, bit for bit: a max is a selection,
// so every output and every gradient must be the reference's exactly, NaN positions and the
// sign of zeros included. Data are small integers (many ties, so "the first maximum" matters)
// with NaNs and signed zeros sprinkled in; outputs are filled with NaN first, so an element
// the fast path leaves unwritten fails. Geometries: the 2x2 path on even and odd sizes and on
// 3-D inputs, and overlapping, padded, dilated, ceil-mode and 1-D/3-D windows (the general path).
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend_api/variant.h"
#include "backend_api/geometry.h"
#include "test_util.h"

namespace convkit {
namespace {

#ifdef CONVKIT_WITH_OPENBLAS

struct PoolCase {
    std::string name;
    Shape input;
    PoolParams params;
};

std::vector<PoolCase> pool_cases() {
    std::vector<PoolCase> cases;
    cases.push_back({"2x2_even", Shape{3, 5, 8, 6}, PoolParams(2, 2)});
    cases.push_back({"2x2_odd", Shape{2, 3, 7, 9}, PoolParams(2, 2)});
    cases.push_back({"2x2_one_line", Shape{1, 2, 2, 2}, PoolParams(2, 2)});
    cases.push_back({"3d_1x2x2", Shape{2, 2, 3, 6, 5}, PoolParams(3, {1, 2, 2})});
    cases.push_back({"2x2_stride1_overlap", Shape{2, 3, 6, 7}, PoolParams(2, 2).set_stride(1)});
    cases.push_back({"3x3_stride2_pad1", Shape{2, 3, 9, 8}, PoolParams(2, 3).set_stride(2).set_padding(1)});
    cases.push_back({"2x2_dilation2", Shape{2, 2, 9, 9}, PoolParams(2, 2).set_dilation(2)});
    PoolParams ceil = PoolParams(2, 2);
    ceil.ceil_mode = true;
    cases.push_back({"2x2_ceil", Shape{2, 2, 7, 5}, ceil});
    cases.push_back({"1d_k3_s2", Shape{3, 4, 11}, PoolParams(1, 3).set_stride(2)});
    cases.push_back({"3d_2x2x2", Shape{1, 3, 4, 6, 6}, PoolParams(3, 2)});
    cases.push_back({"2x3_stride_3x2", Shape{2, 2, 9, 8}, PoolParams(2, {2, 3}).set_stride({3, 2})});
    return cases;
}

// Small integers in [-2, 2] with about one NaN in 12 and signed zeros: ties, NaN windows (some
// with several NaNs) and -0 against +0 all occur.
Tensor tricky_values(const Shape& shape, std::uint64_t seed, DType dtype) {
    std::mt19937_64 rng(seed);
    std::vector<double> values(static_cast<std::size_t>(shape.numel()));
    for (double& v : values) {
        const auto r = rng() % 24;
        v = r < 2 ? std::numeric_limits<double>::quiet_NaN() : r < 4 ? -0.0 : static_cast<double>(r % 5) - 2.0;
    }
    return Tensor::from_vector(shape, values).to(dtype);
}

// Same values bit for bit, reading NaN as equal to NaN and -0 as different from +0.
::testing::AssertionResult same_values(const Tensor& actual, const Tensor& expected) {
    const std::vector<double> a = actual.to_vector();
    const std::vector<double> e = expected.to_vector();
    if (a.size() != e.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << e.size();
    for (std::size_t i = 0; i < a.size(); ++i) {
        const bool same = std::isnan(a[i]) ? std::isnan(e[i]) : (a[i] == e[i] && std::signbit(a[i]) == std::signbit(e[i]));
        if (!same) return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << ", expected " << e[i];
    }
    return ::testing::AssertionSuccess();
}

class PoolParallel : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolParallel, MaxForwardAndBackwardMatchTheReferenceBitForBit) {
    const PoolCase& c = GetParam();
    const std::string op = pool_op_name(c.params.spatial_rank, PoolKind::Max);
    const detail::PoolGeometry g = detail::pool_geometry(op, c.input, c.params, PoolKind::Max);
    const detail::PoolVariant& fast = *detail::find_pool_variant("host.blas");
    const detail::PoolVariant& reference = *detail::find_pool_variant("host.reference");
    for (DType dtype : {DType::Float32, DType::Float64}) {
        SCOPED_TRACE(dtype_name(dtype));
        for (std::uint64_t seed : {1u, 2u, 3u}) {
            const Tensor x = tricky_values(c.input, seed, dtype);
            const Tensor dy = testing::small_integer_tensor(g.output_shape(), seed + 10, 3, dtype);
            Tensor y = testing::nan_tensor(g.output_shape(), dtype);
            Tensor y_expected = testing::nan_tensor(g.output_shape(), dtype);
            const detail::PoolProblem problem = detail::pool_problem(g, detail::PoolOp::Max, dtype, Device::host());
            fast.run(problem, PoolPass::Forward, {.x = x.raw_data(), .out = y.raw_data()}, {}, Stream{});
            reference.run(problem, PoolPass::Forward, {.x = x.raw_data(), .out = y_expected.raw_data()}, {}, Stream{});
            EXPECT_TRUE(same_values(y, y_expected)) << "forward, seed " << seed;

            Tensor dx = testing::nan_tensor(c.input, dtype);
            Tensor dx_expected = testing::nan_tensor(c.input, dtype);
            fast.run(problem, PoolPass::Backward, {.x = x.raw_data(), .dy = dy.raw_data(), .out = dx.raw_data()}, {},
                     Stream{});
            reference.run(problem, PoolPass::Backward,
                          {.x = x.raw_data(), .dy = dy.raw_data(), .out = dx_expected.raw_data()}, {}, Stream{});
            EXPECT_TRUE(same_values(dx, dx_expected)) << "backward, seed " << seed;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Geometries, PoolParallel, ::testing::ValuesIn(pool_cases()),
                         [](const ::testing::TestParamInfo<PoolCase>& info) { return info.param.name; });

// The public op on host tensors picks the parallel pooling under host-blas, and its autograd
// gradient is the reference's.
TEST(PoolParallelOp, HostBlasMaxPoolGradientEqualsTheReference) {
    const Tensor x0 = tricky_values(Shape{4, 3, 10, 10}, 7, DType::Float32);
    std::vector<Tensor> grads;
    for (Backend backend : {Backend::Host, Backend::HostBlas}) {
        BackendGuard guard(backend);
        Tensor x = x0.clone().set_requires_grad();
        const Tensor y = max_pool_forward(x, PoolParams(2, 2));
        y.backward(testing::small_integer_tensor(y.shape(), 3, 3, DType::Float32));
        grads.push_back(x.grad());
    }
    EXPECT_TRUE(same_values(grads[1], grads[0]));
}

#endif

}  // namespace
}  // namespace convkit
