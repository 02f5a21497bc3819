// Losses on the host: cross-entropy (label smoothing, ignore_index, per pixel, every
// reduction), MSE and BCE with logits (pos_weight) against PyTorch's numbers, closed forms and
// hand-computed cases; gradients by central differences for every option; argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {
using namespace convkit::testing;

constexpr double kGradTolerance = 1e-6;  // float64 central differences (eps 1e-6), as test_autograd
constexpr double kPyTorchTolerance = 1e-14;

Tensor values64(const Shape& shape, std::initializer_list<double> values) {
    return Tensor::from_values(shape, values, DType::Float64);
}
Tensor indices(const Shape& shape, const std::vector<std::int64_t>& values) {
    return Tensor::from_vector(shape, values);
}

void expect_values_near(const Tensor& t, const std::vector<double>& expected, double tolerance) {
    const std::vector<double> got = t.to_vector();
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], tolerance) << "element " << i;
}

template <typename F>
void expect_invalid_argument(F f, const std::string& fragment) {
    try {
        f();
        FAIL() << "expected InvalidArgument containing \"" << fragment << "\"";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}

// The [3, 4] logits the PyTorch numbers below were computed from:
// logits = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.5, 0.25, -0.5, 3.0], [-2.0, 1.0, 0.75, -0.25]],
//                       dtype=torch.float64); t = torch.tensor([0, 3, 1])
Tensor matrix_logits() {
    return values64(Shape{3, 4}, {0.5, -1.0, 2.0, 0.0, 1.5, 0.25, -0.5, 3.0, -2.0, 1.0, 0.75, -0.25});
}

// ---- cross-entropy ----

TEST(CrossEntropy, MatchesPyTorchForEveryReduction) {
    const Tensor logits = matrix_logits();
    const Tensor t = indices(Shape{3}, {0, 3, 1});
    // F.cross_entropy(logits, t, reduction=r)
    expect_values_near(cross_entropy(logits, t, 0.0, Reduction::Mean), {0.9556661774821542}, kPyTorchTolerance);
    expect_values_near(cross_entropy(logits, t, 0.0, Reduction::Sum), {2.8669985324464626}, kPyTorchTolerance);
    expect_values_near(cross_entropy(logits, t, 0.0, Reduction::None),
                       {1.842349582389822, 0.2755503331752921, 0.7490986168813489}, kPyTorchTolerance);
    // F.cross_entropy(logits, t, reduction=r, label_smoothing=0.1)
    expect_values_near(cross_entropy(logits, t, 0.1), {1.0619161774821544}, kPyTorchTolerance);
    expect_values_near(cross_entropy(logits, t, 0.1, Reduction::Sum), {3.185748532446463}, kPyTorchTolerance);
    expect_values_near(cross_entropy(logits, t, 0.1, Reduction::None),
                       {1.854849582389822, 0.46930033317529213, 0.861598616881349}, kPyTorchTolerance);
    EXPECT_EQ(cross_entropy(logits, t).shape(), Shape{});
    EXPECT_EQ(cross_entropy(logits, t, 0.0, Reduction::None).shape(), (Shape{3}));
}

TEST(CrossEntropy, IgnoreIndexMatchesPyTorch) {
    const Tensor logits = matrix_logits();
    const Tensor t = indices(Shape{3}, {0, -100, 1});
    // F.cross_entropy(logits, torch.tensor([0, -100, 1])), reduction='none', label_smoothing=0.2
    expect_values_near(cross_entropy(logits, t), {1.2957240996355854}, kPyTorchTolerance);
    expect_values_near(cross_entropy(logits, t, 0.0, Reduction::None), {1.842349582389822, 0.0, 0.7490986168813489},
                       kPyTorchTolerance);
    expect_values_near(cross_entropy(logits, t, 0.2), {1.4207240996355854}, kPyTorchTolerance);
    // F.cross_entropy(logits, torch.tensor([2, 3, 2]), label_smoothing=0.3, ignore_index=2): a class
    // index may be the ignored one
    expect_values_near(cross_entropy(logits, indices(Shape{3}, {2, 3, 2}), 0.3, Reduction::Mean, 2),
                       {0.8568003331752921}, kPyTorchTolerance);
    // Every target ignored: Mean is 0 / 0 = nan, Sum is 0 (as F.cross_entropy).
    const Tensor all_ignored = indices(Shape{3}, {-100, -100, -100});
    EXPECT_TRUE(std::isnan(cross_entropy(logits, all_ignored).item(0)));
    EXPECT_EQ(cross_entropy(logits, all_ignored, 0.1, Reduction::Sum).item(0), 0.0);
}

// lp = torch.arange(24, dtype=torch.float64).reshape(2, 3, 2, 2).sin() * 2
// tp = torch.tensor([[[0, 2], [1, 1]], [[2, 0], [-100, 1]]])
Tensor pixel_logits() {
    std::vector<double> v(24);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<double>(i)) * 2;
    return Tensor::from_vector(Shape{2, 3, 2, 2}, v);
}
Tensor pixel_targets() { return indices(Shape{2, 2, 2}, {0, 2, 1, 1, 2, 0, -100, 1}); }

TEST(CrossEntropy, PerPixelMatchesPyTorch) {
    const Tensor logits = pixel_logits();
    const Tensor t = pixel_targets();
    // F.cross_entropy(lp, tp); F.cross_entropy(lp, tp, label_smoothing=0.25, reduction='sum');
    // F.cross_entropy(lp, tp, reduction='none')
    expect_values_near(cross_entropy(logits, t), {1.2729354289603911}, kPyTorchTolerance);
    expect_values_near(cross_entropy(logits, t, 0.25, Reduction::Sum), {9.922048042569246}, kPyTorchTolerance);
    const Tensor none = cross_entropy(logits, t, 0.0, Reduction::None);
    EXPECT_EQ(none.shape(), (Shape{2, 2, 2}));
    expect_values_near(none,
                       {2.1345885856492126, 1.2309666315939356, 2.514966509370452, 0.3312879835135946,
                        0.13596377559065803, 1.2129079541405894, 0.0, 1.3498665628642974},
                       kPyTorchTolerance);
}

TEST(CrossEntropy, UnbatchedLogitsTakeAScalarTarget) {
    // F.cross_entropy(torch.tensor([0.5, -1.0, 2.0]), torch.tensor(2), label_smoothing=0.1)
    const Tensor loss = cross_entropy(values64(Shape{3}, {0.5, -1.0, 2.0}), indices(Shape{}, {2}), 0.1);
    expect_values_near(loss, {0.391311296657157}, kPyTorchTolerance);
}

TEST(CrossEntropy, ClosedFormsHold) {
    // Equal logits: every class has probability 1/C, so the loss is log C whatever the target and
    // the smoothing (the smoothed term is the mean of log C over classes).
    for (double eps : {0.0, 0.3, 1.0}) {
        const Tensor uniform = Tensor::full(Shape{4, 7}, 2.5, DType::Float64);
        const Tensor t = indices(Shape{4}, {0, 6, 3, 3});
        EXPECT_NEAR(cross_entropy(uniform, t, eps).item(0), std::log(7.0), 1e-15) << "eps " << eps;
    }
    // Two classes with logits [0, ln 3]: p = [1/4, 3/4]; -log p_1 = log(4/3); with eps,
    // (1 - eps) log(4/3) + eps (log 4 + log(4/3)) / 2.
    const Tensor x = values64(Shape{1, 2}, {0.0, std::log(3.0)});
    const Tensor t = indices(Shape{1}, {1});
    EXPECT_NEAR(cross_entropy(x, t).item(0), std::log(4.0 / 3.0), 1e-15);
    EXPECT_NEAR(cross_entropy(x, t, 0.5).item(0),
                0.5 * std::log(4.0 / 3.0) + 0.25 * (std::log(4.0) + std::log(4.0 / 3.0)), 1e-15);
    // Mean is Sum over the counted rows.
    const Tensor logits = pixel_logits();
    EXPECT_NEAR(cross_entropy(logits, pixel_targets(), 0.1, Reduction::Mean).item(0),
                cross_entropy(logits, pixel_targets(), 0.1, Reduction::Sum).item(0) / 7.0, 1e-15);
}

TEST(CrossEntropy, LargeLogitsStayFinite) {
    const Tensor x = values64(Shape{1, 3}, {1000.0, 1001.0, 1002.0});
    const Tensor t = indices(Shape{1}, {0});
    const Tensor shifted = values64(Shape{1, 3}, {0.0, 1.0, 2.0});
    EXPECT_NEAR(cross_entropy(x, t).item(0), cross_entropy(shifted, t).item(0), 1e-12);
    const Tensor x32 = Tensor::from_values(Shape{1, 3}, {1000.0, 1001.0, 1002.0}, DType::Float32);
    EXPECT_NEAR(cross_entropy(x32, t).item(0), cross_entropy(shifted, t).item(0), 1e-5);
}

TEST(CrossEntropy, MinusInfinityLogitsFollowPyTorch) {
    // li = torch.tensor([[0., -inf, 1.]]); F.cross_entropy(li, torch.tensor([2])) = 0.3133...;
    // with label_smoothing=0.1 it is inf (the smoothed term averages -log_softmax = inf).
    const Tensor li = values64(Shape{1, 3}, {0.0, -std::numeric_limits<double>::infinity(), 1.0});
    const Tensor t = indices(Shape{1}, {2});
    EXPECT_NEAR(cross_entropy(li, t).item(0), 0.31326168751822286, kPyTorchTolerance);
    EXPECT_EQ(cross_entropy(li, t, 0.1).item(0), std::numeric_limits<double>::infinity());
}

TEST(CrossEntropy, GradientMatchesPyTorchAndTheClosedForm) {
    Tensor logits = matrix_logits().set_requires_grad();
    const Tensor t = indices(Shape{3}, {0, 3, 1});
    // lr = logits.requires_grad_(); F.cross_entropy(lr, t, label_smoothing=0.1).backward(); lr.grad
    cross_entropy(logits, t, 0.1).backward();
    expect_values_near(logits.grad(),
                       {-0.2555184301616734, 0.00345126446958296, 0.22836664096205816, 0.023700524730032414,
                        0.04813006759842615, 0.007843701880655885, -0.0006918429757312437, -0.05528192650335074,
                        -0.00048701536267722846, -0.15073582402264923, 0.11440373032793047, 0.03681910905739613},
                       kPyTorchTolerance);
    // Mean without smoothing: (softmax - one_hot) / N.
    logits.clear_grad();
    cross_entropy(logits, t).backward();
    const std::vector<double> p = softmax(matrix_logits(), 1).to_vector();
    const std::vector<double> g = logits.grad().to_vector();
    for (std::size_t r = 0; r < 3; ++r)
        for (std::size_t c = 0; c < 4; ++c) {
            const double one_hot = static_cast<std::int64_t>(c) == t.item(static_cast<std::int64_t>(r)) ? 1.0 : 0.0;
            EXPECT_NEAR(g[r * 4 + c], (p[r * 4 + c] - one_hot) / 3.0, 1e-16);
        }
}

struct CrossEntropyCase {
    Shape logits;
    double label_smoothing;
    Reduction reduction;
    std::int64_t ignore_index;
};

TEST(CrossEntropy, GradientsMatchCentralDifferencesForEveryOption) {
    CONVKIT_SEEDED_RNG(rng);
    std::vector<CrossEntropyCase> cases;
    for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None})
        for (double eps : {0.0, 0.2})
            for (const Shape& shape : {Shape{5, 4}, Shape{2, 3, 3, 2}, Shape{2, 3, 4}, Shape{4}, Shape{3, 1}})
                for (std::int64_t ignore : {-100, 1}) cases.push_back({shape, eps, reduction, ignore});
    for (const CrossEntropyCase& c : cases) {
        SCOPED_TRACE(c.logits.to_string() + " eps " + std::to_string(c.label_smoothing) + " " +
                     reduction_name(c.reduction) + " ignore " + std::to_string(c.ignore_index));
        const Tensor logits = Tensor::uniform(c.logits, -3, 3, rng(), DType::Float64);
        const int class_dim = c.logits.rank() == 1 ? 0 : 1;
        std::vector<std::int64_t> target_dims = c.logits.to_vector();
        target_dims.erase(target_dims.begin() + class_dim);
        const Shape target_shape(target_dims);
        std::vector<std::int64_t> t(static_cast<std::size_t>(target_shape.numel()));
        for (auto& v : t) v = pick(rng, 0, c.logits[class_dim] - 1);
        if (t.size() > 1 && c.ignore_index < c.logits[class_dim]) t[0] = c.ignore_index;  // one ignored row
        const Tensor targets = indices(target_shape, t);
        const double error = gradcheck_error(
            [&](const std::vector<Tensor>& in) {
                return cross_entropy(in[0], in[1], c.label_smoothing, c.reduction, c.ignore_index);
            },
            {logits, targets}, rng());
        EXPECT_LT(error, kGradTolerance);
    }
}

TEST(CrossEntropy, Float32MatchesFloat64) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor logits = Tensor::uniform(Shape{6, 5, 3}, -4, 4, rng(), DType::Float64).to(DType::Float32);
    std::vector<std::int64_t> t(18);
    for (auto& v : t) v = pick(rng, 0, 4);
    const Tensor targets = indices(Shape{6, 3}, t);
    for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        const Tensor l64 = cross_entropy(logits.to(DType::Float64), targets, 0.1, reduction);
        const Tensor l32 = cross_entropy(logits, targets, 0.1, reduction);
        EXPECT_EQ(l32.dtype(), DType::Float32);
        EXPECT_LT(relative_error(l32, l64), kFloat32VsFloat64Tolerance) << reduction_name(reduction);
    }
}

TEST(CrossEntropy, TargetsNeedNoGradientAndGetNone) {
    Tensor logits = matrix_logits().set_requires_grad();
    const Tensor t = indices(Shape{3}, {0, 3, 1});
    const Tensor loss = cross_entropy(logits, t);
    EXPECT_EQ(loss.grad_fn_name(), "cross_entropy");
    loss.backward();
    EXPECT_TRUE(logits.grad().defined());
    EXPECT_FALSE(t.grad().defined());
    // No input requires grad: nothing is recorded.
    EXPECT_EQ(cross_entropy(matrix_logits(), t).grad_fn_name(), "");
}

TEST(CrossEntropy, BadArgumentsAreReportedWithTheirValues) {
    const Tensor logits = Tensor::zeros(Shape{2, 5, 3});
    expect_invalid_argument([&] { (void)cross_entropy(logits, indices(Shape{2, 3}, {0, 1, 2, 3, 7, 4})); },
                            "cross_entropy: targets[1, 1] = 7 is not a class index: logits of shape [2, 5, 3] have 5 "
                            "classes, so targets must be in [0, 5) or ignore_index (-100)");
    expect_invalid_argument([&] { (void)cross_entropy(logits, indices(Shape{2, 3}, {0, -1, 2, 3, 4, 4})); },
                            "targets[0, 1] = -1 is not a class index");
    // ignore_index makes -1 acceptable; 5 is still out of range.
    EXPECT_NO_THROW((void)cross_entropy(logits, indices(Shape{2, 3}, {0, -1, 2, 3, 4, 4}), 0.0, Reduction::Mean, -1));
    expect_invalid_argument(
        [&] {
            (void)cross_entropy(logits, indices(Shape{2, 3}, {0, -1, 2, 3, 4, 5}), 0.0, Reduction::Mean, -1);
        },
        "targets[1, 2] = 5 is not a class index: logits of shape [2, 5, 3] have 5 classes, so targets must be in [0, "
        "5) "
        "or ignore_index (-1)");
    expect_invalid_argument([&] { (void)cross_entropy(logits, Tensor::zeros(Shape{2, 3})); },
                            "cross_entropy: targets must be int64 class indices, got float32");
    expect_invalid_argument([&] { (void)cross_entropy(logits, indices(Shape{2}, {0, 1})); },
                            "cross_entropy: targets has shape [2] but logits of shape [2, 5, 3] need targets of shape "
                            "[2, 3]");
    expect_invalid_argument([&] { (void)cross_entropy(logits, Tensor()); }, "cross_entropy: targets is undefined");
    expect_invalid_argument(
        [&] {
            (void)cross_entropy(Tensor::zeros(Shape{2, 5}, DType::Int64), indices(Shape{2}, {0, 1}));
        },
        "cross_entropy: logits must be float32 or float64, got int64");
    expect_invalid_argument([&] { (void)cross_entropy(Tensor::zeros(Shape{}), indices(Shape{}, {0})); },
                            "cross_entropy: logits must be [C], [N, C] or [N, C, d1, ...], got a scalar");
    expect_invalid_argument([&] { (void)cross_entropy(Tensor::zeros(Shape{2, 0}), indices(Shape{2}, {0, 0})); },
                            "cross_entropy: logits of shape [2, 0] have no classes");
    expect_invalid_argument([&] { (void)cross_entropy(logits, indices(Shape{2, 3}, {0, 0, 0, 0, 0, 0}), 1.5); },
                            "cross_entropy: label_smoothing must be in [0, 1], got 1.5");
    expect_invalid_argument([&] { (void)cross_entropy(logits, indices(Shape{2, 3}, {0, 0, 0, 0, 0, 0}), -0.1); },
                            "label_smoothing must be in [0, 1], got -0.1");
}

// ---- MSE ----

TEST(MseLoss, MatchesPyTorchAndGradientsMatchCentralDifferences) {
    // F.mse_loss(torch.tensor([[1.0, -2.0], [0.5, 3.0]]), torch.tensor([[0.0, 1.0], [0.5, -1.0]]), reduction=r)
    const Tensor x = values64(Shape{2, 2}, {1.0, -2.0, 0.5, 3.0});
    const Tensor t = values64(Shape{2, 2}, {0.0, 1.0, 0.5, -1.0});
    EXPECT_EQ(mse_loss(x, t).item(0), 6.5);
    EXPECT_EQ(mse_loss(x, t, Reduction::Sum).item(0), 26.0);
    EXPECT_EQ(mse_loss(x, t, Reduction::None).to_vector(), (std::vector<double>{1, 9, 0, 16}));
    EXPECT_EQ(mse_loss(x, t, Reduction::None).shape(), (Shape{2, 2}));
    // d/dx mean = 2 (x - t) / n; d/dt = -that.
    Tensor xr = x.detach().clone().set_requires_grad();
    Tensor tr = t.detach().clone().set_requires_grad();
    mse_loss(xr, tr).backward();
    EXPECT_EQ(xr.grad().to_vector(), (std::vector<double>{0.5, -1.5, 0.0, 2.0}));
    EXPECT_EQ(tr.grad().to_vector(), (std::vector<double>{-0.5, 1.5, -0.0, -2.0}));

    CONVKIT_SEEDED_RNG(rng);
    for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        for (const Shape& shape : {Shape{7}, Shape{2, 3, 4}, Shape{}}) {
            SCOPED_TRACE(std::string(reduction_name(reduction)) + " " + shape.to_string());
            EXPECT_LT(gradcheck_error(
                          [reduction](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], reduction); },
                          {random_tensor(shape, rng), random_tensor(shape, rng)}, rng()),
                      kGradTolerance);
        }
    }
}

TEST(MseLoss, BadArgumentsAreReportedWithTheirValues) {
    expect_invalid_argument([] { (void)mse_loss(Tensor::zeros(Shape{2, 3}), Tensor::zeros(Shape{3})); },
                            "mse_loss: input has shape [2, 3] but target has shape [3]; they must be equal");
    expect_invalid_argument([] { (void)mse_loss(Tensor::zeros(Shape{2}), Tensor::zeros(Shape{2}, DType::Float64)); },
                            "mse_loss: target is float64 but input is float32");
}

// ---- BCE with logits ----

// bx = torch.tensor([[0.5, -2.0, 3.0], [-0.25, 1.0, 0.0]], dtype=torch.float64)
// bt = torch.tensor([[1.0, 0.0, 0.25], [0.0, 1.0, 0.5]], dtype=torch.float64)
// pw = torch.tensor([2.0, 0.5, 3.0], dtype=torch.float64)
Tensor bce_logits() { return values64(Shape{2, 3}, {0.5, -2.0, 3.0, -0.25, 1.0, 0.0}); }
Tensor bce_targets() { return values64(Shape{2, 3}, {1.0, 0.0, 0.25, 0.0, 1.0, 0.5}); }
Tensor bce_pos_weight() { return values64(Shape{3}, {2.0, 0.5, 3.0}); }

TEST(BinaryCrossEntropyWithLogits, MatchesPyTorch) {
    const Tensor x = bce_logits();
    const Tensor t = bce_targets();
    const Tensor pw = bce_pos_weight();
    // F.binary_cross_entropy_with_logits(bx, bt, reduction=r[, pos_weight=pw])
    expect_values_near(binary_cross_entropy_with_logits(x, t), {0.7469901057923055}, kPyTorchTolerance);
    expect_values_near(binary_cross_entropy_with_logits(x, t, Reduction::Sum), {4.481940634753833}, kPyTorchTolerance);
    expect_values_near(binary_cross_entropy_with_logits(x, t, Reduction::None),
                       {0.4740769841801067, 0.1269280110429726, 2.298587351573742, 0.5759394198788437,
                        0.31326168751822286, 0.6931471805599453},
                       kPyTorchTolerance);
    expect_values_near(binary_cross_entropy_with_logits(x, t, Reduction::Mean, pw), {0.9194712719202741},
                       kPyTorchTolerance);
    expect_values_near(binary_cross_entropy_with_logits(x, t, Reduction::Sum, pw), {5.516827631521645},
                       kPyTorchTolerance);
    expect_values_near(binary_cross_entropy_with_logits(x, t, Reduction::None, pw),
                       {0.9481539683602134, 0.1269280110429727, 2.322881027360613, 0.5759394198788437,
                        0.15663084375911143, 1.3862943611198906},
                       kPyTorchTolerance);
    // bxr, btr = bx.requires_grad_(), bt.requires_grad_();
    // F.binary_cross_entropy_with_logits(bxr, btr, pos_weight=pw).backward(); bxr.grad, btr.grad
    Tensor xr = x.detach().clone().set_requires_grad();
    Tensor tr = t.detach().clone().set_requires_grad();
    binary_cross_entropy_with_logits(xr, tr, Reduction::Mean, pw).backward();
    expect_values_near(xr.grad(),
                       {-0.1258468895993818, 0.019867153670352924, 0.11314353170560836, 0.07297058318570032,
                        -0.02241178511416626, -0.08333333333333333},
                       kPyTorchTolerance);
    expect_values_near(tr.grad(),
                       {-0.004320502636648886, 0.15608933241308565, -0.48380421614208596, 0.17932323664647395,
                        -0.19277180729318522, 0.2310490601866484},
                       kPyTorchTolerance);
}

TEST(BinaryCrossEntropyWithLogits, ExtremeLogitsStayFinite) {
    // F.binary_cross_entropy_with_logits(torch.tensor([1000., -1000., 1000., -1000.]),
    //                                    torch.tensor([0., 1., 1., 0.]), reduction='none')
    for (DType dtype : {DType::Float64, DType::Float32}) {
        const Tensor x = Tensor::from_values(Shape{4}, {1000, -1000, 1000, -1000}, dtype);
        const Tensor t = Tensor::from_values(Shape{4}, {0, 1, 1, 0}, dtype);
        EXPECT_EQ(binary_cross_entropy_with_logits(x, t, Reduction::None).to_vector(),
                  (std::vector<double>{1000, 1000, 0, 0}));
    }
    // Hand-computed: x = 0 gives log 2 for any target.
    EXPECT_NEAR(binary_cross_entropy_with_logits(values64(Shape{1}, {0}), values64(Shape{1}, {0.3})).item(0),
                std::log(2.0), 1e-16);
}

TEST(BinaryCrossEntropyWithLogits, GradientsMatchCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    struct Case {
        Shape shape;
        Shape pos_weight;  // rank 0 with `use` false: none
        bool use_pos_weight;
    };
    const std::vector<Case> cases = {{Shape{5, 3}, Shape{}, false},      {Shape{5, 3}, Shape{3}, true},
                                     {Shape{2, 3, 2, 2}, Shape{3, 1, 1}, true}, {Shape{4}, Shape{}, true},
                                     {Shape{2, 3, 4}, Shape{}, false}};
    for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        for (const Case& c : cases) {
            SCOPED_TRACE(std::string(reduction_name(reduction)) + " " + c.shape.to_string() + " pos_weight " +
                         (c.use_pos_weight ? c.pos_weight.to_string() : "none"));
            const Tensor x = Tensor::uniform(c.shape, -4, 4, rng(), DType::Float64);
            const Tensor t = Tensor::uniform(c.shape, 0, 1, rng(), DType::Float64);
            const Tensor pw =
                c.use_pos_weight ? Tensor::uniform(c.pos_weight, 0.2, 3, rng(), DType::Float64) : Tensor();
            EXPECT_LT(gradcheck_error(
                          [&](const std::vector<Tensor>& in) {
                              return binary_cross_entropy_with_logits(in[0], in[1], reduction, pw);
                          },
                          {x, t}, rng()),
                      kGradTolerance);
        }
    }
}

TEST(BinaryCrossEntropyWithLogits, PosWeightBroadcastsAsInPyTorch) {
    // A per-channel weight [C, 1, 1] on [N, C, H, W] equals the weight written out in full.
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{2, 3, 2, 2}, rng);
    const Tensor t = Tensor::uniform(Shape{2, 3, 2, 2}, 0, 1, rng(), DType::Float64);
    const Tensor pw = values64(Shape{3, 1, 1}, {0.5, 2.0, 4.0});
    const Tensor full = pw + Tensor::zeros(Shape{2, 3, 2, 2}, DType::Float64);
    EXPECT_LT(relative_error(binary_cross_entropy_with_logits(x, t, Reduction::None, pw),
                             binary_cross_entropy_with_logits(x, t, Reduction::None, full)),
              kFloat64Tolerance);
    // A weight of 1 is no weight.
    EXPECT_LT(relative_error(binary_cross_entropy_with_logits(x, t, Reduction::None, values64(Shape{1}, {1.0})),
                             binary_cross_entropy_with_logits(x, t, Reduction::None)),
              kFloat64Tolerance);
}

TEST(BinaryCrossEntropyWithLogits, BadArgumentsAreReportedWithTheirValues) {
    const Tensor x = Tensor::zeros(Shape{2, 3});
    expect_invalid_argument([&] { (void)binary_cross_entropy_with_logits(x, Tensor::zeros(Shape{2, 1})); },
                            "binary_cross_entropy_with_logits: logits has shape [2, 3] but targets has shape [2, 1]");
    expect_invalid_argument(
        [&] { (void)binary_cross_entropy_with_logits(x, x, Reduction::Mean, Tensor::zeros(Shape{2, 2, 3})); },
        "binary_cross_entropy_with_logits: pos_weight of shape [2, 2, 3] must broadcast to logits of shape [2, 3]");
    expect_invalid_argument(
        [&] { (void)binary_cross_entropy_with_logits(x, x, Reduction::Mean, Tensor::zeros(Shape{2})); },
        "binary_cross_entropy_with_logits: shapes [2, 3] and [2] cannot be broadcast");
    expect_invalid_argument(
        [&] { (void)binary_cross_entropy_with_logits(x, x, Reduction::Mean, Tensor::zeros(Shape{3}, DType::Float64)); },
        "binary_cross_entropy_with_logits: pos_weight is float64 but logits is float32");
    expect_invalid_argument(
        [&] {
            (void)binary_cross_entropy_with_logits(x, Tensor::zeros(Shape{2, 3}, DType::Int64));
        },
        "targets must be float32 or float64, got int64");
}

TEST(Losses, EmptyInputsReduceAsInPyTorch) {
    // F.mse_loss(torch.zeros(0), torch.zeros(0)) = nan; F.cross_entropy(torch.zeros(0, 3), ...) = nan
    const Tensor e = Tensor::zeros(Shape{0}, DType::Float64);
    EXPECT_TRUE(std::isnan(mse_loss(e, e).item(0)));
    EXPECT_EQ(mse_loss(e, e, Reduction::Sum).item(0), 0.0);
    EXPECT_EQ(mse_loss(e, e, Reduction::None).shape(), (Shape{0}));
    EXPECT_TRUE(std::isnan(cross_entropy(Tensor::zeros(Shape{0, 3}), indices(Shape{0}, {})).item(0)));
}

}  // namespace
}  // namespace convkit
