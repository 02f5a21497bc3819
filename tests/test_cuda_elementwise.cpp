// The CUDA elementwise and reduction kernels against the host implementations (label gpu):
// binary ops with broadcasting, sum_to_shape, unary ops and activations forward and backward,
// their 16-byte packs against their one-element path (unaligned buffers, tails, 16-bit dtypes),
// sums, means, max and argmax over every kernel path (CUB's one-output reduction, a block per
// row, a thread per row), dropout's mask. Outputs are NaN-filled before each kernel runs; sizes
// include ones that are not multiples of the block size, ones past 2^16 elements, and empty
// tensors. Tolerances: float64 1e-12 (elementwise results are compared exactly where both
// sides do the same correctly rounded IEEE operation); float32 transcendental functions 1e-5
// (CUDA's math library and glibc differ by an ulp or two); float32 sums 1e-6 (both accumulate
// in double and round once).
#include <cmath>
#include <limits>
#include <optional>

#include "backends/host/binary_host.h"
#include "backends/host/dropout_host.h"
#include "backends/host/reduce_host.h"
#include "backends/host/unary_host.h"
#include "kernels/binary.h"
#include "kernels/dropout.h"
#include "kernels/index_width.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {
using namespace convkit::testing;

const DType kDtypes[] = {DType::Float64, DType::Float32};

class CudaElementwise : public WithCuda<> {};

// Shapes for elementwise work: odd sizes, one past 2^16 elements, and an empty one.
const std::vector<Shape>& elementwise_shapes() {
    static const std::vector<Shape> shapes = {Shape{1},        Shape{255},  Shape{3, 7, 13},
                                              Shape{257, 259}, Shape{0, 5}, Shape{}};
    return shapes;
}

// What `launch` writes into a NaN-filled CUDA tensor of `shape`, copied to the host.
template <typename Launch>
Tensor run_poisoned(const Shape& shape, DType dtype, Launch launch) {
    Tensor out = nan_tensor(shape, dtype, Device::cuda());
    launch(out);
    return out.to(Device::host());
}

Stream stream0() {
    return current_stream(0);
}

// A sum of `dtype` values, accumulated in double and rounded once, against float64 on the same
// values: float64 within its own rounding, the others within the rounding of their result.
double sum_tolerance(DType dtype) {
    if (dtype == DType::Float64) return kFloat64Tolerance;
    return dtype == DType::Float32 ? kFloat32VsFloat64Tolerance : sixteen_bit_tolerance(dtype);
}

// NaN exactly where `expected` has NaN (a mean of nothing, a maximum of a row holding NaN), and
// the other elements within `tolerance`: relative error, or, given the magnitudes of the terms
// behind each element (a sum or a mean), summation_error. Tolerance 0: exactly equal.
void expect_close_with_nan(const Tensor& got, const Tensor& expected, double tolerance,
                           const std::optional<Tensor>& magnitudes = std::nullopt) {
    ASSERT_EQ(got.shape(), expected.shape());
    std::vector<double> a = got.to_vector(), b = expected.to_vector();
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(b[i])) {
            EXPECT_TRUE(std::isnan(a[i])) << "element " << i << " is " << a[i] << ", expected NaN";
            a[i] = b[i] = 0;
        }
    }
    const Tensor got_values = Tensor::from_vector(got.shape(), a),
                 expected_values = Tensor::from_vector(got.shape(), b);
    if (magnitudes) {
        std::vector<double> m = magnitudes->to_vector();
        for (double& v : m) v = std::isnan(v) ? 0 : v;
        EXPECT_LE(summation_error(got_values, expected_values, Tensor::from_vector(got.shape(), m)), tolerance);
    } else {
        EXPECT_LE(relative_error(got_values, expected_values), tolerance);
    }
}

// ---- binary ----------------------------------------------------------------------------------

TEST_F(CudaElementwise, BinaryOpsWithBroadcastingEqualTheHost) {
    for (bool wide : {false, true}) {
        // The broadcasting kernel divides by FastDivisor below 2^31 elements, and in 64 bits past
        // them (forced here: the emulated device cannot hold that many).
        SCOPED_TRACE(wide ? "64-bit index kernel" : "32-bit index kernel");
        const kernels::ForcedIndexWidth width(wide);
        CONVKIT_SEEDED_RNG(rng);
        const std::vector<std::pair<Shape, Shape>> pairs = {
            {Shape{257, 259}, Shape{257, 259}},
            {Shape{257, 259}, Shape{259}},
            {Shape{2, 3, 4, 5, 6}, Shape{3, 1, 1, 6}},
            {Shape{300, 1}, Shape{1, 301}},
            {Shape{5}, Shape{}},
            {Shape{0, 4}, Shape{4}},
            {Shape{1, 3, 1}, Shape{2, 1, 4}},
            {Shape{4, 6, 3, 5}, Shape{1, 6, 1, 1}},
            // Inner extents of whole 16-byte packs, each operand running or staying along them: the
            // packed kernel (a per-channel addend, a row added to every row, both running).
            {Shape{2, 5, 16}, Shape{1, 5, 1}},
            {Shape{3, 16}, Shape{16}},
            {Shape{4, 1, 8}, Shape{1, 3, 8}},
            {Shape{6, 8}, Shape{6, 1}}};
        using detail::BinaryOp;
        for (const auto& [sa, sb] : pairs) {
            SCOPED_TRACE(sa.to_string() + " op " + sb.to_string());
            const Tensor a = random_tensor(sa, rng);
            const Tensor b = Tensor::uniform(sb, 0.5, 2, rng(), DType::Float64);  // away from 0 for division
            const detail::BroadcastGeometry g = detail::broadcast_geometry("test", sa, sb);
            const Shape out_shape = detail::broadcast_shape("test", sa, sb);
            for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::NegDivSquare}) {
                SCOPED_TRACE(detail::binary_op_name(op));
                for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
                    const Tensor ah = a.to(dtype), bh = b.to(dtype);
                    // 16 bits: the kernels compute in float and round once, as the host's float32
                    // loop on the widened values does before its one rounding.
                    const DType computed = is_reduced_precision(dtype) ? DType::Float32 : dtype;
                    Tensor expected = Tensor::empty(out_shape, computed);
                    detail::binary_elementwise_host(op, g, computed, ah.to(computed).raw_data(),
                                                    bh.to(computed).raw_data(), expected.raw_data());
                    expected = expected.to(dtype);
                    const Tensor ad = ah.to(Device::cuda()), bd = bh.to(Device::cuda());
                    const Tensor got = run_poisoned(out_shape, dtype, [&](Tensor& out) {
                        kernels::binary_elementwise(op, g, dtype, ad.raw_data(), bd.raw_data(), out.raw_data(),
                                                    stream0());
                    });
                    // One correctly rounded operation (two for neg_div_square) on both sides: exact.
                    EXPECT_TRUE(exactly_equal(got, expected))
                        << dtype_name(dtype) << ", max difference " << max_abs_difference(got, expected);
                }
            }
        }
    }
}

TEST_F(CudaElementwise, SumToShapeEqualsTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<std::pair<Shape, Shape>> pairs = {
        {Shape{257, 259}, Shape{259}},
        {Shape{257, 259}, Shape{257, 1}},
        {Shape{300, 301}, Shape{}},
        {Shape{2, 3, 4, 5, 6}, Shape{3, 1, 1, 6}},
        {Shape{0, 4}, Shape{4}},
        {Shape{4, 0}, Shape{0}},
        // Long rows walked by the cursor (a step of 256 terms crossing runs of 1,600 and 30), split
        // into chunks added in a second pass (4 and 2 of them): a bias-like gradient, and summed
        // dims between kept ones.
        {Shape{8, 16, 40, 40}, Shape{16, 1, 1}},
        {Shape{160, 3, 30, 7}, Shape{1, 3, 1, 7}},
        // The innermost dim kept: a thread a (row, chunk), adjacent threads on adjacent rows (a
        // Linear bias's gradient), in several chunks and in one.
        {Shape{3000, 10}, Shape{10}},
        {Shape{300, 2, 50}, Shape{2, 50}}};
    for (const auto& [full, reduced] : pairs) {
        SCOPED_TRACE(full.to_string() + " -> " + reduced.to_string());
        const detail::ReduceToShapeGeometry g = detail::reduce_to_shape_geometry("test", full, reduced);
        for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
            // 16 bits: summed in double from the stored values and rounded once, as the host's
            // float64 sum of the same values is (the orders differ, so the last bit may).
            const Tensor x = random_tensor(full, rng).to(dtype);
            const DType computed = is_reduced_precision(dtype) ? DType::Float64 : dtype;
            Tensor expected = Tensor::empty(reduced, computed);
            detail::sum_dims_host(g, computed, x.to(computed).raw_data(), 1.0, expected.raw_data());
            expected = expected.to(dtype);
            const double tolerance = sum_tolerance(dtype);
            // Judged against the terms' magnitudes: random terms that cancel leave a sum no relative
            // accuracy in any order (float64 failed 1e-12 relative about one run in 50).
            const Tensor magnitudes = sum_to_shape(abs(x.to(DType::Float64)), reduced);
            const auto error = [&](const Tensor& got) {
                return summation_error(got.to(Device::host()).to(DType::Float64), expected.to(DType::Float64),
                                       magnitudes);
            };
            const Tensor xd = x.to(Device::cuda());
            const Tensor got = run_poisoned(reduced, dtype, [&](Tensor& out) {
                kernels::sum_dims(g, dtype, xd.raw_data(), 1.0, out.raw_data(), stream0());
            });
            EXPECT_LT(error(got), tolerance) << dtype_name(dtype);
            // And through the public op.
            EXPECT_LT(error(sum_to_shape(xd, reduced)), tolerance);
        }
    }
}

// Broadcasting beside a channels-last activation reads every operand in its own format and
// writes the result in the activation's (the geometry walks the result's buffer): each value is
// the contiguous op's, bit for bit (one rounding each), every dtype, both index widths, packed
// (16 channels) and not (5), with no layout converted (operands of one shape in two formats: b
// converted to a's, once).
TEST_F(CudaElementwise, ChannelsLastBroadcastingEqualsTheContiguousOpsBitForBit) {
    using detail::BinaryOp;
    CONVKIT_SEEDED_RNG(rng);
    struct Pair {
        Shape a, b;
        MemoryFormat a_format, b_format;
        MemoryFormat result;
        std::uint64_t conversions = 0;
    };
    constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast, kC = MemoryFormat::Contiguous;
    const std::vector<Pair> pairs = {
        {Shape{3, 16, 9, 7}, Shape{16, 1, 1}, kCL, kC, kCL},        // a bias
        {Shape{3, 5, 9, 7}, Shape{1, 5, 1, 1}, kCL, kCL, kCL},      // a bias, not whole packs
        {Shape{3, 16, 9, 7}, Shape{3, 16, 1, 1}, kCL, kCL, kCL},    // a per-sample scale
        {Shape{2, 16, 5, 6, 7}, Shape{16, 1, 1, 1}, kCL, kC, kCL},  // 3-D
        {Shape{4, 16, 33}, Shape{16, 1}, kCL, kC, kCL},             // 1-D
        {Shape{1, 16, 9, 7}, Shape{2, 16, 9, 7}, kC, kCL, kCL},     // the full operand second
        {Shape{2, 16, 9, 7}, Shape{1, 16, 9, 7}, kCL, kCL, kCL},    // a plane per sample
        {Shape{2, 16, 9, 7}, Shape{16, 9, 7}, kCL, kCL, kCL},       // a lower-rank channels-last operand
        {Shape{2, 16, 9, 7}, Shape{2, 16, 9, 7}, kCL, kC, kCL, 1},  // one shape in two formats
        {Shape{2, 16, 1, 7}, Shape{2, 1, 9, 1}, kCL, kCL, kC}};     // neither of the result's shape
    const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div};
    const auto run = [](BinaryOp op, const Tensor& a, const Tensor& b) {
        switch (op) {
            case BinaryOp::Add:
                return add(a, b);
            case BinaryOp::Sub:
                return sub(a, b);
            case BinaryOp::Mul:
                return mul(a, b);
            default:
                return div(a, b);
        }
    };
    for (const bool wide : {false, true}) {
        SCOPED_TRACE(wide ? "64-bit index kernel" : "32-bit index kernel");
        const kernels::ForcedIndexWidth width(wide);
        for (const Pair& p : pairs) {
            SCOPED_TRACE(p.a.to_string() + " op " + p.b.to_string());
            const Tensor a = random_tensor(p.a, rng);
            const Tensor b = Tensor::uniform(p.b, 0.5, 2, rng(), DType::Float64);
            for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
                SCOPED_TRACE(dtype_name(dtype));
                const Tensor ad = a.to(dtype).to(Device::cuda()), bd = b.to(dtype).to(Device::cuda());
                const Tensor a_given = ad.to(p.a_format), b_given = bd.to(p.b_format);
                for (BinaryOp op : ops) {
                    SCOPED_TRACE(detail::binary_op_name(op));
                    const Tensor expected = run(op, ad, bd).to(Device::host());
                    reset_layout_conversions();
                    const Tensor got = run(op, a_given, b_given);
                    EXPECT_EQ(layout_conversions(), p.conversions);
                    EXPECT_EQ(got.memory_format(), p.result);
                    EXPECT_TRUE(exactly_equal(got.to(Device::host()), expected))
                        << "max difference " << max_abs_difference(got.to(Device::host()), expected);
                }
            }
        }
    }
}

// A channels-last gradient summed to a bias, a per-sample or a per-position shape is read in its
// buffer (the result contiguous, or channels-last where the kept dims are ordered as the
// buffer's), the lower-rank per-position shape from a contiguous copy; every sum against the
// float64 host within the dtype's tolerance of the terms' magnitudes (the orders of the terms
// differ from the contiguous gradient's), through chunked and single passes.
TEST_F(CudaElementwise, SumToShapeReadsAChannelsLastGradientInPlace) {
    CONVKIT_SEEDED_RNG(rng);
    struct Case {
        Shape full, reduced;
        MemoryFormat result;
        bool converts;
    };
    constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast, kC = MemoryFormat::Contiguous;
    const std::vector<Case> cases = {{Shape{8, 16, 40, 40}, Shape{16, 1, 1}, kC, false},
                                     {Shape{8, 16, 40, 40}, Shape{1, 16, 1, 1}, kC, false},
                                     {Shape{8, 16, 40, 40}, Shape{8, 16, 1, 1}, kC, false},
                                     {Shape{8, 5, 40, 40}, Shape{5, 1, 1}, kC, false},
                                     {Shape{8, 16, 40, 40}, Shape{1, 16, 40, 40}, kCL, false},
                                     {Shape{8, 16, 40, 40}, Shape{1, 1, 40, 40}, kC, false},
                                     {Shape{2, 16, 6, 7, 8}, Shape{16, 1, 1, 1}, kC, false},
                                     {Shape{30, 16, 300}, Shape{16, 1}, kC, false},
                                     {Shape{8, 16, 40, 40}, Shape{16, 40, 40}, kC, true}};
    for (const Case& c : cases) {
        SCOPED_TRACE(c.full.to_string() + " -> " + c.reduced.to_string());
        for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor x = random_tensor(c.full, rng).to(dtype);
            const Tensor expected = sum_to_shape(x.to(DType::Float64), c.reduced).to(dtype);
            const double tolerance = sum_tolerance(dtype);
            const Tensor xd = x.to(Device::cuda()).to(kCL);
            reset_layout_conversions();
            const Tensor got = sum_to_shape(xd, c.reduced);
            EXPECT_EQ(layout_conversions(), c.converts ? 1u : 0u);
            EXPECT_EQ(got.memory_format(), c.result);
            EXPECT_LT(summation_error(got.to(Device::host()).to(DType::Float64), expected.to(DType::Float64),
                                      sum_to_shape(abs(x.to(DType::Float64)), c.reduced)),
                      tolerance);
        }
    }
}

// The column sums (the innermost dim kept) on a buffer one element off 16 bytes: single values
// where the aligned buffer takes packs (another block shape, so another order of the terms), both
// against float64 by the terms' magnitudes.
TEST_F(CudaElementwise, ColumnSumsOfAnUnalignedBufferTakeSingleValues) {
    CONVKIT_SEEDED_RNG(rng);
    const Shape full{2000, 64}, reduced{64};
    const detail::ReduceToShapeGeometry g = detail::reduce_to_shape_geometry("test", full, reduced);
    for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor x = random_tensor(full, rng).to(dtype);
        const Tensor expected = sum_to_shape(x.to(DType::Float64), reduced);
        const Tensor magnitudes = sum_to_shape(abs(x.to(DType::Float64)), reduced);
        const double tolerance = sum_tolerance(dtype);
        for (std::int64_t offset : {0, 1}) {
            SCOPED_TRACE(offset == 0 ? "aligned" : "one element off");
            const OffsetBuffer xd(x, offset), out(nan_tensor(reduced, dtype), offset);
            kernels::sum_dims(g, dtype, xd.data(), 1.0, out.data(), stream0());
            EXPECT_LT(summation_error(out.values(reduced).to(DType::Float64), expected, magnitudes), tolerance);
        }
    }
}

// A channels-last activation scaled per sample and channel and shifted by a bias, trained
// through autograd: no layout converted, the activation's gradient channels-last, every gradient
// within float32's tolerance of float64.
TEST_F(CudaElementwise, ChannelsLastScaleAndBiasTrainWithoutConverting) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x0 = random_tensor(Shape{4, 16, 10, 9}, rng), s0 = random_tensor(Shape{4, 16, 1, 1}, rng),
                 b0 = random_tensor(Shape{16, 1, 1}, rng), dy0 = random_tensor(Shape{4, 16, 10, 9}, rng);
    const auto grads = [&](DType dtype, Device device, MemoryFormat format) {
        const auto leaf = [&](const Tensor& t, MemoryFormat f) {
            Tensor l = t.to(dtype).to(device).to(f).detach();
            l.set_requires_grad();
            return l;
        };
        const Tensor x = leaf(x0, format), s = leaf(s0, MemoryFormat::Contiguous),
                     b = leaf(b0, MemoryFormat::Contiguous);
        reset_layout_conversions();
        const Tensor y = add(mul(x, s), b);
        EXPECT_EQ(y.memory_format(), format);
        y.backward(dy0.to(dtype).to(device).to(format));
        EXPECT_EQ(layout_conversions(), 0u);
        EXPECT_EQ(x.grad().memory_format(), format);
        const auto host = [](const Tensor& t) { return t.to(Device::host()).to(DType::Float64); };
        return std::tuple{host(y), host(x.grad()), host(s.grad()), host(b.grad())};
    };
    const auto [y, dx, ds, db] = grads(DType::Float64, Device::host(), MemoryFormat::Contiguous);
    const auto [y_got, dx_got, ds_got, db_got] = grads(DType::Float32, Device::cuda(), MemoryFormat::ChannelsLast);
    EXPECT_LT(relative_error(y_got, y), kFloat32VsFloat64Tolerance);
    EXPECT_LT(relative_error(dx_got, dx), kFloat32VsFloat64Tolerance);
    EXPECT_LT(relative_error(ds_got, ds), kFloat32VsFloat64Tolerance);
    EXPECT_LT(relative_error(db_got, db), kFloat32VsFloat64Tolerance);
}

// ---- unary -----------------------------------------------------------------------------------

struct UnaryCase {
    detail::UnaryOp op;
    detail::UnaryScalars scalars;
    double low, high;  // the input's range: inside the op's domain
};

std::vector<UnaryCase> unary_cases() {
    using U = detail::UnaryOp;
    return {{U::Neg, {}, -3, 3},          {U::Exp, {}, -5, 5},
            {U::Log, {}, 0.01, 10},       {U::Sqrt, {}, 0.01, 10},
            {U::Square, {}, -3, 3},       {U::Abs, {}, -3, 3},
            {U::AddScalar, {0.3}, -3, 3}, {U::MulScalar, {-1.7}, -3, 3},
            {U::DivScalar, {3}, -3, 3},   {U::PowScalar, {2.5}, 0.01, 3},
            {U::PowScalar, {-1}, 0.1, 3}, {U::Clamp, {-0.5, 0.75}, -1, 1},
            {U::Relu, {}, -2, 2},         {U::LeakyRelu, {0.1}, -2, 2},
            {U::Sigmoid, {}, -8, 8},      {U::Tanh, {}, -4, 4},
            {U::Gelu, {}, -5, 5},         {U::GeluTanh, {}, -5, 5}};
}

TEST_F(CudaElementwise, UnaryOpsForwardAndBackwardMatchTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    for (const UnaryCase& c : unary_cases()) {
        SCOPED_TRACE(detail::unary_op_name(c.op));
        for (const Shape& shape : elementwise_shapes()) {
            SCOPED_TRACE(shape.to_string());
            const Tensor x64 = Tensor::uniform(shape, c.low, c.high, rng(), DType::Float64);
            const Tensor dy64 = random_tensor(shape, rng);
            for (DType dtype : kDtypes) {
                SCOPED_TRACE(dtype_name(dtype));
                const Tensor x = x64.to(dtype), dy = dy64.to(dtype);
                const std::int64_t n = shape.numel();
                Tensor y = Tensor::empty(shape, dtype);
                detail::unary_forward_host(c.op, c.scalars, dtype, x.raw_data(), y.raw_data(), n);
                // The backward reads the input or the output; give it the one it expects.
                const Tensor& saved = detail::unary_gradient_source(c.op) == detail::GradientSource::Output ? y : x;
                Tensor dx = Tensor::empty(shape, dtype);
                detail::unary_backward_host(c.op, c.scalars, dtype, dy.raw_data(), saved.raw_data(), dx.raw_data(), n);

                const Tensor xd = x.to(Device::cuda()), dyd = dy.to(Device::cuda()), savedd = saved.to(Device::cuda());
                const Tensor got_y = run_poisoned(shape, dtype, [&](Tensor& out) {
                    kernels::unary_forward(c.op, c.scalars, dtype, xd.raw_data(), out.raw_data(), n, stream0());
                });
                const Tensor got_dx = run_poisoned(shape, dtype, [&](Tensor& out) {
                    kernels::unary_backward(c.op, c.scalars, dtype, dyd.raw_data(), savedd.raw_data(), out.raw_data(),
                                            n, stream0());
                });
                const double tolerance =
                    dtype == DType::Float64 ? kFloat64Tolerance : testing::kCudaFloat32MathTolerance;
                EXPECT_LT(relative_error(got_y, y), tolerance) << "forward";
                EXPECT_LT(relative_error(got_dx, dx), tolerance) << "backward";
            }
        }
    }
}

TEST_F(CudaElementwise, PublicOpsRunOnTheDeviceAndDifferentiate) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = Tensor::uniform(Shape{33, 65}, 0.1, 2, rng(), DType::Float64);
    const Tensor w = random_tensor(Shape{65}, rng);
    auto f = [&](const Tensor& input, const Tensor& weight) {
        return mean(gelu(log(input) * weight) + sigmoid(input) * 2.0 - relu(input - 1.0), {1});
    };
    Tensor xh = x.clone().set_requires_grad();
    const Tensor yh = f(xh, w);
    yh.backward(Tensor::full(yh.shape(), 1.0, DType::Float64));
    Tensor xd = x.to(Device::cuda()).set_requires_grad();
    const Tensor yd = f(xd, w.to(Device::cuda()));
    EXPECT_EQ(yd.device(), Device::cuda());
    yd.backward(Tensor::full(yd.shape(), 1.0, DType::Float64, Device::cuda()));
    EXPECT_LT(relative_error(yd, yh), kFloat64Tolerance);
    EXPECT_LT(relative_error(xd.grad(), xh.grad()), kFloat64Tolerance);
}

// ---- packs and alignment ---------------------------------------------------------------------

// The unary and same-shape binary kernels move 16-byte packs where every buffer is aligned and
// single elements otherwise. Both run the same arithmetic per element, so they must agree bit
// for bit with each other, and with the host within the dtype's rounding; sizes leave tails of
// every length (1 to 7 elements past the last whole pack of 8 16-bit values).
TEST_F(CudaElementwise, PackedAndUnalignedPathsAgreeBitForBit) {
    CONVKIT_SEEDED_RNG(rng);
    using detail::UnaryOp;
    const std::vector<UnaryCase> cases = {{UnaryOp::Relu, {}, -2, 2},
                                          {UnaryOp::MulScalar, {-1.7}, -3, 3},
                                          {UnaryOp::Sigmoid, {}, -8, 8},
                                          {UnaryOp::Gelu, {}, -5, 5}};
    for (const std::int64_t n : {1, 7, 9, 255, 4099, 66563}) {
        const Shape shape{n};
        for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
            SCOPED_TRACE(std::to_string(n) + " " + dtype_name(dtype));
            // The host computes 16-bit values in float32 and rounds once, as the kernels do.
            const DType host_dtype = dtype == DType::Float64 ? DType::Float64 : DType::Float32;
            const double tolerance = dtype == DType::Float64   ? kFloat64Tolerance
                                     : dtype == DType::Float32 ? kCudaFloat32MathTolerance
                                                               : kBfloat16VsFloat64Tolerance;
            for (const UnaryCase& c : cases) {
                SCOPED_TRACE(detail::unary_op_name(c.op));
                const Tensor x = Tensor::uniform(shape, c.low, c.high, rng(), DType::Float64).to(dtype);
                const Tensor dy = random_tensor(shape, rng).to(dtype);
                Tensor expected = Tensor::empty(shape, host_dtype);
                detail::unary_forward_host(c.op, c.scalars, host_dtype, x.to(host_dtype).raw_data(),
                                           expected.raw_data(), n);
                expected = expected.to(dtype);
                const Tensor& saved =
                    detail::unary_gradient_source(c.op) == detail::GradientSource::Output ? expected : x;
                Tensor expected_dx = Tensor::empty(shape, host_dtype);
                detail::unary_backward_host(c.op, c.scalars, host_dtype, dy.to(host_dtype).raw_data(),
                                            saved.to(host_dtype).raw_data(), expected_dx.raw_data(), n);
                expected_dx = expected_dx.to(dtype);
                std::vector<Tensor> forward, backward;
                for (std::int64_t offset : {0, 1}) {
                    const OffsetBuffer xd(x, offset), dyd(dy, offset), savedd(saved, offset);
                    const OffsetBuffer y(nan_tensor(shape, dtype), offset), dx(nan_tensor(shape, dtype), offset);
                    kernels::unary_forward(c.op, c.scalars, dtype, xd.data(), y.data(), n, stream0());
                    kernels::unary_backward(c.op, c.scalars, dtype, dyd.data(), savedd.data(), dx.data(), n, stream0());
                    forward.push_back(y.values(shape));
                    backward.push_back(dx.values(shape));
                }
                EXPECT_TRUE(exactly_equal(forward[0], forward[1])) << max_abs_difference(forward[0], forward[1]);
                EXPECT_TRUE(exactly_equal(backward[0], backward[1])) << max_abs_difference(backward[0], backward[1]);
                EXPECT_LT(relative_error(forward[0], expected), tolerance) << "forward";
                EXPECT_LT(relative_error(backward[0], expected_dx), tolerance) << "backward";
            }
            // Same-shape binary ops: one correctly rounded operation on both sides (then the same
            // rounding to 16 bits), exact.
            const Tensor a = random_tensor(shape, rng).to(dtype);
            const Tensor b = Tensor::uniform(shape, 0.5, 2, rng(), DType::Float64).to(dtype);
            const detail::BroadcastGeometry g = detail::broadcast_geometry("test", shape, shape);
            for (detail::BinaryOp op : {detail::BinaryOp::Sub, detail::BinaryOp::Div}) {
                SCOPED_TRACE(detail::binary_op_name(op));
                Tensor expected = Tensor::empty(shape, host_dtype);
                detail::binary_elementwise_host(op, g, host_dtype, a.to(host_dtype).raw_data(),
                                                b.to(host_dtype).raw_data(), expected.raw_data());
                expected = expected.to(dtype);
                for (std::int64_t offset : {0, 1}) {
                    const OffsetBuffer ad(a, offset), bd(b, offset), out(nan_tensor(shape, dtype), offset);
                    kernels::binary_elementwise(op, g, dtype, ad.data(), bd.data(), out.data(), stream0());
                    const Tensor got = out.values(shape);
                    EXPECT_TRUE(exactly_equal(got, expected))
                        << "offset " << offset << ", max difference " << max_abs_difference(got, expected);
                }
            }
        }
    }
}

// ---- reductions ------------------------------------------------------------------------------

struct SumCase {
    Shape shape;
    std::vector<int> dims;  // reduced (empty: all)
};

// Chosen to reach every path: one output (CUB), rows of >= 256 terms (a block each), short rows
// (a thread each); more than 2^16 elements; empty inputs and outputs.
std::vector<SumCase> sum_cases() {
    return {{Shape{257, 259}, {}},  {Shape{70001}, {0}},      {Shape{257, 259}, {1}},
            {Shape{257, 259}, {0}}, {Shape{3, 1000, 7}, {1}}, {Shape{2, 3, 4, 5, 6}, {0, 2, 4}},
            {Shape{300, 5}, {1}},   {Shape{5}, {0}},          {Shape{0, 7}, {}},
            {Shape{4, 0}, {1}},     {Shape{0, 4}, {1}},       {Shape{}, {}}};
}

std::vector<bool> reduced_marks(const SumCase& c) {
    std::vector<bool> reduced(static_cast<std::size_t>(c.shape.rank()), c.dims.empty());
    for (int d : c.dims) reduced[static_cast<std::size_t>(d)] = true;
    return reduced;
}

Shape kept_shape(const SumCase& c) {
    std::vector<std::int64_t> dims;
    const std::vector<bool> reduced = reduced_marks(c);
    for (int d = 0; d < c.shape.rank(); ++d) dims.push_back(reduced[static_cast<std::size_t>(d)] ? 1 : c.shape[d]);
    return Shape(dims);
}

TEST_F(CudaElementwise, SumsAndMeansMatchTheHostOnEveryPath) {
    CONVKIT_SEEDED_RNG(rng);
    for (const SumCase& c : sum_cases()) {
        const Shape kept = kept_shape(c);
        SCOPED_TRACE(c.shape.to_string() + " -> " + kept.to_string());
        const detail::ReduceToShapeGeometry g = detail::reduce_to_shape_geometry("test", c.shape, kept);
        for (DType dtype : kDtypes) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor x = random_tensor(c.shape, rng).to(dtype);
            const Tensor xd = x.to(Device::cuda());
            const double tolerance = dtype == DType::Float64 ? kFloat64Tolerance : kFloat32VsFloat64Tolerance;
            for (double scale : {1.0, 1.0 / 3.0}) {
                Tensor expected = Tensor::empty(kept, dtype), magnitudes = Tensor::empty(kept, dtype);
                detail::sum_dims_host(g, dtype, x.raw_data(), scale, expected.raw_data());
                detail::sum_dims_host(g, dtype, abs(x).raw_data(), scale, magnitudes.raw_data());
                const Tensor got = run_poisoned(kept, dtype, [&](Tensor& out) {
                    kernels::sum_dims(g, dtype, xd.raw_data(), scale, out.raw_data(), stream0());
                });
                EXPECT_LT(summation_error(got, expected, magnitudes), tolerance) << "scale " << scale;
                // The same order every run.
                const Tensor again = run_poisoned(kept, dtype, [&](Tensor& out) {
                    kernels::sum_dims(g, dtype, xd.raw_data(), scale, out.raw_data(), stream0());
                });
                EXPECT_TRUE(exactly_equal(again, got)) << "not deterministic";
            }
            // Through the public op, whose mean over no elements is NaN.
            expect_close_with_nan(mean(xd, c.dims, true), mean(x, c.dims, true), tolerance, mean(abs(x), c.dims, true));
        }
    }
}

TEST_F(CudaElementwise, Float32WholeSumsAccumulateInDouble) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = Tensor::uniform(Shape{1 << 22}, 0, 1, rng(), DType::Float32);
    const Tensor exact = sum(x.to(DType::Float64));
    EXPECT_LT(relative_error(sum(x.to(Device::cuda())), exact), kFloat32VsFloat64Tolerance);
}

struct MaxCase {
    Shape shape;
    int dim;
    bool all = false;  // over all elements instead of along `dim`
};

TEST_F(CudaElementwise, MaxArgmaxAndTheirGradientEqualTheHostWithTiesAndNaN) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<MaxCase> cases = {{Shape{257, 259}, 0, true}, {Shape{70001}, 0, true}, {Shape{257, 259}, 1},
                                        {Shape{257, 259}, 0},       {Shape{3, 1000, 7}, 1},  {Shape{300, 5}, 1},
                                        {Shape{2, 3, 4, 5, 6}, 2},  {Shape{0, 5}, 1},        {Shape{1}, 0, true}};
    for (const MaxCase& c : cases) {
        detail::DimReduceGeometry g;
        if (c.all) {
            g.size = c.shape.numel();
        } else {
            for (int i = 0; i < c.shape.rank(); ++i) {
                if (i < c.dim) g.outer *= c.shape[i];
                if (i == c.dim) g.size = c.shape[i];
                if (i > c.dim) g.inner *= c.shape[i];
            }
        }
        SCOPED_TRACE(c.shape.to_string() + (c.all ? " all" : " dim " + std::to_string(c.dim)));
        const Shape rows{g.rows()};
        for (const auto& [dtype, with_nan] : {std::pair{DType::Float64, false}, std::pair{DType::Float64, true},
                                              std::pair{DType::Float32, false}, std::pair{DType::Float32, true}}) {
            SCOPED_TRACE(std::string(dtype_name(dtype)) + (with_nan ? " with NaN" : ""));
            // Small integers: many ties. With NaN: one every 997 elements, from a random start.
            std::vector<double> v = small_integer_tensor(c.shape, rng(), 3).to_vector();
            if (with_nan) {
                for (std::size_t i = static_cast<std::size_t>(pick(rng, 0, 996)); i < v.size(); i += 997) {
                    v[i] = std::numeric_limits<double>::quiet_NaN();
                }
            }
            const Tensor x = Tensor::from_vector(c.shape, v).to(dtype);
            Tensor values = Tensor::empty(rows, dtype);
            Tensor indices = Tensor::empty(rows, DType::Int64);
            detail::max_dim_host(g, dtype, x.raw_data(), values.raw_data(), indices.data<std::int64_t>());
            const Tensor xd = x.to(Device::cuda());
            Tensor got_values = nan_tensor(rows, dtype, Device::cuda());
            Tensor got_indices = Tensor::full(rows, -7, DType::Int64, Device::cuda());
            kernels::max_dim(g, dtype, xd.raw_data(), got_values.raw_data(), got_indices.data<std::int64_t>(),
                             stream0());
            EXPECT_EQ(got_indices.to_vector(), indices.to_vector());
            expect_close_with_nan(got_values, values, 0.0);  // a selection: exact
            // Indices only (argmax): values may be null.
            Tensor only_indices = Tensor::full(rows, -7, DType::Int64, Device::cuda());
            kernels::max_dim(g, dtype, xd.raw_data(), nullptr, only_indices.data<std::int64_t>(), stream0());
            EXPECT_EQ(only_indices.to_vector(), indices.to_vector());
            // Backward: the gradient goes to the recorded maxima.
            const Tensor dy = random_tensor(rows, rng).to(dtype);
            Tensor dx = Tensor::empty(c.shape, dtype);
            detail::max_backward_host(g, dtype, dy.raw_data(), indices.data<std::int64_t>(), dx.raw_data());
            const Tensor dyd = dy.to(Device::cuda()), indicesd = indices.to(Device::cuda());
            const Tensor got_dx = run_poisoned(c.shape, dtype, [&](Tensor& out) {
                kernels::max_backward(g, dtype, dyd.raw_data(), indicesd.data<std::int64_t>(), out.raw_data(),
                                      stream0());
            });
            EXPECT_TRUE(exactly_equal(got_dx, dx));
        }
    }
}

TEST_F(CudaElementwise, PublicReductionsRunOnTheDevice) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{4, 300, 3}, rng);
    const Tensor xd = x.to(Device::cuda());
    EXPECT_LT(summation_error(sum(xd), sum(x), sum(abs(x))), kFloat64Tolerance);
    EXPECT_LT(summation_error(mean(xd, {0, 2}), mean(x, {0, 2}), mean(abs(x), {0, 2})), kFloat64Tolerance);
    EXPECT_TRUE(exactly_equal(max(xd), max(x)));
    EXPECT_TRUE(exactly_equal(max(xd, 1, true), max(x, 1, true)));
    const Tensor indices = argmax(xd, -2);
    EXPECT_EQ(indices.device(), Device::cuda());
    EXPECT_EQ(indices.dtype(), DType::Int64);
    EXPECT_EQ(indices.to_vector(), argmax(x, -2).to_vector());
    Tensor leaf = xd.clone().set_requires_grad();
    max(leaf, 1).backward(Tensor::full(Shape{4, 3}, 1.0, DType::Float64, Device::cuda()));
    Tensor host_leaf = x.clone().set_requires_grad();
    max(host_leaf, 1).backward(Tensor::full(Shape{4, 3}, 1.0, DType::Float64));
    EXPECT_TRUE(exactly_equal(leaf.grad(), host_leaf.grad()));
    EXPECT_THROW((void)max(Tensor::zeros(Shape{0}, DType::Float32, Device::cuda())), InvalidArgument);
}

// ---- dropout ---------------------------------------------------------------------------------

TEST_F(CudaElementwise, DropoutMaskEqualsTheHostMaskForTheSameSeed) {
    CONVKIT_SEEDED_RNG(rng);
    for (const Shape& shape : elementwise_shapes()) {
        SCOPED_TRACE(shape.to_string());
        for (DType dtype : kDtypes) {
            for (double p : {0.0, 0.3, 0.9, 1.0}) {
                SCOPED_TRACE(p);
                const Tensor x = Tensor::uniform(shape, 1, 2, rng(), dtype);
                const std::uint64_t seed = rng();
                Tensor expected = Tensor::empty(shape, dtype);
                detail::dropout_host(dtype, x.raw_data(), expected.raw_data(), x.numel(), p, seed);
                const Tensor xd = x.to(Device::cuda());
                const Tensor got = run_poisoned(shape, dtype, [&](Tensor& out) {
                    kernels::dropout(dtype, xd.raw_data(), out.raw_data(), x.numel(), p, seed, nullptr, stream0());
                });
                EXPECT_TRUE(exactly_equal(got, expected)) << dtype_name(dtype);
            }
        }
    }
    // Through the public op, with its gradient.
    const Tensor x = random_tensor(Shape{301, 257}, rng);
    const std::uint64_t seed = rng();
    Tensor leaf = x.to(Device::cuda()).set_requires_grad();
    const Tensor y = dropout(leaf, 0.25, true, seed);
    EXPECT_TRUE(exactly_equal(y, dropout(x, 0.25, true, seed)));
    const Tensor dy = random_tensor(x.shape(), rng);
    y.backward(dy.to(Device::cuda()));
    EXPECT_TRUE(exactly_equal(leaf.grad(), dropout(dy, 0.25, true, seed)));
}

}  // namespace
}  // namespace convkit
