// The autograd engine and the differentiable ops that exist so far (binary elementwise with
// broadcasting, reshape/to/clone, convolution, transposed convolution, pooling).
#include <gtest/gtest.h>

#include "backend_api/broadcast.h"
#include "convkit/convkit.h"
#include "test_util.h"

namespace convkit {
namespace {
using namespace convkit::testing;

constexpr double kGradTolerance = 1e-6;  // float64 central differences, eps 1e-6

Tensor random64(const Shape& shape, std::uint64_t seed) { return Tensor::uniform(shape, -1, 1, seed, DType::Float64); }

// Values away from 0 so division and ReLU-like kinks are far from the probe.
Tensor away_from_zero(const Shape& shape, std::uint64_t seed) {
    return Tensor::uniform(shape, 0.5, 2.0, seed, DType::Float64);
}

TEST(Autograd, LeafGradientOfAProductIsTheOtherFactor) {
    Tensor a = Tensor::from_values(Shape{3}, {1, 2, 3}, DType::Float64).set_requires_grad();
    Tensor b = Tensor::from_values(Shape{3}, {4, 5, 6}, DType::Float64);
    Tensor y = a * b;
    EXPECT_TRUE(y.requires_grad());
    EXPECT_EQ(y.grad_fn_name(), "mul");
    EXPECT_FALSE(y.is_leaf());
    y.backward(Tensor::from_values(Shape{3}, {1, 10, 100}, DType::Float64));
    EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{4, 50, 600}));
    EXPECT_FALSE(b.grad().defined());  // b does not require grad
}

TEST(Autograd, BinaryOpsWithBroadcastingMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<std::pair<Shape, Shape>> shapes = {
        {Shape{2, 3, 4, 5}, Shape{3, 1, 1}}, {Shape{4, 1}, Shape{1, 5}}, {Shape{6}, Shape{}},
        {Shape{2, 3}, Shape{2, 3}},          {Shape{1, 3, 1}, Shape{2, 1, 4}}};
    for (const auto& [sa, sb] : shapes) {
        SCOPED_TRACE(sa.to_string() + " op " + sb.to_string());
        const Tensor a = random64(sa, rng());
        const Tensor b = away_from_zero(sb, rng());
        for (auto op : {&add, &sub, &mul, &div}) {
            EXPECT_LT(gradcheck_error([op](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, {a, b}, rng()),
                      kGradTolerance);
        }
    }
}

TEST(Autograd, BroadcastShapesFollowNumPyRules) {
    EXPECT_EQ((Tensor::zeros(Shape{2, 3, 4}) + Tensor::zeros(Shape{4})).shape(), (Shape{2, 3, 4}));
    EXPECT_EQ((Tensor::zeros(Shape{5, 1}) * Tensor::zeros(Shape{1, 6})).shape(), (Shape{5, 6}));
    EXPECT_EQ((Tensor::zeros(Shape{}) - Tensor::zeros(Shape{2, 2})).shape(), (Shape{2, 2}));
    try {
        (void)add(Tensor::zeros(Shape{2, 3}), Tensor::zeros(Shape{4}));
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("add: shapes [2, 3] and [4] cannot be broadcast"), std::string::npos)
            << e.what();
    }
}

// The broadcast and sum-to-shape geometries merge dims that index alike; every element must keep
// its offsets. Checked against offsets computed from the unmerged shapes, element by element.
TEST(Autograd, BroadcastGeometriesMergeDimsAndKeepEveryOffset) {
    // The row-major offset in `operand` (right-aligned against `out`, 1 where it is broadcast) of
    // the element of `out` at flat index i.
    const auto naive_offset = [](const Shape& out, const Shape& operand, std::int64_t i) {
        std::int64_t offset = 0, stride = 1;
        for (int d = out.rank() - 1; d >= 0; --d) {
            const std::int64_t coordinate = i % out[d];
            i /= out[d];
            const int od = d - (out.rank() - operand.rank());
            if (od < 0) continue;
            if (operand[od] != 1) offset += coordinate * stride;
            stride *= operand[od];
        }
        return offset;
    };
    const std::vector<std::pair<Shape, Shape>> pairs = {{Shape{4, 6, 3, 5}, Shape{1, 6, 1, 1}},
                                                        {Shape{4, 6, 3, 5}, Shape{6, 1, 1}},
                                                        {Shape{2, 3, 4}, Shape{4}},
                                                        {Shape{5, 1}, Shape{1, 6}},
                                                        {Shape{2, 1, 3, 1, 4}, Shape{2, 5, 3, 1, 1}},
                                                        {Shape{3, 4}, Shape{3, 4}},
                                                        {Shape{}, Shape{2, 2}}};
    for (const auto& [a, b] : pairs) {
        SCOPED_TRACE(a.to_string() + " and " + b.to_string());
        const detail::BroadcastGeometry g = detail::broadcast_geometry("test", a, b);
        const Shape out = detail::broadcast_shape("test", a, b);
        ASSERT_EQ(g.count, out.numel());
        for (std::int64_t i = 0; i < g.count; ++i) {
            const detail::OperandOffsets o = detail::broadcast_offsets(g, i);
            ASSERT_EQ(o.a, naive_offset(out, a, i)) << i;
            ASSERT_EQ(o.b, naive_offset(out, b, i)) << i;
        }
        // Each full element is a term of exactly one reduced element, the one it broadcasts from.
        const detail::ReduceToShapeGeometry r = detail::reduce_to_shape_geometry("test", out, b);
        std::vector<int> seen(static_cast<std::size_t>(out.numel()), 0);
        for (std::int64_t j = 0; j < r.count; ++j) {
            for (std::int64_t t = 0; t < r.terms; ++t) {
                const std::int64_t source = detail::reduce_to_shape_source(r, j, t);
                ASSERT_LT(source, out.numel());
                ++seen[static_cast<std::size_t>(source)];
                ASSERT_EQ(naive_offset(out, b, source), j) << "term " << t << " of " << j;
            }
        }
        EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
    }
    // The bias-like case divides by 3 extents, not 4: N, C and H * W.
    const detail::BroadcastGeometry bias = detail::broadcast_geometry("test", Shape{4, 6, 3, 5}, Shape{1, 6, 1, 1});
    EXPECT_EQ(std::count_if(bias.out.begin(), bias.out.end(), [](std::int64_t n) { return n != 1; }), 3);
    EXPECT_EQ(bias.out.back(), 15);
    const detail::ReduceToShapeGeometry summed =
        detail::reduce_to_shape_geometry("test", Shape{4, 6, 3, 5}, Shape{6, 1, 1});
    EXPECT_EQ(std::count_if(summed.full.begin(), summed.full.end(), [](std::int64_t n) { return n != 1; }), 3);
    // Same shapes are one dim.
    EXPECT_EQ(detail::broadcast_geometry("test", Shape{3, 4}, Shape{3, 4}).out.back(), 12);
}

TEST(Autograd, BinaryValuesAreExactOnSmallIntegers) {
    const Tensor a = Tensor::from_values(Shape{2, 2}, {1, -2, 3, 4}, DType::Float64);
    const Tensor b = Tensor::from_values(Shape{2}, {2, -4}, DType::Float64);
    EXPECT_EQ((a + b).to_vector(), (std::vector<double>{3, -6, 5, 0}));
    EXPECT_EQ((a - b).to_vector(), (std::vector<double>{-1, 2, 1, 8}));
    EXPECT_EQ((a * b).to_vector(), (std::vector<double>{2, 8, 6, -16}));
    EXPECT_EQ((a / b).to_vector(), (std::vector<double>{0.5, 0.5, 1.5, -1}));
    EXPECT_EQ(sum_to_shape(a, Shape{2}).to_vector(), (std::vector<double>{4, 2}));
    EXPECT_EQ(sum_to_shape(a, Shape{2, 1}).to_vector(), (std::vector<double>{-1, 7}));
    EXPECT_EQ(sum_to_shape(a, Shape{}).to_vector(), (std::vector<double>{6}));
}

TEST(Autograd, ATensorUsedTwiceGetsTheSumOfBothGradients) {
    Tensor a = Tensor::from_values(Shape{2}, {3, -1}, DType::Float64).set_requires_grad();
    Tensor y = a * a + a;  // dy/da = 2a + 1
    y.backward(Tensor::full(Shape{2}, 1.0, DType::Float64));
    EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{7, -1}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCallsUntilCleared) {
    Tensor a = Tensor::from_values(Shape{1}, {2}, DType::Float64).set_requires_grad();
    (a * a).backward();
    (a * a).backward();
    EXPECT_EQ(a.grad().item(0), 8.0);
    a.clear_grad();
    EXPECT_FALSE(a.grad().defined());
    (a * a).backward();
    EXPECT_EQ(a.grad().item(0), 4.0);
}

TEST(Autograd, ABranchThatReceivesNoGradientDoesNotBlockTheRest) {
    // c feeds both y (used) and an unused branch z; backward from y must still reach a.
    Tensor a = Tensor::from_values(Shape{1}, {3}, DType::Float64).set_requires_grad();
    Tensor c = a * a;
    Tensor z = c * c;  // never used
    Tensor y = c + a;
    y.backward();
    EXPECT_EQ(a.grad().item(0), 7.0);  // 2a + 1
    (void)z;
}

TEST(Autograd, RunningAGraphTwiceNeedsRetainGraph) {
    Tensor a = Tensor::from_values(Shape{1}, {2}, DType::Float64).set_requires_grad();
    Tensor y = a * a;
    y.backward(Tensor::full(Shape{1}, 1.0, DType::Float64), /*retain_graph=*/true);
    y.backward();
    EXPECT_EQ(a.grad().item(0), 8.0);
    try {
        y.backward();
        FAIL() << "expected an error for a freed graph";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
    }
}

TEST(Autograd, ChangingASavedTensorInPlaceMakesBackwardThrow) {
    Tensor a = Tensor::from_values(Shape{2}, {1, 2}, DType::Float64).set_requires_grad();
    Tensor b = Tensor::from_values(Shape{2}, {3, 4}, DType::Float64);
    Tensor y = a * b;  // saves b
    b.fill_(0);
    try {
        y.backward(Tensor::full(Shape{2}, 1.0, DType::Float64));
        FAIL() << "expected an error for a modified saved tensor";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("mul_backward"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("modified in place"), std::string::npos) << e.what();
    }
}

TEST(Autograd, InPlaceWritesToParametersNeedNoGradMode) {
    Tensor w = Tensor::zeros(Shape{3}, DType::Float64).set_requires_grad();
    EXPECT_THROW(w.fill_(1.0), InvalidArgument);
    EXPECT_THROW(w.copy_(Tensor::zeros(Shape{3}, DType::Float64)), InvalidArgument);
    {
        NoGradGuard no_grad;
        w.fill_(1.0);
    }
    EXPECT_EQ(w.item(2), 1.0);
}

TEST(Autograd, NoGradModeRecordsNothingAndGuardsNest) {
    Tensor a = Tensor::from_values(Shape{1}, {2}, DType::Float64).set_requires_grad();
    EXPECT_TRUE(grad_mode_enabled());
    {
        NoGradGuard no_grad;
        EXPECT_FALSE(grad_mode_enabled());
        Tensor y = a * a;
        EXPECT_FALSE(y.requires_grad());
        {
            EnableGradGuard enable;
            EXPECT_TRUE((a * a).requires_grad());
        }
        EXPECT_FALSE(grad_mode_enabled());
        EXPECT_THROW(y.backward(), InvalidArgument);
    }
    EXPECT_TRUE(grad_mode_enabled());
}

TEST(Autograd, DetachCutsTheGraphAndSharesTheData) {
    Tensor a = Tensor::from_values(Shape{2}, {1, 2}, DType::Float64).set_requires_grad();
    Tensor d = (a * a).detach();
    EXPECT_FALSE(d.requires_grad());
    EXPECT_TRUE(d.is_leaf());
    EXPECT_EQ(d.to_vector(), (std::vector<double>{1, 4}));
    Tensor y = d * a;  // d is a constant here: dy/da = d
    y.backward(Tensor::full(Shape{2}, 1.0, DType::Float64));
    EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{1, 4}));
}

TEST(Autograd, BackwardOfANonScalarNeedsAnExplicitGradient) {
    Tensor a = Tensor::zeros(Shape{2, 2}, DType::Float64).set_requires_grad();
    Tensor y = a * a;
    EXPECT_THROW(y.backward(), InvalidArgument);
    EXPECT_THROW(y.backward(Tensor::zeros(Shape{4}, DType::Float64)), InvalidArgument);
    EXPECT_THROW(Tensor::zeros(Shape{1}).backward(), InvalidArgument);  // requires no grad
}

TEST(Autograd, OnlyFloatingLeavesCanRequireGradAndOnlyLeavesCanBeSwitched) {
    EXPECT_THROW(Tensor::zeros(Shape{2}, DType::Int64).set_requires_grad(), InvalidArgument);
    Tensor a = Tensor::zeros(Shape{2}, DType::Float64).set_requires_grad();
    Tensor y = a + a;
    EXPECT_THROW(y.set_requires_grad(false), InvalidArgument);
    Tensor alias = a;  // copies share autograd state, as LibTorch handles do
    alias.set_requires_grad(false);
    EXPECT_FALSE(a.requires_grad());
}

TEST(Autograd, ReshapeCloneAndDtypeConversionAreDifferentiable) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random64(Shape{2, 6}, rng());
    const Tensor w = random64(Shape{3, 4}, rng());
    EXPECT_LT(gradcheck_error([](const std::vector<Tensor>& in) { return in[0].reshape(Shape{3, 4}).clone() * in[1]; },
                              {x, w}, rng()),
              kGradTolerance);
    Tensor a = Tensor::from_values(Shape{2}, {1, 2}, DType::Float64).set_requires_grad();
    Tensor y = a.to(DType::Float32) * Tensor::from_values(Shape{2}, {3, 5});
    y.backward(Tensor::full(Shape{2}, 1.0));
    EXPECT_EQ(a.grad().dtype(), DType::Float64);
    EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{3, 5}));
}

TEST(Autograd, ConvolutionGradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(2).set_stride({2, 1}).set_padding({1, 0}).set_dilation({1, 2}).set_groups(2);
    const Tensor x = random64(Shape{2, 4, 6, 7}, rng());
    const Tensor w = random64(Shape{6, 2, 3, 2}, rng());
    const Tensor b = random64(Shape{6}, rng());
    EXPECT_LT(gradcheck_error([&](const std::vector<Tensor>& in) { return conv_forward(in[0], in[1], in[2], params); },
                              {x, w, b}, rng()),
              kGradTolerance);
}

TEST(Autograd, TransposedConvolutionGradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = ConvParams(1).set_stride(2).set_padding(1).set_output_padding(1);
    const Tensor x = random64(Shape{2, 3, 5}, rng());
    const Tensor w = random64(Shape{3, 2, 3}, rng());
    const Tensor b = random64(Shape{2}, rng());
    EXPECT_LT(gradcheck_error(
                  [&](const std::vector<Tensor>& in) { return conv_transpose_forward(in[0], in[1], in[2], params); },
                  {x, w, b}, rng()),
              kGradTolerance);
}

TEST(Autograd, ConvPoolChainMatchesCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams conv = ConvParams(2).set_padding(1);
    const PoolParams max_pool(2, 2);
    const PoolParams avg_pool = PoolParams(2, 3).set_stride(1).set_padding(1);
    const Tensor x = random64(Shape{2, 2, 6, 6}, rng());
    const Tensor w = random64(Shape{3, 2, 3, 3}, rng());
    const Tensor scale = away_from_zero(Shape{3, 1, 1}, rng());
    auto f = [&](const std::vector<Tensor>& in) {
        Tensor y = conv_forward(in[0], in[1], conv);
        y = max_pool_forward(y, max_pool) * in[2];
        y = avg_pool_forward(y, avg_pool);
        return adaptive_avg_pool_forward(y, {2, 1});
    };
    EXPECT_LT(gradcheck_error(f, {x, w, scale}, rng()), kGradTolerance);
    // The graph names its ops and ends in the last one.
    Tensor leaf = x.detach().clone().set_requires_grad();
    EXPECT_EQ(f({leaf, w, scale}).grad_fn_name(), "adaptive_avg_pool2d");
}

}  // namespace
}  // namespace convkit
