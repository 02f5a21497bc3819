// The host pooling reference's gradients (central differences in float64), where max pooling's
// gradient goes (overlaps, ties, NaNs), the window arithmetic's edge cases, small examples
// computed by hand, and float32 against float64. tests/test_pool_reference.cpp checks the
// reference against the definitions of tests/pool_definitions.h.
#include "pool_definitions.h"

namespace convkit {
namespace {

using namespace pool_test;

// ---- Gradients by central differences (float64) -------------------------------------------------

// loss(x) = <pool(x), r>, so d loss / d x = pool_backward(r): the library's backward against the
// numeric derivative of the library's forward.
void expect_gradient_matches(const std::function<Tensor(const Tensor&)>& forward, const Tensor& x,
                             const std::function<Tensor(const Tensor&)>& backward, std::uint64_t seed) {
    const Tensor r = Tensor::uniform(forward(x).shape(), -1.0, 1.0, seed, DType::Float64);
    const Tensor numeric =
        testing::numeric_gradient([&](const Tensor& probe) { return testing::dot(forward(probe), r); }, x, 1e-6);
    const Tensor analytic = backward(r);
    ASSERT_EQ(analytic.shape(), x.shape());
    EXPECT_LT(testing::relative_error(analytic, numeric), kGradientTolerance);
    EXPECT_GT(testing::dot(numeric, numeric), 0.0);  // a vacuous all-zero gradient proves nothing
}

TEST(PoolGradient, MaxPoolMatchesFiniteDifferences) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const std::vector<PoolCase> cases = {
        {{1, 3, 11}, P(1, {3}).set_stride(1).set_padding(1)},  // overlapping windows accumulate
        {{1, 3, 10}, P(1, {3}).set_stride(2).set_padding(1).set_dilation(2).set_ceil_mode()},
        {{1, 3, 6, 7}, P(2, {3, 2}).set_stride({2, 1}).set_padding({1, 1}).set_ceil_mode()},
        {{1, 5, 5, 6}, P(2, {2, 2}).set_stride(1).set_dilation({2, 1})},
        {{1, 3, 4, 5, 4}, P(3, {2, 3, 2}).set_stride({1, 2, 1}).set_padding({1, 1, 0}).set_ceil_mode()},
    };
    for (const PoolCase& c : cases) {
        SCOPED_TRACE(case_name(c));
        const Tensor x = distinct_tensor(c.shape, seed);
        expect_gradient_matches([&](const Tensor& t) { return max_pool_forward(t, c.params); }, x,
                                [&](const Tensor& g) { return max_pool_backward(g, x, c.params); }, seed);
    }
}

TEST(PoolGradient, AvgPoolMatchesFiniteDifferencesForEveryOptionCombination) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const std::vector<PoolCase> base = {
        {{1, 3, 8}, P(1, {3}).set_stride(2).set_padding(1)},
        {{1, 3, 6, 7}, P(2, {3, 2}).set_stride({2, 1}).set_padding(1)},
        {{1, 3, 4, 5, 4}, P(3, {3, 2, 2}).set_stride(2).set_padding(1)},
    };
    for (const PoolCase& b : base) {
        for (bool ceil_mode : {false, true}) {
            for (bool include_pad : {true, false}) {
                PoolCase c = b;
                c.params.set_ceil_mode(ceil_mode).set_count_include_pad(include_pad);
                SCOPED_TRACE(case_name(c));
                const Tensor x = Tensor::uniform(Shape(c.shape), -1.0, 1.0, seed, DType::Float64);
                expect_gradient_matches([&](const Tensor& t) { return avg_pool_forward(t, c.params); }, x,
                                        [&](const Tensor& g) { return avg_pool_backward(g, Shape(c.shape), c.params); },
                                        seed + 1);
            }
        }
    }
}

TEST(PoolGradient, AdaptiveAndGlobalAvgPoolMatchFiniteDifferences) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    for (const AdaptiveCase& c : std::vector<AdaptiveCase>{{{1, 3, 7}, {3}},        // smaller
                                                           {{1, 3, 5, 4}, {5, 4}},  // equal
                                                           {{1, 3, 3, 2}, {5, 3}},  // larger
                                                           {{1, 2, 3, 5, 4}, {2, 3, 3}}}) {
        SCOPED_TRACE(adaptive_name(c));
        const Tensor x = Tensor::uniform(Shape(c.shape), -1.0, 1.0, seed, DType::Float64);
        expect_gradient_matches([&](const Tensor& t) { return adaptive_avg_pool_forward(t, c.out); }, x,
                                [&](const Tensor& g) { return adaptive_avg_pool_backward(g, Shape(c.shape)); }, seed);
    }
    for (const Index& shape : {Index{2, 3, 7}, Index{1, 3, 4, 5}, Index{1, 2, 3, 3, 4}}) {
        SCOPED_TRACE("global " + shape_text(shape));
        const Tensor x = Tensor::uniform(Shape(shape), -1.0, 1.0, seed, DType::Float64);
        expect_gradient_matches([](const Tensor& t) { return global_avg_pool_forward(t); }, x,
                                [&](const Tensor& g) { return global_avg_pool_backward(g, Shape(shape)); }, seed);
    }
}

// ---- Max pooling backward: where the gradient goes ----------------------------------------------

TEST(MaxPoolBackward, EachOutputSendsItsGradientToExactlyOneElementAndOverlapsAccumulate) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Index shape{1, 3, 6, 7};
    const PoolParams params = P(2, {3, 3}).set_stride(1).set_padding(1);  // every element in up to 9 windows
    const Windows w = windows_of({shape, params});
    const Tensor x = distinct_tensor(shape, seed);
    const std::vector<double> xv = values_of(x);
    const Shape out_shape(w.output_shape(shape));

    // One output at a time: exactly one input element receives exactly that output's gradient,
    // and it holds the window's maximum.
    const std::vector<double> y = max_pool_definition(xv, w);
    for (std::int64_t j = 0; j < out_shape.numel(); ++j) {
        std::vector<double> one_hot(static_cast<std::size_t>(out_shape.numel()), 0.0);
        one_hot[static_cast<std::size_t>(j)] = 1.0;
        const Tensor g = Tensor::from_vector(out_shape, one_hot);
        const std::vector<double> grad = values_of(max_pool_backward(g, x, params));
        const auto receivers = std::count_if(grad.begin(), grad.end(), [](double v) { return v != 0.0; });
        ASSERT_EQ(receivers, 1) << "output " << j;
        const auto at = std::find(grad.begin(), grad.end(), 1.0);
        ASSERT_NE(at, grad.end()) << "output " << j;
        EXPECT_EQ(xv[static_cast<std::size_t>(at - grad.begin())], y[static_cast<std::size_t>(j)]) << "output " << j;
    }

    // All outputs at once: nothing is lost or duplicated, and the plane's largest element (the
    // maximum of every window that contains it) collects the sum of all those windows' gradients.
    const Tensor g = Tensor::uniform(out_shape, 0.5, 1.5, seed + 1, DType::Float64);
    const std::vector<double> grad = values_of(max_pool_backward(g, x, params));
    const std::vector<double> gv = values_of(g);
    EXPECT_NEAR(std::accumulate(grad.begin(), grad.end(), 0.0), std::accumulate(gv.begin(), gv.end(), 0.0), 1e-12);
    const auto plane0_max = std::max_element(xv.begin(), xv.begin() + 42) - xv.begin();
    const Index position{plane0_max / 7, plane0_max % 7};
    double expected = 0;
    std::int64_t windows = 0;
    for_each_index(w.out, [&](const Index& o) {
        // Window o covers rows o0 - 1 .. o0 + 1 and columns o1 - 1 .. o1 + 1.
        if (std::abs(o[0] - position[0]) <= 1 && std::abs(o[1] - position[1]) <= 1) {
            expected += gv[static_cast<std::size_t>(flat(o, w.out))];
            ++windows;
        }
    });
    EXPECT_GE(windows, 4);
    EXPECT_NEAR(grad[static_cast<std::size_t>(plane0_max)], expected, 1e-12);
}

TEST(MaxPoolBackward, TiesSendTheGradientToTheFirstMaximumInScanOrder) {
    // 1-D, k3 s1: windows [1 3 3], [3 3 2], [3 2 3] have their first maxima at 1, 1 and 2.
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{1, 3, 3, 2, 3});
    const Tensor g = Tensor::from_vector(Shape{1, 1, 3}, std::vector<double>{1, 10, 100});
    expect_same_values(values_of(max_pool_backward(g, x, P(1, {3}).set_stride(1))), {0, 11, 100, 0, 0}, "1-D");

    // 2-D, k2 s2 on a 2x4 plane: window 0 ties (0,1) with (1,0), row-major scan picks (0,1);
    // window 1 is all equal and picks its top-left element (0,2).
    const Tensor x2 = Tensor::from_vector(Shape{1, 1, 2, 4}, std::vector<double>{0, 5, 7, 7, 5, 1, 7, 7});
    const Tensor g2 = Tensor::from_vector(Shape{1, 1, 1, 2}, std::vector<double>{2, 3});
    expect_same_values(values_of(max_pool_backward(g2, x2, P(2, {2, 2}))), {0, 2, 3, 0, 0, 0, 0, 0}, "2-D");

    // 3-D, k2 on a 2x2x2 cube of equal values: scan order D, H, W picks the first element.
    const Tensor x3 = Tensor::full(Shape{1, 1, 2, 2, 2}, 4.0, DType::Float64);
    const Tensor g3 = Tensor::full(Shape{1, 1, 1, 1, 1}, 1.5, DType::Float64);
    expect_same_values(values_of(max_pool_backward(g3, x3, P(3, {2, 2, 2}))), {1.5, 0, 0, 0, 0, 0, 0, 0}, "3-D");

    // A window of -inf only (padding never counts) still routes to its first input element, as
    // PyTorch's kernels do (their index starts at the first in-bounds element).
    const Tensor xi = Tensor::full(Shape{1, 1, 3}, -kInf, DType::Float64);
    const Tensor gi = Tensor::from_vector(Shape{1, 1, 2}, std::vector<double>{1, 2});
    expect_same_values(values_of(max_pool_forward(xi, P(1, {2}).set_stride(2).set_padding(1))), {-kInf, -kInf},
                       "all -inf forward");
    expect_same_values(values_of(max_pool_backward(gi, xi, P(1, {2}).set_stride(2).set_padding(1))), {1, 2, 0},
                       "all -inf backward");
}

// ---- NaN ----------------------------------------------------------------------------------------

TEST(MaxPoolNaN, PropagatesToEveryWindowContainingItAndTakesTheGradient) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<PoolCase> cases = {
        {{1, 3, 7, 8}, P(2, {3, 3}).set_stride(1).set_padding(1)},
        // Dilation 2 with stride 2 reads only the odd rows: a NaN on an even row reaches no window.
        {{1, 3, 9, 9}, P(2, {3, 2}).set_stride(2).set_padding(1).set_dilation({2, 1}).set_ceil_mode()},
        {{1, 3, 5, 6, 4}, P(3, {2, 3, 2}).set_stride({1, 2, 1}).set_padding({1, 1, 0})},
        {{2, 5, 11}, P(1, {4}).set_stride(2).set_padding(2).set_ceil_mode()},
    };
    for (const PoolCase& c : cases) {
        SCOPED_TRACE(case_name(c));
        const Windows w = windows_of(c);
        // readers[i]: the windows that read input element i, found by walking every window's element list.
        std::vector<std::vector<std::int64_t>> readers(static_cast<std::size_t>(product(c.shape)));
        std::int64_t out_index = 0;
        for (std::int64_t plane = 0; plane < w.planes; ++plane) {
            for_each_index(w.out, [&](const Index& o) {
                for (const Index& q : window_positions(w, o)) {
                    const std::int64_t i = input_of(w, plane, q);
                    if (i >= 0) readers[static_cast<std::size_t>(i)].push_back(out_index);
                }
                ++out_index;
            });
        }
        std::vector<std::int64_t> read, unread;
        for (std::size_t i = 0; i < readers.size(); ++i) {
            (readers[i].empty() ? unread : read).push_back(static_cast<std::int64_t>(i));
        }
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const auto draw = [&](const std::vector<std::int64_t>& from) {
                return from[static_cast<std::size_t>(pick(rng, 0, static_cast<std::int64_t>(from.size()) - 1))];
            };
            // A NaN where some window reads it, and (where the geometry leaves any) one where none does.
            std::vector<std::int64_t> poison{draw(read)};
            if (!unread.empty()) poison.push_back(draw(unread));
            for (const std::int64_t poisoned : poison) {
                std::vector<double> xv = values_of(distinct_tensor(c.shape, rng()));
                xv[static_cast<std::size_t>(poisoned)] = kNaN;
                const Tensor x = Tensor::from_vector(Shape(c.shape), xv).to(dtype);
                const std::vector<double> y = values_of(max_pool_forward(x, c.params));
                const std::vector<double> clean = max_pool_definition(values_of(x), w);
                const auto& hit = readers[static_cast<std::size_t>(poisoned)];
                for (std::size_t j = 0; j < y.size(); ++j) {
                    if (std::find(hit.begin(), hit.end(), static_cast<std::int64_t>(j)) != hit.end()) {
                        EXPECT_TRUE(std::isnan(y[j])) << "output " << j << " reads the NaN at " << poisoned;
                    } else {
                        EXPECT_EQ(y[j], clean[j]) << "output " << j << " does not read the NaN at " << poisoned;
                    }
                }
                // NaN counts as maximal: every window reading it sends its gradient there.
                const std::vector<double> ones(y.size(), 1.0);
                const Tensor g = Tensor::from_vector(Shape(w.output_shape(c.shape)), ones).to(dtype);
                const std::vector<double> grad = values_of(max_pool_backward(g, x, c.params));
                EXPECT_EQ(grad[static_cast<std::size_t>(poisoned)], static_cast<double>(hit.size()));
            }
        }
    }
}

TEST(MaxPoolNaN, SeveralNaNsInOneWindowSendTheGradientToTheLast) {
    // PyTorch's kernels scan with `val > max || isnan(val)`, so the last NaN of a window wins; the
    // output is NaN and the gradient goes to exactly that one element, never to a number.
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{2, kNaN, 9, kNaN, 1});
    const Tensor y = max_pool_forward(x, P(1, {5}));
    ASSERT_EQ(y.numel(), 1);
    EXPECT_TRUE(std::isnan(y.item(0)));
    const std::vector<double> grad =
        values_of(max_pool_backward(Tensor::full(Shape{1, 1, 1}, 3.0, DType::Float64), x, P(1, {5})));
    EXPECT_EQ(grad, (std::vector<double>{0, 0, 0, 3, 0}));
}

TEST(PoolArithmetic, CeilModeWindowMayOverhangAnInputSmallerThanTheKernel) {
    // PyTorch gives max_pool1d(k=3, s=2, ceil_mode=True) of a size-2 input one output: the only
    // window starts at 0 and overhangs the input; floor mode has none and is an error.
    EXPECT_EQ(pool_output_size(2, 3, 2, 0, 1, true), 1);
    EXPECT_THROW(pool_output_size(2, 3, 2, 0, 1, false), InvalidArgument);
    const Tensor x = Tensor::from_vector(Shape{1, 1, 2}, std::vector<double>{4, 7});
    EXPECT_EQ(values_of(max_pool_forward(x, P(1, {3}).set_stride(2).set_ceil_mode())), (std::vector<double>{7}));
    // The divisor is clipped to input + padding = 2 whether or not padding counts.
    EXPECT_EQ(values_of(avg_pool_forward(x, P(1, {3}).set_stride(2).set_ceil_mode())), (std::vector<double>{5.5}));
}

// ---- The classic exercise -----------------------------------------------------------------------

TEST(PoolArithmetic, ClassicExerciseConvThenMaxPoolGives125) {
    // A 256x256 image through conv (k3, s2, p1) gives 128x128; max pooling (k4, s1, p0) of that
    // gives 128 - 4 + 1 = 125.
    EXPECT_EQ(conv_output_size(256, 3, 2, 1), 128);
    const PoolParams params = P(2, {4, 4}).set_stride(1).set_padding(0);
    EXPECT_EQ(pool_output_shape(Shape{1, 1, 128, 128}, params), (Shape{1, 1, 125, 125}));
    EXPECT_EQ(count_windows(128, 4, 1, 0, 1, false), 125);
    const Tensor y = max_pool_forward(Tensor::zeros(Shape{1, 1, 128, 128}, DType::Float32), params);
    EXPECT_EQ(y.shape(), (Shape{1, 1, 125, 125}));
}

// ---- Small examples computed by hand ------------------------------------------------------------

TEST(PoolHandExamples, MaxPool1dCeilModeKeepsAPartialLastWindow) {
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{1, 5, 2, 8, 3});
    // k2 s2: floor gives [1 5] [2 8]; ceil adds [3], which starts inside the input.
    expect_same_values(values_of(max_pool_forward(x, P(1, {2}))), {5, 8}, "floor");
    expect_same_values(values_of(max_pool_forward(x, P(1, {2}).set_ceil_mode())), {5, 8, 3}, "ceil");

    // k3 s2 p1 on 6: windows start at -1, 1, 3 and (ceil only) 5; the last covers input 5, the
    // padding at 6 and position 7 past the padding.
    const Tensor x6 = Tensor::from_vector(Shape{1, 1, 6}, std::vector<double>{1, 5, 2, 8, 3, 7});
    expect_same_values(values_of(max_pool_forward(x6, P(1, {3}).set_stride(2).set_padding(1))), {5, 8, 8}, "floor p1");
    expect_same_values(values_of(max_pool_forward(x6, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode())),
                       {5, 8, 8, 7}, "ceil p1");
    // k1 s2 ceil on 6x7 (PyTorch issue #45357): ceil((6 - 1) / 2) + 1 = 4 rows, but row 3 would
    // start at 6, past the input, so it is dropped: 3x4 and no window of padding only.
    const Tensor x67 = Tensor::uniform(Shape{1, 1, 6, 7}, -1.0, 1.0, 1, DType::Float64);
    const Tensor y67 = max_pool_forward(x67, P(2, {1, 1}).set_stride(2).set_ceil_mode());
    ASSERT_EQ(y67.shape(), (Shape{1, 1, 3, 4}));
    for (std::int64_t i = 0; i < 3; ++i) {
        for (std::int64_t j = 0; j < 4; ++j) {
            EXPECT_EQ(y67.at<double>({0, 0, i, j}), x67.at<double>({0, 0, 2 * i, 2 * j}));
        }
    }
    // Negative values: the padding is not a zero that could win.
    const Tensor neg = Tensor::from_vector(Shape{1, 1, 6}, std::vector<double>{-1, -5, -2, -8, -3, -7});
    expect_same_values(values_of(max_pool_forward(neg, P(1, {3}).set_stride(2).set_padding(1).set_ceil_mode())),
                       {-1, -2, -3, -7}, "ceil p1 negative");
}

TEST(PoolHandExamples, AvgPool1dWithPaddingCountIncludePadOrNot) {
    // k3 s2 p1 on [1 2 3 4 5]: windows [pad 1 2], [2 3 4], [4 5 pad] sum to 3, 9, 9.
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5}, std::vector<double>{1, 2, 3, 4, 5});
    const PoolParams params = P(1, {3}).set_stride(2).set_padding(1);
    expect_same_values(values_of(avg_pool_forward(x, params)), {1, 3, 3}, "count_include_pad");
    expect_same_values(values_of(avg_pool_forward(x, PoolParams(params).set_count_include_pad(false))), {1.5, 3, 4.5},
                       "exclude pad");

    // ceil mode on [1..6]: the extra window [5, 8) holds input 5, the padding at 6, and 7 past
    // it. PyTorch divides by 2 (clipped to in + p) with count_include_pad, by 1 without.
    const Tensor x6 = Tensor::from_vector(Shape{1, 1, 6}, std::vector<double>{1, 2, 3, 4, 5, 6});
    const PoolParams ceil_params = PoolParams(params).set_ceil_mode();
    expect_same_values(values_of(avg_pool_forward(x6, ceil_params)), {1, 3, 5, 3}, "ceil include");
    expect_same_values(values_of(avg_pool_forward(x6, PoolParams(ceil_params).set_count_include_pad(false))),
                       {1.5, 3, 5, 6}, "ceil exclude");
    // Backward of the same: each window hands grad / divisor to its input elements.
    const Tensor g = Tensor::from_vector(Shape{1, 1, 4}, std::vector<double>{6, 6, 6, 6});
    expect_same_values(values_of(avg_pool_backward(g, Shape{1, 1, 6}, ceil_params)), {2, 4, 2, 4, 2, 5},
                       "ceil include backward");
}

TEST(PoolHandExamples, AvgPool2dCeilModeDivisorBelowKernelArea) {
    // 5x5 plane 1..25, k2 s2 ceil: 3x3 windows; the right column and bottom row are cut by the
    // input edge (no padding), so their divisors are 2 and the corner's is 1 in either mode.
    std::vector<double> v(25);
    std::iota(v.begin(), v.end(), 1.0);
    const Tensor x = Tensor::from_vector(Shape{1, 1, 5, 5}, v);
    const std::vector<double> expected{4, 6, 7.5, 14, 16, 17.5, 21.5, 23.5, 25};
    expect_same_values(values_of(avg_pool_forward(x, P(2, {2, 2}).set_ceil_mode())), expected, "include");
    expect_same_values(values_of(avg_pool_forward(x, P(2, {2, 2}).set_ceil_mode().set_count_include_pad(false))),
                       expected, "exclude");

    // 4x4 plane 1..16, k3 s2 p1 ceil: windows start at -1, 1, 3 per dim; the last one covers
    // input 3, padding 4 and position 5 past the padding, so its divisor per dim is 2 with
    // count_include_pad (not 3) and 1 without. Window sums by rows {0,1}, {1,2,3}, {3} x
    // columns likewise: 14 30 12 / 57 99 36 / 27 45 16.
    std::vector<double> v16(16);
    std::iota(v16.begin(), v16.end(), 1.0);
    const Tensor x16 = Tensor::from_vector(Shape{1, 1, 4, 4}, v16);
    const PoolParams params = P(2, {3, 3}).set_stride(2).set_padding(1).set_ceil_mode();
    expect_same_values(values_of(avg_pool_forward(x16, params)), {14.0 / 9, 30.0 / 9, 2, 57.0 / 9, 11, 6, 4.5, 7.5, 4},
                       "k3 s2 p1 include");
    expect_same_values(values_of(avg_pool_forward(x16, PoolParams(params).set_count_include_pad(false))),
                       {3.5, 5, 6, 9.5, 11, 12, 13.5, 15, 16}, "k3 s2 p1 exclude");
}

TEST(PoolHandExamples, DilatedMaxPool) {
    // k3 d2 s1 on 8: windows read {0,2,4}, {1,3,5}, {2,4,6}, {3,5,7}.
    const Tensor x = Tensor::from_vector(Shape{1, 1, 8}, std::vector<double>{3, 1, 4, 1, 5, 9, 2, 6});
    expect_same_values(values_of(max_pool_forward(x, P(1, {3}).set_stride(1).set_dilation(2))), {5, 9, 5, 9}, "1-D");
    // With p1 s2: windows read {-1,1,3}, {1,3,5}, {3,5,7}.
    expect_same_values(values_of(max_pool_forward(x, P(1, {3}).set_stride(2).set_padding(1).set_dilation(2))),
                       {1, 9, 9}, "1-D p1");

    // 2-D, k2 d2 s1 on 4x4: window (i, j) reads rows i, i+2 and columns j, j+2.
    const Tensor x2 =
        Tensor::from_vector(Shape{1, 1, 4, 4}, std::vector<double>{1, 8, 3, 2, 7, 0, 6, 4, 5, 9, -1, 10, 11, 2, 12, 0});
    const PoolParams params = P(2, {2, 2}).set_stride(1).set_dilation(2);
    expect_same_values(values_of(max_pool_forward(x2, params)), {5, 10, 12, 4}, "2-D");
    const Tensor g = Tensor::from_vector(Shape{1, 1, 2, 2}, std::vector<double>{1, 2, 3, 4});
    expect_same_values(values_of(max_pool_backward(g, x2, params)), {0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 2, 0, 0, 3, 0},
                       "2-D backward");

    // k2 d3 p1 on 2: the only window reads positions -1 and 2, both outside the input; PyTorch
    // gives -inf there (max over nothing).
    const Tensor x3 = Tensor::from_vector(Shape{1, 1, 2}, std::vector<double>{5, 7});
    expect_same_values(values_of(max_pool_forward(x3, P(1, {2}).set_stride(1).set_padding(1).set_dilation(3))), {-kInf},
                       "window in padding only");
}

// ---- float32 and float64 agree ------------------------------------------------------------------

TEST(PoolDTypes, Float32AndFloat64Agree) {
    const std::uint64_t seed = fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Index shape{2, 3, 9, 10};
    const Tensor x64 = Tensor::uniform(Shape(shape), -1.0, 1.0, seed, DType::Float64);
    const Tensor x32 = x64.to(DType::Float32);
    const auto agree = [](const Tensor& a32, const Tensor& a64, const char* what) {
        EXPECT_EQ(a32.dtype(), DType::Float32) << what;
        EXPECT_LT(testing::relative_error(a32, a64), kFloat32VsFloat64Tolerance) << what;
    };
    const PoolParams max_params = P(2, {3, 3}).set_stride(2).set_padding(1).set_dilation({1, 2}).set_ceil_mode();
    const PoolParams avg_params =
        P(2, {3, 2}).set_stride(2).set_padding(1).set_ceil_mode().set_count_include_pad(false);
    agree(max_pool_forward(x32, max_params), max_pool_forward(x64, max_params), "max forward");
    agree(avg_pool_forward(x32, avg_params), avg_pool_forward(x64, avg_params), "avg forward");
    agree(adaptive_avg_pool_forward(x32, {4, 3}), adaptive_avg_pool_forward(x64, {4, 3}), "adaptive forward");
    agree(global_avg_pool_forward(x32), global_avg_pool_forward(x64), "global forward");

    const Tensor gm = Tensor::uniform(pool_output_shape(Shape(shape), max_params), -1.0, 1.0, seed + 1, DType::Float64);
    agree(max_pool_backward(gm.to(DType::Float32), x32, max_params), max_pool_backward(gm, x64, max_params),
          "max backward");
    const Tensor ga = Tensor::uniform(pool_output_shape(Shape(shape), avg_params, PoolKind::Average), -1.0, 1.0,
                                      seed + 2, DType::Float64);
    agree(avg_pool_backward(ga.to(DType::Float32), Shape(shape), avg_params),
          avg_pool_backward(ga, Shape(shape), avg_params), "avg backward");
    const Tensor gd = Tensor::uniform(Shape{2, 3, 4, 3}, -1.0, 1.0, seed + 3, DType::Float64);
    agree(adaptive_avg_pool_backward(gd.to(DType::Float32), Shape(shape)), adaptive_avg_pool_backward(gd, Shape(shape)),
          "adaptive backward");
}

}  // namespace
}  // namespace convkit
