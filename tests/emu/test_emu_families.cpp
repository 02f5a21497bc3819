// The batch-norm, unary, dropout, loss, upsampling and fill kernels executed by the emulator,
// each against the host backend's function with the same entry point (src/backends/host/),
// both writing into NaN-filled buffers: float64 to 1e-12, float32 to 1e-5.
#include <cmath>
#include <cstring>
#include <functional>
#include <type_traits>

#include "backends/host/batch_norm_host.h"
#include "backends/host/dropout_host.h"
#include "backends/host/loss_host.h"
#include "backends/host/optimizer_host.h"
#include "backends/host/shape_ops_host.h"
#include "backends/host/unary_host.h"
#include "emu_test_support.h"
#include "kernels/batch_norm.h"
#include "kernels/dropout.h"
#include "kernels/loss.h"
#include "kernels/optimizer.h"
#include "kernels/shape_ops.h"
#include "kernels/tensor_fill.h"
#include "kernels/unary.h"

namespace convkit {
namespace {

using Writer = std::function<void(void*)>;

// The host function and the kernel each write a NaN-filled buffer of `shape`; the kernel's
// must match within the dtype's tolerance.
void expect_same(const Shape& shape, DType dtype, const char* what, const Writer& host, const Writer& kernel) {
    Tensor expected = testing::nan_tensor(shape, dtype);
    host(expected.raw_data());
    Tensor got = testing::nan_tensor(shape, dtype);
    kernel(got.raw_data());
    EXPECT_LT(testing::relative_error(got, expected), testing::emu_tolerance(dtype)) << what;
}

// The same for per-channel double arrays.
void expect_same_doubles(std::int64_t n, const char* what, const Writer& host, const Writer& kernel) {
    expect_same(Shape{n}, DType::Float64, what, host, kernel);
}

const DType kDtypes[] = {DType::Float64, DType::Float32};

TEST(EmuBatchNorm, EveryPassMatchesTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const detail::BatchNormGeometry g{3, 4, 70};  // per channel 210 values: a block per channel
    const Shape shape{g.batch, g.channels, g.spatial};
    const double eps = 1e-5;
    for (DType dtype : kDtypes) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor x = add_scalar(testing::random_tensor(shape, rng), 3.0).to(dtype);
        const Tensor dy = testing::random_tensor(shape, rng).to(dtype);
        const Tensor weight = testing::random_tensor(Shape{g.channels}, rng).to(dtype);
        const Tensor bias = testing::random_tensor(Shape{g.channels}, rng).to(dtype);
        Tensor mean = Tensor::zeros(Shape{g.channels}, DType::Float64),
               var = Tensor::zeros(Shape{g.channels}, DType::Float64);
        detail::batch_norm_statistics_host(g, dtype, x.raw_data(), mean.data<double>(), var.data<double>(), {});
        const double* m = mean.data<double>();
        const double* v = var.data<double>();
        expect_same_doubles(
            g.channels, "mean",
            [&](void* out) {
                Tensor scratch = testing::nan_tensor(Shape{g.channels}, DType::Float64);
                detail::batch_norm_statistics_host(g, dtype, x.raw_data(), static_cast<double*>(out),
                                                   scratch.data<double>(), {});
            },
            [&](void* out) {
                Tensor scratch = testing::nan_tensor(Shape{g.channels}, DType::Float64);
                kernels::batch_norm_statistics(g, dtype, x.raw_data(), static_cast<double*>(out),
                                               scratch.data<double>(), {}, testing::kEmuStream);
            });
        expect_same_doubles(
            g.channels, "variance",
            [&](void* out) {
                Tensor scratch = testing::nan_tensor(Shape{g.channels}, DType::Float64);
                detail::batch_norm_statistics_host(g, dtype, x.raw_data(), scratch.data<double>(),
                                                   static_cast<double*>(out), {});
            },
            [&](void* out) {
                Tensor scratch = testing::nan_tensor(Shape{g.channels}, DType::Float64);
                kernels::batch_norm_statistics(g, dtype, x.raw_data(), scratch.data<double>(),
                                               static_cast<double*>(out), {}, testing::kEmuStream);
            });
        expect_same(
            shape, dtype, "forward",
            [&](void* y) {
                detail::batch_norm_forward_host(g, dtype, x.raw_data(), m, v, weight.raw_data(), bias.raw_data(), eps,
                                                y);
            },
            [&](void* y) {
                kernels::batch_norm_forward(g, dtype, x.raw_data(), m, v, weight.raw_data(), bias.raw_data(), eps, y,
                                            testing::kEmuStream);
            });
        Tensor sum_dy = Tensor::zeros(Shape{g.channels}, DType::Float64), sum_dy_x_hat = sum_dy.clone();
        detail::batch_norm_backward_reduce_host(g, dtype, dy.raw_data(), x.raw_data(), m, v, eps, sum_dy.data<double>(),
                                                sum_dy_x_hat.data<double>());
        expect_same_doubles(
            g.channels, "sum dy",
            [&](void* out) {
                Tensor scratch = testing::nan_tensor(Shape{g.channels}, DType::Float64);
                detail::batch_norm_backward_reduce_host(g, dtype, dy.raw_data(), x.raw_data(), m, v, eps,
                                                        static_cast<double*>(out), scratch.data<double>());
            },
            [&](void* out) {
                Tensor scratch = testing::nan_tensor(Shape{g.channels}, DType::Float64);
                kernels::batch_norm_backward_reduce(g, dtype, dy.raw_data(), x.raw_data(), m, v, eps,
                                                    static_cast<double*>(out), scratch.data<double>(),
                                                    testing::kEmuStream);
            });
        for (bool batch_statistics : {true, false}) {
            expect_same(
                shape, dtype, batch_statistics ? "backward input (train)" : "backward input (eval)",
                [&](void* dx) {
                    detail::batch_norm_backward_input_host(g, dtype, dy.raw_data(), x.raw_data(), m, v,
                                                           weight.raw_data(), sum_dy.data<double>(),
                                                           sum_dy_x_hat.data<double>(), eps, batch_statistics, dx);
                },
                [&](void* dx) {
                    kernels::batch_norm_backward_input(g, dtype, dy.raw_data(), x.raw_data(), m, v, weight.raw_data(),
                                                       sum_dy.data<double>(), sum_dy_x_hat.data<double>(), eps,
                                                       batch_statistics, dx, testing::kEmuStream);
                });
        }
    }
}

TEST(EmuUnary, EveryOpForwardAndBackwardMatchesTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const std::int64_t count = 300;
    // Positive inputs keep log, sqrt and fractional powers real.
    const Tensor x = add_scalar(mul_scalar(testing::random_tensor(Shape{count}, rng), 0.9), 1.0);
    const Tensor dy = testing::random_tensor(Shape{count}, rng);
    const detail::UnaryScalars scalars{1.5, 1.7};
    for (int o = 0; o <= static_cast<int>(detail::UnaryOp::GeluTanh); ++o) {
        const auto op = static_cast<detail::UnaryOp>(o);
        SCOPED_TRACE(detail::unary_op_name(op));
        for (DType dtype : kDtypes) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor xd = x.to(dtype), dyd = dy.to(dtype);
            expect_same(
                Shape{count}, dtype, "forward",
                [&](void* y) { detail::unary_forward_host(op, scalars, dtype, xd.raw_data(), y, count); },
                [&](void* y) {
                    kernels::unary_forward(op, scalars, dtype, xd.raw_data(), y, count, testing::kEmuStream);
                });
            expect_same(
                Shape{count}, dtype, "backward",
                [&](void* dx) {
                    detail::unary_backward_host(op, scalars, dtype, dyd.raw_data(), xd.raw_data(), dx, count);
                },
                [&](void* dx) {
                    kernels::unary_backward(op, scalars, dtype, dyd.raw_data(), xd.raw_data(), dx, count,
                                            testing::kEmuStream);
                });
        }
    }
}

TEST(EmuDropout, TheMaskEqualsTheHostsForASeed) {
    CONVKIT_SEEDED_RNG(rng);
    const std::int64_t count = 700;
    const Tensor x = testing::random_tensor(Shape{count}, rng);
    for (DType dtype : kDtypes) {
        const Tensor xd = x.to(dtype);
        expect_same(
            Shape{count}, dtype, "dropout",
            [&](void* y) { detail::dropout_host(dtype, xd.raw_data(), y, count, 0.3, 77); },
            [&](void* y) { kernels::dropout(dtype, xd.raw_data(), y, count, 0.3, 77, nullptr, testing::kEmuStream); });
    }
}

TEST(EmuLoss, CrossEntropyOnEveryTeamMatchesTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    // (rows, classes): a thread per row, a warp per row, a block per row.
    for (auto [rows, classes] : {std::pair{20, 5}, std::pair{6, 40}, std::pair{3, 1500}}) {
        SCOPED_TRACE(std::to_string(rows) + " rows of " + std::to_string(classes));
        detail::CrossEntropyParams p;
        p.g = detail::softmax_geometry("cross_entropy", Shape{rows, classes}, 1);
        p.label_smoothing = 0.1;
        p.ignore_index = 2;
        const Tensor logits = testing::random_tensor(Shape{rows, classes}, rng);
        std::vector<std::int64_t> target_values(rows);
        for (auto& t : target_values) t = testing::pick(rng, 0, classes - 1);
        target_values[1] = 2;  // one ignored row
        const Tensor targets = Tensor::from_vector(Shape{rows}, target_values);
        const auto* t = targets.data<std::int64_t>();
        for (DType dtype : kDtypes) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor x = logits.to(dtype);
            for (Reduction reduction : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
                SCOPED_TRACE(reduction_name(reduction));
                const Shape out_shape = reduction == Reduction::None ? Shape{rows} : Shape{1};
                Tensor lse_host = testing::nan_tensor(Shape{rows}, dtype),
                       lse_emu = testing::nan_tensor(Shape{rows}, dtype);
                detail::CrossEntropyStatus host_status, emu_status;
                expect_same(
                    out_shape, dtype, "forward",
                    [&](void* out) {
                        host_status = detail::cross_entropy_forward_host(p, reduction, dtype, x.raw_data(), t, out,
                                                                         lse_host.raw_data());
                    },
                    [&](void* out) {
                        kernels::CrossEntropyDeviceStatus device_status{};
                        kernels::cross_entropy_forward(p, reduction, dtype, x.raw_data(), t, out, lse_emu.raw_data(),
                                                       &device_status, testing::kEmuStream);
                        emu_status.counted_rows = static_cast<std::int64_t>(device_status.counted_rows);
                        const unsigned long long invalid_row = device_status.invalid_target.index;
                        if (invalid_row != detail::kNoDeviceError)
                            emu_status.first_invalid_row = static_cast<std::int64_t>(invalid_row);
                    });
                EXPECT_LT(testing::relative_error(lse_emu, lse_host), testing::emu_tolerance(dtype));
                EXPECT_EQ(emu_status.counted_rows, host_status.counted_rows);
                EXPECT_EQ(emu_status.first_invalid_row, host_status.first_invalid_row);
            }
            Tensor lse = testing::nan_tensor(Shape{rows}, dtype), loss = testing::nan_tensor(Shape{1}, dtype);
            detail::cross_entropy_forward_host(p, Reduction::Mean, dtype, x.raw_data(), t, loss.raw_data(),
                                               lse.raw_data());
            const Tensor dy = Tensor::full(Shape{1}, 0.75, dtype);
            expect_same(
                Shape{rows, classes}, dtype, "backward",
                [&](void* dx) {
                    detail::cross_entropy_backward_host(p, dtype, dy.raw_data(), false, 1.0 / rows, x.raw_data(), t,
                                                        lse.raw_data(), dx);
                },
                [&](void* dx) {
                    kernels::cross_entropy_backward(p, dtype, dy.raw_data(), false, 1.0 / rows, nullptr, x.raw_data(),
                                                    t, lse.raw_data(), dx, testing::kEmuStream);
                });
        }
    }
}

TEST(EmuLoss, PointwiseLossesMatchTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const Shape shape{7, 45};
    const detail::BroadcastGeometry g = detail::broadcast_geometry("loss", shape, Shape{45});
    const Tensor input = testing::random_tensor(shape, rng), target = testing::random_tensor(shape, rng);
    const Tensor pos_weight = add_scalar(testing::random_tensor(Shape{45}, rng), 2.0);
    for (auto loss : {detail::PointwiseLoss::SquaredError, detail::PointwiseLoss::BinaryCrossEntropyWithLogits}) {
        SCOPED_TRACE(detail::pointwise_loss_name(loss));
        for (DType dtype : kDtypes) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor x = input.to(dtype), t = target.to(dtype), pw = pos_weight.to(dtype);
            const void* weight = loss == detail::PointwiseLoss::SquaredError ? nullptr : pw.raw_data();
            for (Reduction reduction : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
                SCOPED_TRACE(reduction_name(reduction));
                expect_same(
                    reduction == Reduction::None ? shape : Shape{1}, dtype, "forward",
                    [&](void* out) {
                        detail::pointwise_loss_forward_host(loss, reduction, g, dtype, x.raw_data(), t.raw_data(),
                                                            weight, out);
                    },
                    [&](void* out) {
                        kernels::pointwise_loss_forward(loss, reduction, g, dtype, x.raw_data(), t.raw_data(), weight,
                                                        out, testing::kEmuStream);
                    });
            }
            const Tensor dy = testing::random_tensor(shape, rng).to(dtype);
            for (bool input_side : {true, false}) {
                expect_same(
                    shape, dtype, input_side ? "backward input" : "backward target",
                    [&](void* d) {
                        detail::pointwise_loss_backward_host(loss, g, dtype, dy.raw_data(), true, 0.5, x.raw_data(),
                                                             t.raw_data(), weight, input_side ? d : nullptr,
                                                             input_side ? nullptr : d);
                    },
                    [&](void* d) {
                        kernels::pointwise_loss_backward(loss, g, dtype, dy.raw_data(), true, 0.5, x.raw_data(),
                                                         t.raw_data(), weight, input_side ? d : nullptr,
                                                         input_side ? nullptr : d, testing::kEmuStream);
                    });
            }
        }
    }
}

TEST(EmuShapeOps, NearestUpsamplingMatchesTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const detail::UpsampleGeometry g{6, {1, 5, 7}, {1, 11, 14}};
    const Shape in{g.planes, 5, 7}, out{g.planes, 11, 14};
    const Tensor x = testing::random_tensor(in, rng), dy = testing::random_tensor(out, rng);
    for (DType dtype : kDtypes) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor xd = x.to(dtype), dyd = dy.to(dtype);
        expect_same(
            out, dtype, "forward", [&](void* y) { detail::upsample_nearest_forward_host(g, dtype, xd.raw_data(), y); },
            [&](void* y) { kernels::upsample_nearest_forward(g, dtype, xd.raw_data(), y, testing::kEmuStream); });
        expect_same(
            in, dtype, "backward",
            [&](void* dx) { detail::upsample_nearest_backward_host(g, dtype, dyd.raw_data(), dx); },
            [&](void* dx) { kernels::upsample_nearest_backward(g, dtype, dyd.raw_data(), dx, testing::kEmuStream); });
    }
}

TEST(EmuShapeOps, BlockCopyMatchesTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    // Rows 2..6 of a [3, 8, 5] source into rows 1..5 of a [3, 9, 5] destination (a slice/concat).
    const detail::BlockCopyGeometry g{3, 5, 5, 8, 2, 9, 1};
    const Tensor source = testing::random_tensor(Shape{3, 8, 5}, rng);
    for (DType dtype : kDtypes) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor src = source.to(dtype);
        Tensor expected = Tensor::zeros(Shape{3, 9, 5}, dtype), got = Tensor::zeros(Shape{3, 9, 5}, dtype);
        detail::block_copy_host(g, dtype_size(dtype), src.raw_data(), expected.raw_data());
        kernels::block_copy(g, dtype_size(dtype), src.raw_data(), got.raw_data(), testing::kEmuStream);
        EXPECT_TRUE(testing::exactly_equal(got, expected));
    }
}

// One step of the fused multi-tensor update against the host loop over the same table: the
// same per-element arithmetic without contraction on either side, so bit for bit.
template <typename T>
void expect_optimizer_step_matches_host(std::mt19937_64& rng) {
    const DType dtype = std::is_same_v<T, float> ? DType::Float32 : DType::Float64;
    const std::vector<std::int64_t> sizes = {5, 300, 1500};
    auto tensors = [&](int per_size) {
        std::vector<Tensor> t;
        for (std::int64_t n : sizes)
            for (int i = 0; i < per_size; ++i) t.push_back(testing::random_tensor(Shape{n}, rng).to(dtype));
        return t;
    };
    std::vector<Tensor> state = tensors(5);  // per size: param, grad, momentum/exp_avg, exp_avg_sq, max
    std::vector<Tensor> host_state, emu_state;
    for (const Tensor& t : state) host_state.push_back(t.clone()), emu_state.push_back(t.clone());
    auto sgd_table = [&](std::vector<Tensor>& s) {
        std::vector<detail::SgdTensor<T>> table;
        for (std::size_t k = 0; k < sizes.size(); ++k)
            table.push_back({s[5 * k].template data<T>(), s[5 * k + 1].template data<T>(),
                             s[5 * k + 2].template data<T>(), sizes[k], false});
        return table;
    };
    const auto sgd = detail::make_sgd_coefficients<T>(0.1, 0.9, 0.1, 1e-2, true, false);
    detail::sgd_update_host(sgd, sgd_table(host_state));
    kernels::sgd_multi_tensor_update(sgd, sgd_table(emu_state), testing::kEmuStream);
    for (std::size_t i = 0; i < state.size(); ++i)
        EXPECT_TRUE(testing::exactly_equal(emu_state[i], host_state[i])) << "sgd " << i;
    auto adam_table = [&](std::vector<Tensor>& s) {
        std::vector<detail::AdamTensor<T>> table;
        for (std::size_t k = 0; k < sizes.size(); ++k) {
            T* exp_avg_sq = s[5 * k + 3].template data<T>();
            for (std::int64_t i = 0; i < sizes[k]; ++i) exp_avg_sq[i] = std::abs(exp_avg_sq[i]);  // a variance
            T* max_sq = s[5 * k + 4].template data<T>();
            for (std::int64_t i = 0; i < sizes[k]; ++i) max_sq[i] = std::abs(max_sq[i]);
            table.push_back({s[5 * k].template data<T>(), s[5 * k + 1].template data<T>(),
                             s[5 * k + 2].template data<T>(), exp_avg_sq, max_sq, sizes[k], static_cast<T>(0.01),
                             static_cast<T>(0.3)});
        }
        return table;
    };
    const detail::AdamCoefficients<T> adam{T(0.9), T(0.999), T(0.1), T(0.001), T(0.01), T(1), T(1e-8), false, false};
    detail::adam_update_host(adam, adam_table(host_state));
    kernels::adam_multi_tensor_update(adam, adam_table(emu_state), testing::kEmuStream);
    for (std::size_t i = 0; i < state.size(); ++i)
        EXPECT_TRUE(testing::exactly_equal(emu_state[i], host_state[i])) << "adam " << i;
}

TEST(EmuOptimizer, FusedStepsEqualTheHostLoopBitForBit) {
    CONVKIT_SEEDED_RNG(rng);
    expect_optimizer_step_matches_host<double>(rng);
    expect_optimizer_step_matches_host<float>(rng);
}

TEST(EmuTensorFill, FillAndConversionWriteEveryElement) {
    const std::int64_t count = 1000;
    Tensor filled = testing::nan_tensor(Shape{count}, DType::Float32);
    kernels::fill_constant(filled.raw_data(), DType::Float32, count, 2.5, testing::kEmuStream);
    EXPECT_TRUE(testing::exactly_equal(filled, Tensor::full(Shape{count}, 2.5, DType::Float32)));
    Tensor widened = testing::nan_tensor(Shape{count}, DType::Float64);
    kernels::convert(filled.raw_data(), DType::Float32, widened.raw_data(), DType::Float64, count, testing::kEmuStream);
    EXPECT_TRUE(testing::exactly_equal(widened, Tensor::full(Shape{count}, 2.5, DType::Float64)));
}

// The convert kernel between every pair of dtypes, 16-bit ones included, gives the host's
// Tensor::to bit for bit (one conversion function, convkit::element_cast, on both sides).
TEST(EmuTensorFill, ConversionBetweenEveryPairOfDtypesMatchesTheHost) {
    const std::int64_t count = 777;
    const Tensor source = Tensor::normal(Shape{count}, 0.0, 1e4, 11, DType::Float64);
    const std::vector<DType> dtypes{DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int64};
    for (DType from : dtypes) {
        const Tensor a = source.to(from);
        for (DType to : dtypes) {
            SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
            Tensor out = Tensor::zeros(Shape{count}, to);
            kernels::convert(a.raw_data(), from, out.raw_data(), to, count, testing::kEmuStream);
            const Tensor want = a.to(to);
            ASSERT_EQ(std::memcmp(out.raw_data(), want.raw_data(), want.nbytes()), 0);
        }
    }
    for (DType d : {DType::BFloat16, DType::Float16}) {
        Tensor filled = Tensor::zeros(Shape{count}, d);
        kernels::fill_constant(filled.raw_data(), d, count, 1.0 / 3.0, testing::kEmuStream);
        const Tensor want = Tensor::full(Shape{count}, 1.0 / 3.0, d);
        EXPECT_EQ(std::memcmp(filled.raw_data(), want.raw_data(), want.nbytes()), 0) << dtype_name(d);
    }
}

}  // namespace
}  // namespace convkit
