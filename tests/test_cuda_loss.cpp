// The CUDA softmax and loss kernels against the host reference (label gpu), written into
// NaN-filled buffers: every row team (thread, warp, block; contiguous and strided rows), odd
// sizes, C = 1000 and longer rows, per-pixel cross-entropy, every reduction and option, the
// target check's message, determinism, and the public ops with autograd on CUDA tensors.
// float64 to 1e-12; float32 to 1e-5 against the float64 reference on the same (rounded) inputs.
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "kernels/loss.h"
#include "kernels/softmax.h"
#include "backend_api/broadcast.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {
using detail::SoftmaxGeometry;
using detail::SoftmaxKind;


double tolerance_for(DType dtype) {
    return dtype == DType::Float64 ? testing::kFloat64Tolerance : testing::kCudaStrictFloat32Tolerance;
}

// Uniform in [low, high), rounded to float32 so that both dtypes see the same values.
Tensor rounded_uniform(const Shape& shape, double low, double high, std::mt19937_64& rng) {
    return Tensor::uniform(shape, low, high, rng(), DType::Float64).to(DType::Float32).to(DType::Float64);
}

Tensor on_cuda(const Tensor& t, DType dtype) { return t.to(dtype).to(Device::cuda()); }

struct SoftmaxCase {
    Shape shape;
    int dim;
    std::string name() const { return testing::test_name(shape.to_string() + "_dim" + std::to_string(dim)); }
};

std::vector<SoftmaxCase> softmax_cases() {
    return {
        {Shape{37, 5}, 1},          // short contiguous rows: a thread per row
        {Shape{2, 3, 4}, 2},        // likewise, rank 3
        {Shape{300, 1000}, -1},     // C = 1000: a warp per row
        {Shape{129, 33}, 1},        // odd row length over a warp
        {Shape{3, 5000}, 1},        // long rows: a block per row
        {Shape{1, 1025}, 1},        // just past the warp limit
        {Shape{2, 100003}, 1},      // a long odd row
        {Shape{4, 21, 7, 9}, 1},    // channels of an image: strided rows, a thread per row
        {Shape{2, 300, 5, 3}, 1},   // few strided long rows: a block per row
        {Shape{70000, 3}, 0},       // three very long strided rows
        {Shape{testing::gpu_or_emulated(200000, 3000), 10}, 1},  // many rows
        {Shape{3, 1}, 1},           // rows of one element
    };
}

class CudaSoftmax : public testing::WithCuda<::testing::TestWithParam<SoftmaxCase>> {};

TEST_P(CudaSoftmax, ForwardAndBackwardMatchTheHostReference) {
    const SoftmaxCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = rounded_uniform(c.shape, -8, 8, rng);
    const Tensor dy = rounded_uniform(c.shape, -1, 1, rng);
    const SoftmaxGeometry g = detail::softmax_geometry("softmax", c.shape, c.dim);
    SCOPED_TRACE(std::string("team ") + kernels::row_team_name(kernels::row_team_for(g)));
    for (SoftmaxKind kind : {SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax}) {
        const bool log = kind == SoftmaxKind::LogSoftmax;
        SCOPED_TRACE(log ? "log_softmax" : "softmax");
        const Tensor y = log ? log_softmax(x, c.dim) : softmax(x, c.dim);
        const Tensor y32 = y.to(DType::Float32).to(DType::Float64);  // the float32 run's backward input
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor y_in = dtype == DType::Float64 ? y : y32;
            const Tensor dx = log ? log_softmax_backward(dy, y_in, c.dim) : softmax_backward(dy, y_in, c.dim);
            // The backward judged per element against the magnitudes of its terms: softmax's
            // y_i (dy_i - sum_j dy_j y_j) against y_i (|dy_i| + sum_j |dy_j| y_j), log-softmax's
            // dy_i - exp(y_i) sum_j dy_j against |dy_i| + exp(y_i) sum_j |dy_j|. Where one element
            // takes nearly all of each row's mass (x spans 16), softmax's gradient is a small
            // difference of terms near |dy| in every row of a small tensor, and float32's rounding
            // of them is all the norm sees (seed 8354209775503308090: [2, 3, 4], 1.2e-5).
            const int row = c.dim < 0 ? c.dim + c.shape.rank() : c.dim;
            const Tensor magnitudes = log ? abs(dy) + exp(y_in) * sum(abs(dy), {row}, true)
                                          : y_in * (abs(dy) + sum(abs(dy) * y_in, {row}, true));
            Tensor out = testing::nan_tensor(c.shape, dtype, Device::cuda());
            kernels::softmax_forward(kind, g, dtype, on_cuda(x, dtype).raw_data(), out.raw_data(), current_stream(0));
            EXPECT_LT(testing::relative_error(out, y), tolerance_for(dtype)) << "forward";
            Tensor grad = testing::nan_tensor(c.shape, dtype, Device::cuda());
            kernels::softmax_backward(kind, g, dtype, on_cuda(dy, dtype).raw_data(), on_cuda(y_in, dtype).raw_data(),
                                      grad.raw_data(), current_stream(0));
            EXPECT_LT(testing::summation_error(grad, dx, magnitudes), tolerance_for(dtype)) << "backward";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Sweep, CudaSoftmax, ::testing::ValuesIn(softmax_cases()),
                         [](const ::testing::TestParamInfo<SoftmaxCase>& info) {
                             return info.param.name() + "_" + std::to_string(info.index);
                         });

// Runs on the host too: the sweep above must reach every team.
TEST(CudaSoftmaxTeams, TheSweepCoversEveryTeam) {
    std::set<kernels::RowTeam> teams;
    bool strided_block = false;
    for (const SoftmaxCase& c : softmax_cases()) {
        const SoftmaxGeometry g = detail::softmax_geometry("softmax", c.shape, c.dim);
        teams.insert(kernels::row_team_for(g));
        strided_block |= g.inner > 1 && kernels::row_team_for(g) == kernels::RowTeam::Block;
    }
    EXPECT_EQ(teams.size(), 3u);
    EXPECT_TRUE(strided_block);
}

class CudaSoftmaxOps : public testing::WithCuda<> {};

TEST_F(CudaSoftmaxOps, SpecialValuesGiveTheHostResults) {
    const double inf = std::numeric_limits<double>::infinity();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<double> rows = {-inf, -inf, -inf, 0, -inf, 1, inf, 0, 1, nan, 0, 1, 1000, 1001, 1002};
    // The same rows again, 40 long, so that warps and blocks see them too.
    for (int length : {3, 40, 2000}) {
        std::vector<double> v;
        for (std::size_t r = 0; r < 5; ++r)
            for (int k = 0; k < length; ++k) v.push_back(k < 3 ? rows[r * 3 + static_cast<std::size_t>(k)] : -inf);
        const Tensor x = Tensor::from_vector(Shape{5, length}, v);
        for (DType dtype : {DType::Float64, DType::Float32}) {
            for (bool log : {false, true}) {
                const Tensor host = log ? log_softmax(x.to(dtype), 1) : softmax(x.to(dtype), 1);
                const Tensor gpu = log ? log_softmax(on_cuda(x, dtype), 1) : softmax(on_cuda(x, dtype), 1);
                const std::vector<double> h = host.to_vector();
                const std::vector<double> d = gpu.to_vector();
                for (std::size_t i = 0; i < h.size(); ++i) {
                    if (std::isnan(h[i]) || std::isinf(h[i])) {
                        EXPECT_EQ(std::isnan(d[i]), std::isnan(h[i])) << "element " << i << " length " << length;
                        if (std::isinf(h[i])) {
                            EXPECT_EQ(d[i], h[i]) << "element " << i;
                        }
                    } else {
                        EXPECT_NEAR(d[i], h[i], 1e-5 * (1 + std::fabs(h[i]))) << "element " << i;
                    }
                }
            }
        }
    }
}

TEST_F(CudaSoftmaxOps, AutogradOnCudaTensorsMatchesTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = testing::random_tensor(Shape{4, 6, 5}, rng);
    const Tensor dy = testing::random_tensor(Shape{4, 6, 5}, rng);
    for (int dim : {0, 1, -1}) {
        for (bool log : {false, true}) {
            Tensor xh = x.detach().clone().set_requires_grad();
            Tensor xd = x.to(Device::cuda()).set_requires_grad();
            (log ? log_softmax(xh, dim) : softmax(xh, dim)).backward(dy);
            const Tensor yd = log ? log_softmax(xd, dim) : softmax(xd, dim);
            EXPECT_EQ(yd.device(), Device::cuda());
            yd.backward(dy.to(Device::cuda()));
            EXPECT_EQ(xd.grad().device(), Device::cuda());
            EXPECT_LT(testing::relative_error(xd.grad(), xh.grad()), testing::kFloat64Tolerance);
        }
    }
}

// ---- cross-entropy ----

struct CrossEntropyCase {
    Shape logits;
    double label_smoothing;
    std::string name() const {
        return testing::test_name(logits.to_string() + "_eps" +
                                  std::to_string(static_cast<int>(label_smoothing * 100)));
    }
};

std::vector<CrossEntropyCase> cross_entropy_cases() {
    return {
        {Shape{37, 3}, 0.0},       {Shape{37, 3}, 0.1},          {Shape{64, 10}, 0.0},
        {Shape{300, 1000}, 0.0},   {Shape{300, 1000}, 0.2},      {Shape{5, 5000}, 0.1},
        {Shape{2, 21, 17, 13}, 0.0}, {Shape{2, 21, 17, 13}, 0.1}, {Shape{3, 300, 4, 5}, 0.1},
        {Shape{testing::gpu_or_emulated(100003, 3001), 10}, 0.0},  {Shape{7, 1}, 0.0},           {Shape{1000}, 0.3},
    };
}

class CudaCrossEntropy : public testing::WithCuda<::testing::TestWithParam<CrossEntropyCase>> {};

TEST_P(CudaCrossEntropy, KernelsMatchTheHostReference) {
    const CrossEntropyCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    const int class_dim = c.logits.rank() == 1 ? 0 : 1;
    const std::int64_t classes = c.logits[class_dim];
    std::vector<std::int64_t> target_dims = c.logits.to_vector();
    target_dims.erase(target_dims.begin() + class_dim);
    const Shape target_shape(target_dims);
    std::vector<std::int64_t> t(static_cast<std::size_t>(target_shape.numel()));
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = i % 7 == 3 ? -100 : testing::pick(rng, 0, classes - 1);
    const Tensor targets = Tensor::from_vector(target_shape, t);
    const Tensor targets_gpu = targets.to(Device::cuda());
    const Tensor x = rounded_uniform(c.logits, -6, 6, rng);
    const detail::CrossEntropyParams p{detail::softmax_geometry("cross_entropy", c.logits, class_dim),
                                       c.label_smoothing, -100};
    SCOPED_TRACE(std::string("team ") + kernels::row_team_name(kernels::row_team_for(p.g)));
    for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        SCOPED_TRACE(reduction_name(reduction));
        const Shape out_shape = reduction == Reduction::None ? target_shape : Shape{};
        // The reference, float64, through the host entry points.
        Tensor ref = Tensor::empty(out_shape, DType::Float64);
        Tensor ref_lse = Tensor::empty(target_shape, DType::Float64);
        const detail::CrossEntropyStatus ref_status =
            detail::cross_entropy_forward_host(p, reduction, DType::Float64, x.raw_data(), targets.data<std::int64_t>(),
                                               ref.raw_data(), ref_lse.raw_data());
        const Tensor dy = reduction == Reduction::None ? testing::random_tensor(target_shape, rng)
                                                       : Tensor::full(Shape{}, 0.75, DType::Float64);
        const double scale = reduction == Reduction::Mean ? 1.0 / static_cast<double>(ref_status.counted_rows) : 1.0;
        Tensor ref_dx = Tensor::empty(c.logits, DType::Float64);
        detail::cross_entropy_backward_host(p, DType::Float64, dy.raw_data(), reduction == Reduction::None, scale,
                                            x.raw_data(), targets.data<std::int64_t>(), ref_lse.raw_data(),
                                            ref_dx.raw_data());
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor xd = on_cuda(x, dtype);
            Tensor out = testing::nan_tensor(out_shape, dtype, Device::cuda());
            Tensor lse = testing::nan_tensor(target_shape, dtype, Device::cuda());
            // The status stays on the device (nothing waits for it); read here to check it.
            Tensor device_status = testing::nan_tensor(Shape{3}, DType::Float64, Device::cuda());
            auto* status_on_device = static_cast<kernels::CrossEntropyDeviceStatus*>(device_status.raw_data());
            kernels::cross_entropy_forward(p, reduction, dtype, xd.raw_data(), targets_gpu.data<std::int64_t>(),
                                           out.raw_data(), lse.raw_data(), status_on_device, current_stream(0));
            const Tensor status_copy = device_status.to(Device::host());
            const auto& status = *static_cast<const kernels::CrossEntropyDeviceStatus*>(status_copy.raw_data());
            EXPECT_EQ(status.invalid_target.index, detail::kNoDeviceError);
            EXPECT_EQ(status.counted_rows, static_cast<double>(ref_status.counted_rows));
            EXPECT_LT(testing::relative_error(out, ref), tolerance_for(dtype)) << "forward";
            EXPECT_LT(testing::relative_error(lse, ref_lse), tolerance_for(dtype)) << "row log-sum-exp";
            Tensor dx = testing::nan_tensor(c.logits, dtype, Device::cuda());
            // The mean's scale from the count on the device, as the op layer passes it.
            const double* counted_rows = reduction == Reduction::Mean ? &status_on_device->counted_rows : nullptr;
            kernels::cross_entropy_backward(p, dtype, on_cuda(dy, dtype).raw_data(), reduction == Reduction::None,
                                            1.0, counted_rows, xd.raw_data(), targets_gpu.data<std::int64_t>(),
                                            on_cuda(ref_lse, dtype).raw_data(), dx.raw_data(), current_stream(0));
            EXPECT_LT(testing::relative_error(dx, ref_dx), tolerance_for(dtype)) << "backward";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Sweep, CudaCrossEntropy, ::testing::ValuesIn(cross_entropy_cases()),
                         [](const ::testing::TestParamInfo<CrossEntropyCase>& info) {
                             return info.param.name() + "_" + std::to_string(info.index);
                         });

class CudaLossOps : public testing::WithCuda<> {};

// On a device the check is asynchronous (docs/losses.md): the call returns, and the host's next
// wait that reads device memory (a copy to the host, synchronize()) raises the host's message.
TEST_F(CudaLossOps, OutOfRangeTargetsGiveTheHostMessageAtTheNextWaitAndTheLibraryGoesOn) {
    const Tensor logits = Tensor::zeros(Shape{2, 5, 3});
    // Two bad targets: the first in row order is reported, whichever thread finds it first.
    const Tensor targets = Tensor::from_vector(Shape{2, 3}, std::vector<std::int64_t>{0, 1, 2, 3, 7, -5});
    std::string host_message;
    try {
        (void)cross_entropy(logits, targets);
    } catch (const InvalidArgument& e) {
        host_message = e.what();
    }
    ASSERT_NE(host_message.find("targets[1, 1] = 7"), std::string::npos) << host_message;
    const Tensor logits_gpu = logits.to(Device::cuda()).set_requires_grad();
    const Tensor targets_gpu = targets.to(Device::cuda());
    for (int attempt = 0; attempt < 3; ++attempt) {
        Tensor loss;
        // Enqueued, not waited for; even the backward pass runs (bad rows get no gradient).
        ASSERT_NO_THROW(loss = cross_entropy(logits_gpu, targets_gpu));
        ASSERT_NO_THROW(loss.backward());
        try {
            if (attempt == 2) {
                synchronize(0);
            } else {
                (void)loss.to(Device::host());
            }
            FAIL() << "expected InvalidArgument";
        } catch (const InvalidArgument& e) {
            EXPECT_EQ(std::string(e.what()), host_message);
        }
        // Raised once: the next wait is clean.
        EXPECT_NO_THROW(synchronize(0));
    }
    const Tensor good = Tensor::from_vector(Shape{2, 3}, std::vector<std::int64_t>{0, 1, 2, 3, 4, 0});
    EXPECT_NEAR(cross_entropy(logits.to(Device::cuda()), good.to(Device::cuda())).to(Device::host()).item(0), std::log(5.0), 1e-6);
}

TEST_F(CudaLossOps, ReductionsAreTheSameOnEveryRun) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = Tensor::uniform(Shape{4096, 100}, -5, 5, rng(), DType::Float32, Device::cuda());
    std::vector<std::int64_t> t(4096);
    for (auto& v : t) v = testing::pick(rng, 0, 99);
    const Tensor targets = Tensor::from_vector(Shape{4096}, t).to(Device::cuda());
    // Scalars on the device: read on the host.
    auto value = [](const Tensor& scalar) { return scalar.to(Device::host()).item(0); };
    const double first = value(cross_entropy(x, targets, 0.1));
    const double mse_first = value(mse_loss(x, x * x));
    for (int run = 0; run < 5; ++run) {
        EXPECT_EQ(value(cross_entropy(x, targets, 0.1)), first);
        EXPECT_EQ(value(mse_loss(x, x * x)), mse_first);
    }
}

TEST_F(CudaLossOps, CrossEntropyAutogradOnCudaTensorsMatchesTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = testing::random_tensor(Shape{3, 7, 4, 5}, rng);
    std::vector<std::int64_t> t(60);
    for (auto& v : t) v = testing::pick(rng, 0, 6);
    t[5] = 255;
    const Tensor targets = Tensor::from_vector(Shape{3, 4, 5}, t);
    for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        Tensor xh = x.detach().clone().set_requires_grad();
        Tensor xd = x.to(Device::cuda()).set_requires_grad();
        const Tensor lh = cross_entropy(xh, targets, 0.15, reduction, 255);
        const Tensor ld = cross_entropy(xd, targets.to(Device::cuda()), 0.15, reduction, 255);
        EXPECT_LT(testing::relative_error(ld, lh), testing::kFloat64Tolerance);
        const Tensor dy = Tensor::uniform(lh.shape(), -1, 1, rng(), DType::Float64);
        lh.backward(dy);
        ld.backward(dy.to(Device::cuda()));
        EXPECT_LT(testing::relative_error(xd.grad(), xh.grad()), testing::kFloat64Tolerance)
            << reduction_name(reduction);
    }
}

// ---- MSE and BCE with logits ----

struct PointwiseCase {
    detail::PointwiseLoss loss;
    Shape shape;
    Shape pos_weight;
    bool use_pos_weight;
};

TEST_F(CudaLossOps, PointwiseKernelsMatchTheHostReference) {
    CONVKIT_SEEDED_RNG(rng);
    using detail::PointwiseLoss;
    const std::vector<PointwiseCase> cases = {
        {PointwiseLoss::SquaredError, Shape{1}, Shape{}, false},
        {PointwiseLoss::SquaredError, Shape{17, 13}, Shape{}, false},
        {PointwiseLoss::SquaredError, Shape{(1 << 20) + 3}, Shape{}, false},
        {PointwiseLoss::BinaryCrossEntropyWithLogits, Shape{33, 7}, Shape{}, false},
        {PointwiseLoss::BinaryCrossEntropyWithLogits, Shape{33, 7}, Shape{7}, true},
        {PointwiseLoss::BinaryCrossEntropyWithLogits, Shape{2, 5, 9, 11}, Shape{5, 1, 1}, true},
        {PointwiseLoss::BinaryCrossEntropyWithLogits, Shape{300001}, Shape{}, false},
    };
    for (const PointwiseCase& c : cases) {
        const std::string op = detail::pointwise_loss_name(c.loss);
        SCOPED_TRACE(op + " " + c.shape.to_string() +
                     (c.use_pos_weight ? " pos_weight " + c.pos_weight.to_string() : ""));
        const Tensor x = rounded_uniform(c.shape, -6, 6, rng);
        const Tensor t = rounded_uniform(c.shape, 0, 1, rng);
        const Tensor pw = c.use_pos_weight ? rounded_uniform(c.pos_weight, 0.25, 4, rng) : Tensor();
        const detail::BroadcastGeometry g =
            detail::broadcast_geometry(op, c.shape, c.use_pos_weight ? c.pos_weight : Shape{});
        for (Reduction reduction : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
            SCOPED_TRACE(reduction_name(reduction));
            const Shape out_shape = reduction == Reduction::None ? c.shape : Shape{};
            const bool per_element = reduction == Reduction::None;
            const double scale = reduction == Reduction::Mean ? 1.0 / static_cast<double>(g.count) : 1.0;
            const Tensor dy =
                per_element ? testing::random_tensor(c.shape, rng) : Tensor::full(Shape{}, -1.5, DType::Float64);
            Tensor ref = Tensor::empty(out_shape, DType::Float64);
            detail::pointwise_loss_forward_host(c.loss, reduction, g, DType::Float64, x.raw_data(), t.raw_data(),
                                                pw.defined() ? pw.raw_data() : nullptr, ref.raw_data());
            Tensor ref_dx = Tensor::empty(c.shape, DType::Float64);
            Tensor ref_dt = Tensor::empty(c.shape, DType::Float64);
            detail::pointwise_loss_backward_host(c.loss, g, DType::Float64, dy.raw_data(), per_element, scale,
                                                 x.raw_data(), t.raw_data(), pw.defined() ? pw.raw_data() : nullptr,
                                                 ref_dx.raw_data(), ref_dt.raw_data());
            for (DType dtype : {DType::Float64, DType::Float32}) {
                SCOPED_TRACE(dtype_name(dtype));
                const Tensor xd = on_cuda(x, dtype);
                const Tensor td = on_cuda(t, dtype);
                const Tensor pwd = pw.defined() ? on_cuda(pw, dtype) : Tensor();
                const void* pw_ptr = pwd.defined() ? pwd.raw_data() : nullptr;
                Tensor out = testing::nan_tensor(out_shape, dtype, Device::cuda());
                kernels::pointwise_loss_forward(c.loss, reduction, g, dtype, xd.raw_data(), td.raw_data(), pw_ptr,
                                                out.raw_data(), current_stream(0));
                EXPECT_LT(testing::relative_error(out, ref), tolerance_for(dtype)) << "forward";
                Tensor dx = testing::nan_tensor(c.shape, dtype, Device::cuda());
                Tensor dt = testing::nan_tensor(c.shape, dtype, Device::cuda());
                kernels::pointwise_loss_backward(c.loss, g, dtype, on_cuda(dy, dtype).raw_data(), per_element, scale,
                                                 xd.raw_data(), td.raw_data(), pw_ptr, dx.raw_data(), dt.raw_data(),
                                                 current_stream(0));
                EXPECT_LT(testing::relative_error(dx, ref_dx), tolerance_for(dtype)) << "input gradient";
                EXPECT_LT(testing::relative_error(dt, ref_dt), tolerance_for(dtype)) << "target gradient";
            }
        }
    }
}

TEST_F(CudaLossOps, PublicLossesOnCudaTensorsMatchTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = testing::random_tensor(Shape{6, 4, 3}, rng);
    const Tensor t = Tensor::uniform(Shape{6, 4, 3}, 0, 1, rng(), DType::Float64);
    const Tensor pw = Tensor::uniform(Shape{4, 1}, 0.5, 2, rng(), DType::Float64);
    EXPECT_LT(testing::relative_error(mse_loss(x.to(Device::cuda()), t.to(Device::cuda())), mse_loss(x, t)),
              testing::kFloat64Tolerance);
    EXPECT_LT(testing::relative_error(binary_cross_entropy_with_logits(x.to(Device::cuda()), t.to(Device::cuda()),
                                                                       Reduction::Sum, pw.to(Device::cuda())),
                                      binary_cross_entropy_with_logits(x, t, Reduction::Sum, pw)),
              testing::kFloat64Tolerance);
    Tensor xh = x.detach().clone().set_requires_grad();
    Tensor th = t.detach().clone().set_requires_grad();
    Tensor xd = x.to(Device::cuda()).set_requires_grad();
    Tensor td = t.to(Device::cuda()).set_requires_grad();
    (mse_loss(xh, th) + binary_cross_entropy_with_logits(xh, th, Reduction::Mean, pw)).backward();
    (mse_loss(xd, td) + binary_cross_entropy_with_logits(xd, td, Reduction::Mean, pw.to(Device::cuda()))).backward();
    EXPECT_LT(testing::relative_error(xd.grad(), xh.grad()), testing::kFloat64Tolerance);
    EXPECT_LT(testing::relative_error(td.grad(), th.grad()), testing::kFloat64Tolerance);
}

}  // namespace
}  // namespace convkit
