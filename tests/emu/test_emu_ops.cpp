// The reduction, softmax and elementwise kernels (kernels/reduce.cu, softmax.cu, binary.cu)
// executed by the emulator through their launchers on host memory, against the host ops
// (float64 to 1e-12, float32 to 1e-5), outputs poisoned with NaN first. Shapes pick every path
// of each launcher: one output (the two-pass grid reduction that replaced CUB), a block per
// row, a thread per row; softmax teams of a thread, a warp and a block.
#include "emu_test_support.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "backend_api/broadcast.h"
#include "backend_api/reduce_math.h"
#include "backend_api/softmax_math.h"

namespace convkit {
namespace {

struct SumCase {
    Shape shape;
    std::vector<int> dims;
};

TEST(EmuReduce, SumsMatchTheHostOnEveryPath) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<SumCase> cases = {
        {Shape{3, 700}, {0, 1}},  // one output: the grid reduction (3 blocks of partials)
        {Shape{5, 300}, {1}},     // rows of 300 terms: a block per row
        {Shape{40, 6}, {1}},      // short rows: a thread per row
        {Shape{4, 3, 5}, {0, 2}},
    };
    for (const SumCase& c : cases) {
        SCOPED_TRACE(c.shape.to_string());
        const Tensor x = testing::random_tensor(c.shape, rng);
        const Shape reduced = sum(x, c.dims, true).shape();
        const detail::ReduceToShapeGeometry g = detail::reduce_to_shape_geometry("sum", c.shape, reduced);
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor xd = x.to(dtype);
            // The sum of the values the kernel reads (x rounded to the dtype) in float64: of the
            // exact x, a sum of 2,100 terms that nearly cancel missed the float32 tolerance by the
            // inputs' rounding alone (seed 9529449941926592016: 1.08e-5).
            const Tensor reference = sum(xd.to(DType::Float64), c.dims, true);
            testing::expect_kernel_output(reference, dtype, "sum_dims", [&](void* out) {
                kernels::sum_dims(g, dtype, xd.raw_data(), 1.0, out, testing::kEmuStream);
            });
        }
    }
}

TEST(EmuReduce, MaxAndItsGradientMatchTheHostOnEveryPath) {
    CONVKIT_SEEDED_RNG(rng);
    // {outer, size, inner}: one row (grid reduction), long rows (a block each), short rows.
    const std::vector<detail::DimReduceGeometry> cases = {{1, 900, 1}, {3, 300, 2}, {7, 5, 3}};
    for (const detail::DimReduceGeometry& g : cases) {
        SCOPED_TRACE(std::to_string(g.outer) + "x" + std::to_string(g.size) + "x" + std::to_string(g.inner));
        const Shape shape{g.outer, g.size, g.inner};
        // float32-representable values, so both dtypes have the same argmax.
        const Tensor x = testing::random_tensor(shape, rng).to(DType::Float32).to(DType::Float64);
        const Tensor values = max(x, 1, true);
        const Tensor indices = argmax(x, 1, true);
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor xd = x.to(dtype);
            Tensor best = testing::nan_tensor(values.shape(), dtype);
            Tensor where = Tensor::full(indices.shape(), -1.0, DType::Int64);
            kernels::max_dim(g, dtype, xd.raw_data(), best.raw_data(), where.data<std::int64_t>(), testing::kEmuStream);
            EXPECT_TRUE(testing::exactly_equal(best, values.to(dtype)));
            EXPECT_TRUE(testing::exactly_equal(where, indices));
            const Tensor dy = testing::random_tensor(values.shape(), rng).to(dtype);
            Tensor dx = testing::nan_tensor(shape, dtype);
            kernels::max_backward(g, dtype, dy.raw_data(), where.data<std::int64_t>(), dx.raw_data(),
                                  testing::kEmuStream);
            const std::vector<double> d = dx.to_vector(), up = dy.to_vector(), at = where.to_vector();
            for (std::int64_t i = 0; i < dx.numel(); ++i) {
                const std::int64_t row = i / (g.size * g.inner) * g.inner + i % g.inner, k = i / g.inner % g.size;
                EXPECT_EQ(d[i], at[row] == k ? up[row] : 0.0) << i;
            }
        }
    }
}

TEST(EmuSoftmax, EveryTeamMatchesTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    // (shape, dim): a thread per row (dim <= 8), a warp per row, a block per row (inner > 1).
    const std::vector<std::pair<Shape, int>> cases = {{Shape{10, 6}, 1}, {Shape{3, 70}, 1}, {Shape{2, 40, 3}, 1}};
    for (const auto& [shape, dim] : cases) {
        const detail::SoftmaxGeometry g = detail::softmax_geometry("softmax", shape, dim);
        SCOPED_TRACE(shape.to_string() + " team " + kernels::row_team_name(kernels::row_team_for(g)));
        const Tensor x = testing::random_tensor(shape, rng);
        const Tensor dy = testing::random_tensor(shape, rng);
        for (detail::SoftmaxKind kind : {detail::SoftmaxKind::Softmax, detail::SoftmaxKind::LogSoftmax}) {
            const bool log = kind == detail::SoftmaxKind::LogSoftmax;
            SCOPED_TRACE(log ? "log_softmax" : "softmax");
            const Tensor y = log ? log_softmax(x, dim) : softmax(x, dim);
            const Tensor dx = log ? log_softmax_backward(dy, y, dim) : softmax_backward(dy, y, dim);
            for (DType dtype : {DType::Float64, DType::Float32}) {
                SCOPED_TRACE(dtype_name(dtype));
                const Tensor xd = x.to(dtype), dyd = dy.to(dtype), yd = y.to(dtype);
                testing::expect_kernel_output(y, dtype, "forward", [&](void* out) {
                    kernels::softmax_forward(kind, g, dtype, xd.raw_data(), out, testing::kEmuStream);
                });
                testing::expect_kernel_output(dx, dtype, "backward", [&](void* out) {
                    kernels::softmax_backward(kind, g, dtype, dyd.raw_data(), yd.raw_data(), out, testing::kEmuStream);
                });
            }
        }
    }
}

TEST(EmuElementwise, BinaryOpsAndTheirBroadcastSumMatchTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<std::pair<Shape, Shape>> cases = {{Shape{300}, Shape{300}}, {Shape{4, 1, 5}, Shape{3, 1}}};
    for (const auto& [sa, sb] : cases) {
        SCOPED_TRACE(sa.to_string() + " " + sb.to_string());
        const Tensor a = testing::random_tensor(sa, rng);
        const Tensor b = add_scalar(testing::random_tensor(sb, rng), 2.0);  // away from zero for div
        const detail::BroadcastGeometry g = detail::broadcast_geometry("binary", sa, sb);
        const std::vector<std::pair<detail::BinaryOp, Tensor>> ops = {{detail::BinaryOp::Add, add(a, b)},
                                                                      {detail::BinaryOp::Sub, sub(a, b)},
                                                                      {detail::BinaryOp::Mul, mul(a, b)},
                                                                      {detail::BinaryOp::Div, div(a, b)}};
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor ad = a.to(dtype), bd = b.to(dtype);
            for (const auto& [op, reference] : ops) {
                testing::expect_kernel_output(reference, dtype, "binary", [&](void* out) {
                    kernels::binary_elementwise(op, g, dtype, ad.raw_data(), bd.raw_data(), out, testing::kEmuStream);
                });
            }
            // The sum's terms are random in sign, so it may cancel to near zero: judge it against
            // the sum of |terms| (summation_error), not relative to itself.
            const Tensor full = ops[2].second.to(dtype);
            const detail::ReduceToShapeGeometry r = detail::reduce_to_shape_geometry("sum_to_shape", full.shape(), sb);
            Tensor summed = testing::nan_tensor(sb, dtype);
            kernels::sum_dims(r, dtype, full.raw_data(), 1.0, summed.raw_data(), testing::kEmuStream);
            EXPECT_LT(
                testing::summation_error(summed, sum_to_shape(ops[2].second, sb), sum_to_shape(abs(ops[2].second), sb)),
                testing::emu_tolerance(dtype))
                << "sum_dims as sum_to_shape";
        }
    }
}

}  // namespace
}  // namespace convkit
