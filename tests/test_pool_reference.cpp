// The host pooling reference (max, average, adaptive and global average; 1-D to 3-D; forward and
// backward) checked against definitions written out again (tests/pool_definitions.h), on fresh
// random inputs every run: named cases, adaptive and global windows, fresh geometry. The
// reference is the oracle for every GPU backend, so it is never trusted to check itself.
// tests/test_pool_examples.cpp has the gradients, ties, NaNs and hand-computed examples.
#include "pool_definitions.h"

namespace convkit {
namespace {

using namespace pool_test;

// ---- Max pooling vs the definition, over named cases --------------------------------------------

// Cases chosen to cover: strides below, equal to and above the kernel; padding up to kernel / 2;
// dilation; ceil-mode windows that overhang the right padding and ones that the ceil rule drops
// (k4 s3 p2 on 7); odd and unequal sizes; non-square kernels; a kernel of 1; a size-1 dim.
std::vector<PoolCase> max_pool_cases() {
    return {
        {{1, 3, 9}, P(1, {2})},
        {{1, 5, 10}, P(1, {3}).set_stride(1).set_padding(1)},
        {{2, 7, 10}, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{1, 3, 8}, P(1, {3}).set_stride(2).set_padding(1).set_dilation(2)},
        {{1, 5, 7}, P(1, {4}).set_stride(3).set_padding(2).set_ceil_mode()},
        {{1, 7, 5}, P(1, {1}).set_stride(2)},
        {{1, 3, 12}, P(1, {5}).set_stride(2).set_padding(2).set_dilation(3).set_ceil_mode()},
        {{1, 3, 8, 10}, P(2, {3, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{1, 5, 8, 6}, P(2, {2, 3}).set_stride({1, 2}).set_padding({1, 1})},
        {{2, 3, 9, 7}, P(2, {3, 2}).set_stride({2, 1}).set_padding({1, 0}).set_dilation({2, 1})},
        {{1, 7, 5, 5}, P(2, {2, 2}).set_stride(1)},
        {{1, 3, 6, 7}, P(2, {3, 3}).set_stride({3, 2}).set_padding(1).set_dilation({1, 2}).set_ceil_mode()},
        {{1, 5, 12, 12}, P(2, {4, 4}).set_stride(1)},
        {{1, 3, 1, 9}, P(2, {1, 3}).set_stride({1, 2})},
        {{1, 3, 11, 9}, P(2, {3, 5}).set_stride({2, 3}).set_padding({1, 2}).set_ceil_mode()},
        {{1, 3, 5, 6, 7}, P(3, {2, 2, 2})},
        {{1, 5, 6, 5, 6}, P(3, {3, 3, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{2, 3, 4, 7, 6}, P(3, {2, 3, 2}).set_stride({1, 2, 2}).set_padding({1, 1, 0}).set_dilation({1, 1, 2})},
        {{1, 7, 3, 4, 5}, P(3, {1, 2, 3}).set_stride(1).set_padding({0, 1, 1}).set_ceil_mode()},
    };
}

class MaxPoolReference : public ::testing::TestWithParam<PoolCase> {};

TEST_P(MaxPoolReference, ForwardMatchesDefinitionExactly) {
    const PoolCase& c = GetParam();
    const Windows w = windows_of(c);
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    EXPECT_EQ(pool_output_shape(Shape(c.shape), c.params), Shape(w.output_shape(c.shape)));
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor x = Tensor::uniform(Shape(c.shape), -1.0, 1.0, seed, dtype);
        const Tensor y = max_pool_forward(x, c.params);
        ASSERT_EQ(y.shape(), Shape(w.output_shape(c.shape)));
        ASSERT_EQ(y.dtype(), dtype);
        // Max selects an input value, so the result is exact in either dtype.
        expect_same_values(values_of(y), max_pool_definition(values_of(x), w), "max_pool_forward");
    }
}

TEST_P(MaxPoolReference, BackwardMatchesFirstMaximumDefinitionExactlyWithTies) {
    const PoolCase& c = GetParam();
    const Windows w = windows_of(c);
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        // Integers in [-1, 1]: most windows hold ties, so the first-maximum rule decides; the
        // integer gradients keep every accumulated sum exact.
        const Tensor x = testing::small_integer_tensor(Shape(c.shape), seed, 1, dtype);
        const Tensor g = testing::small_integer_tensor(Shape(w.output_shape(c.shape)), seed ^ 0x9e3779b97f4a7c15ULL, 4,
                                                       dtype);
        const Tensor grad = max_pool_backward(g, x, c.params);
        ASSERT_EQ(grad.shape(), Shape(c.shape));
        expect_same_values(values_of(grad), max_pool_backward_definition(values_of(x), values_of(g), w),
                           "max_pool_backward");
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, MaxPoolReference, ::testing::ValuesIn(max_pool_cases()),
                         [](const ::testing::TestParamInfo<PoolCase>& info) { return case_name(info.param); });

// ---- Average pooling vs the definition, over named cases ----------------------------------------

std::vector<PoolCase> avg_pool_cases() {
    std::vector<PoolCase> base = {
        // ceil-mode windows overhanging the right padding: [7, 10) on 8 + p1 counts 2 (clipped
        // to in + p), not 3, with count_include_pad.
        {{1, 3, 8}, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{1, 5, 6}, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{2, 7, 10}, P(1, {4}).set_stride(3).set_padding(2).set_ceil_mode()},  // the ceil rule drops one
        {{1, 3, 9}, P(1, {2})},
        {{1, 3, 11}, P(1, {5}).set_stride(2).set_padding(2)},
        {{1, 3, 6, 8}, P(2, {3, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{1, 5, 7, 5}, P(2, {2, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{2, 3, 10, 10}, P(2, {3, 3}).set_ceil_mode()},  // no padding: overhangs the input itself
        {{1, 7, 4, 4}, P(2, {2, 2}).set_stride(1).set_padding(1)},
        {{1, 3, 5, 8}, P(2, {3, 1}).set_stride({1, 2}).set_padding({1, 0})},
        {{1, 3, 5, 6, 7}, P(3, {3, 3, 3}).set_stride(2).set_padding(1).set_ceil_mode()},
        {{2, 5, 4, 4, 6}, P(3, {2, 2, 3}).set_stride({2, 1, 2}).set_padding({1, 0, 1}).set_ceil_mode()},
        {{1, 3, 6, 5, 4}, P(3, {2, 2, 2})},
    };
    // Every case both with and without count_include_pad.
    std::vector<PoolCase> cases;
    for (const PoolCase& c : base) {
        cases.push_back(c);
        PoolCase excluded = c;
        excluded.params.set_count_include_pad(false);
        cases.push_back(excluded);
    }
    return cases;
}

class AvgPoolReference : public ::testing::TestWithParam<PoolCase> {};

TEST_P(AvgPoolReference, ForwardMatchesDefinition) {
    const PoolCase& c = GetParam();
    const Windows w = windows_of(c);
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    EXPECT_EQ(pool_output_shape(Shape(c.shape), c.params, PoolKind::Average), Shape(w.output_shape(c.shape)));
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        // Offset from zero so that a wrong divisor cannot hide behind a near-zero mean.
        const Tensor x = Tensor::uniform(Shape(c.shape), 0.5, 2.0, seed, dtype);
        const Tensor y = avg_pool_forward(x, c.params);
        ASSERT_EQ(y.shape(), Shape(w.output_shape(c.shape)));
        EXPECT_LT(relative_error(values_of(y), avg_pool_definition(values_of(x), w)),
                  dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance);
    }
}

TEST_P(AvgPoolReference, BackwardMatchesDefinition) {
    const PoolCase& c = GetParam();
    const Windows w = windows_of(c);
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor g = Tensor::uniform(Shape(w.output_shape(c.shape)), 0.5, 2.0, seed, dtype);
        const Tensor grad = avg_pool_backward(g, Shape(c.shape), c.params);
        ASSERT_EQ(grad.shape(), Shape(c.shape));
        EXPECT_LT(relative_error(values_of(grad), avg_pool_backward_definition(values_of(g), w)),
                  dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance);
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, AvgPoolReference, ::testing::ValuesIn(avg_pool_cases()),
                         [](const ::testing::TestParamInfo<PoolCase>& info) { return case_name(info.param); });

// ---- Adaptive average pooling vs the definition -------------------------------------------------

// Smaller, equal and larger outputs, with sizes that do not divide (7 -> 3, 5 -> 3, 10 -> 4)
// so that neighbouring windows overlap or differ in length.
std::vector<AdaptiveCase> adaptive_cases() {
    return {
        {{1, 3, 7}, {3}},           {{1, 5, 5}, {3}},           {{2, 3, 10}, {4}},
        {{1, 3, 4}, {4}},           {{1, 7, 3}, {5}},           {{1, 3, 1}, {3}},
        {{1, 3, 6}, {1}},           {{1, 3, 7, 5}, {3, 3}},     {{1, 5, 10, 6}, {4, 6}},
        {{2, 3, 4, 3}, {6, 5}},     {{1, 3, 9, 9}, {2, 4}},     {{1, 3, 5, 7, 10}, {3, 3, 4}},
        {{1, 5, 3, 4, 2}, {5, 4, 3}}, {{1, 3, 4, 4, 4}, {1, 1, 1}},
    };
}

class AdaptiveAvgPoolReference : public ::testing::TestWithParam<AdaptiveCase> {};

TEST_P(AdaptiveAvgPoolReference, ForwardAndBackwardMatchDefinition) {
    const AdaptiveCase& c = GetParam();
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    Index out_shape{c.shape[0], c.shape[1]};
    out_shape.insert(out_shape.end(), c.out.begin(), c.out.end());
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        const double tol = dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance;
        const Tensor x = Tensor::uniform(Shape(c.shape), 0.5, 2.0, seed, dtype);
        const Tensor y = adaptive_avg_pool_forward(x, c.out);
        ASSERT_EQ(y.shape(), Shape(out_shape));
        EXPECT_LT(relative_error(values_of(y), adaptive_avg_pool_definition(values_of(x), c.shape, c.out)), tol);

        const Tensor g = Tensor::uniform(Shape(out_shape), 0.5, 2.0, seed + 1, dtype);
        const Tensor grad = adaptive_avg_pool_backward(g, Shape(c.shape));
        ASSERT_EQ(grad.shape(), Shape(c.shape));
        EXPECT_LT(relative_error(values_of(grad), adaptive_avg_pool_backward_definition(values_of(g), c.shape, c.out)),
                  tol);
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, AdaptiveAvgPoolReference, ::testing::ValuesIn(adaptive_cases()),
                         [](const ::testing::TestParamInfo<AdaptiveCase>& info) { return adaptive_name(info.param); });

TEST(AdaptiveAvgPool, WindowsOfNonDivisibleSizesByHand) {
    // 7 -> 3: [0, 3), [2, 5), [4, 7) overlap by one; 5 -> 3: [0, 2), [1, 4), [3, 5);
    // 2 -> 3 (larger): [0, 1), [0, 2), [1, 2).
    const Tensor a = Tensor::from_vector(Shape{1, 1, 7}, std::vector<double>{1, 2, 3, 4, 5, 6, 7});
    expect_same_values(values_of(adaptive_avg_pool_forward(a, {3})), {2, 4, 6}, "7 -> 3");
    const Tensor b = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{1, 2, 4, 8, 16});
    expect_same_values(values_of(adaptive_avg_pool_forward(b, {3})), {1.5, 14.0 / 3.0, 12}, "5 -> 3");
    const Tensor c = Tensor::from_vector(Shape{1, 1, 2}, std::vector<double>{2, 6});
    expect_same_values(values_of(adaptive_avg_pool_forward(c, {3})), {2, 4, 6}, "2 -> 3");
    // 10 -> 4: [0, 3), [2, 5), [5, 8), [7, 10).
    std::vector<double> ten(10);
    std::iota(ten.begin(), ten.end(), 0.0);
    expect_same_values(values_of(adaptive_avg_pool_forward(Tensor::from_vector(Shape{1, 1, 10}, ten), {4})),
                       {1, 3, 6, 8}, "10 -> 4");
}

TEST(GlobalAvgPool, EqualsThePlainMeanOverSpatialDims) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    for (const Index& shape : {Index{2, 3, 11}, Index{1, 5, 7, 9}, Index{2, 7, 3, 5, 4}}) {
        SCOPED_TRACE(shape_text(shape));
        for (DType dtype : {DType::Float64, DType::Float32}) {
            const Tensor x = Tensor::normal(Shape(shape), 1.0, 2.0, seed, dtype);
            const Tensor y = global_avg_pool_forward(x);
            Index out_shape(shape.size(), 1);
            out_shape[0] = shape[0];
            out_shape[1] = shape[1];
            ASSERT_EQ(y.shape(), Shape(out_shape));
            const std::vector<double> v = values_of(x);
            const std::int64_t spatial = product(Index(shape.begin() + 2, shape.end()));
            std::vector<double> mean;
            for (std::int64_t plane = 0; plane < shape[0] * shape[1]; ++plane) {
                const auto first = v.begin() + plane * spatial;
                mean.push_back(std::accumulate(first, first + spatial, 0.0) / static_cast<double>(spatial));
            }
            EXPECT_LT(relative_error(values_of(y), mean), dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance);
            // Backward spreads each plane's gradient evenly.
            const Tensor g = Tensor::uniform(Shape(out_shape), -1.0, 1.0, seed + 1, dtype);
            const std::vector<double> gv = values_of(g);
            std::vector<double> expected;
            for (std::int64_t plane = 0; plane < shape[0] * shape[1]; ++plane) {
                expected.insert(expected.end(), static_cast<std::size_t>(spatial),
                                gv[static_cast<std::size_t>(plane)] / static_cast<double>(spatial));
            }
            EXPECT_LT(relative_error(values_of(global_avg_pool_backward(g, Shape(shape))), expected),
                      dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance);
        }
    }
}

// ---- Fresh shapes and parameters every run ------------------------------------------------------
// The named cases above have fixed geometry (their names must not change between runs); these
// sweeps also draw the geometry afresh.

PoolCase random_case(std::mt19937_64& rng, PoolKind kind) {
    const int rank = static_cast<int>(pick(rng, 1, 3));
    static constexpr std::int64_t kChannels[] = {3, 5, 7};
    PoolCase c{{pick(rng, 1, 2), kChannels[pick(rng, 0, 2)]}, PoolParams(rank, 1)};
    for (std::size_t i = 0; i < static_cast<std::size_t>(rank); ++i) {
        const std::int64_t k = pick(rng, 1, rank == 3 ? 3 : 5);
        const std::int64_t d = kind == PoolKind::Max ? pick(rng, 1, 3) : 1;
        const std::int64_t p = pick(rng, 0, k / 2);
        const std::int64_t extent = d * (k - 1) + 1;
        c.params.kernel[i] = k;
        c.params.dilation[i] = d;
        c.params.padding[i] = p;
        c.params.stride[i] = pick(rng, 1, 3);
        // Down to the smallest input the dilated kernel fits (inside the padding) and a little beyond.
        c.shape.push_back(pick(rng, std::max<std::int64_t>(1, extent - 2 * p), extent + (rank == 3 ? 4 : 9)));
    }
    c.params.ceil_mode = pick(rng, 0, 1) == 1;
    c.params.count_include_pad = pick(rng, 0, 1) == 1;
    return c;
}

TEST(PoolRandomSweep, MaxAndAverageMatchDefinitionsOnFreshGeometry) {
    CONVKIT_SEEDED_RNG(rng);
    for (int trial = 0; trial < 400; ++trial) {
        for (PoolKind kind : {PoolKind::Max, PoolKind::Average}) {
            const PoolCase c = random_case(rng, kind);
            SCOPED_TRACE(case_name(c) + (kind == PoolKind::Max ? " max" : " avg"));
            const Windows w = windows_of(c);
            const Tensor x = Tensor::uniform(Shape(c.shape), 0.5, 2.0, rng_seed + static_cast<std::uint64_t>(trial));
            if (kind == PoolKind::Max) {
                expect_same_values(values_of(max_pool_forward(x, c.params)), max_pool_definition(values_of(x), w),
                                   "max_pool_forward");
                const Tensor xi = testing::small_integer_tensor(Shape(c.shape), rng_seed + 7 * trial, 1);
                const Tensor g = testing::small_integer_tensor(Shape(w.output_shape(c.shape)), rng_seed + 13 * trial, 4);
                expect_same_values(values_of(max_pool_backward(g, xi, c.params)),
                                   max_pool_backward_definition(values_of(xi), values_of(g), w), "max_pool_backward");
            } else {
                const Tensor y = avg_pool_forward(x, c.params);
                ASSERT_EQ(y.shape(), Shape(w.output_shape(c.shape)));
                EXPECT_LT(relative_error(values_of(y), avg_pool_definition(values_of(x), w)), kFloat32VsFloat64Tolerance);
                const Tensor g = Tensor::uniform(y.shape(), 0.5, 2.0, rng_seed + 3 * trial, DType::Float64);
                EXPECT_LT(relative_error(values_of(avg_pool_backward(g, Shape(c.shape), c.params)),
                                         avg_pool_backward_definition(values_of(g), w)),
                          kFloat64Tolerance);
            }
            if (::testing::Test::HasFailure()) return;  // one failing geometry is enough to read
        }
    }
}

TEST(PoolRandomSweep, AdaptiveMatchesDefinitionOnFreshGeometry) {
    CONVKIT_SEEDED_RNG(rng);
    for (int trial = 0; trial < 200; ++trial) {
        const int rank = static_cast<int>(pick(rng, 1, 3));
        Index shape{pick(rng, 1, 2), pick(rng, 1, 4)};
        Index out;
        for (int i = 0; i < rank; ++i) {
            shape.push_back(pick(rng, 1, rank == 3 ? 7 : 13));
            out.push_back(pick(rng, 1, rank == 3 ? 7 : 13));  // smaller, equal or larger than the input
        }
        SCOPED_TRACE(adaptive_name({shape, out}));
        const Tensor x = Tensor::uniform(Shape(shape), 0.5, 2.0, rng_seed + static_cast<std::uint64_t>(trial),
                                         DType::Float64);
        EXPECT_LT(relative_error(values_of(adaptive_avg_pool_forward(x, out)),
                                 adaptive_avg_pool_definition(values_of(x), shape, out)),
                  kFloat64Tolerance);
        Index out_shape{shape[0], shape[1]};
        out_shape.insert(out_shape.end(), out.begin(), out.end());
        const Tensor g = Tensor::uniform(Shape(out_shape), 0.5, 2.0, rng_seed + 5 * trial, DType::Float64);
        EXPECT_LT(relative_error(values_of(adaptive_avg_pool_backward(g, Shape(shape))),
                                 adaptive_avg_pool_backward_definition(values_of(g), shape, out)),
                  kFloat64Tolerance);
        if (::testing::Test::HasFailure()) return;
    }
}

}  // namespace
}  // namespace convkit
