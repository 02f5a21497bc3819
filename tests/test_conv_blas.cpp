// The host-blas convolution (im2col, OpenBLAS, col2im) against the host reference, the oracle:
// every pass (forward, backward data, backward filter, bias; transposed convolution through the
// adjoint geometry) on fixed corner cases and on fresh random geometries each run, in float64
// (1e-12), float32 (each element against its terms' magnitudes) and bit for bit on small
// integers. Outputs are filled with NaN before each pass, so an element the backend leaves
// unwritten fails. The scratch bound is exercised by running each case again with blocks of one
// column and of half an image plus one (images split into uneven blocks).
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backends/host/conv_blas.h"
#include "backend_api/selection.h"
#include "backend_api/geometry.h"
#include "test_util.h"
#include "variant_runner.h"
#include "tolerances.h"

namespace convkit {
namespace {

#ifndef CONVKIT_WITH_OPENBLAS
// A build without OpenBLAS has no host-blas backend: asking for it is NotSupported, saying so.
TEST(ConvBlasOps, NotSupportedWithoutOpenBlas) {
    BackendGuard guard(Backend::HostBlas);
    const Tensor ones = Tensor::full(Shape{1, 1, 3, 3}, 1.0);
    EXPECT_THROW(conv_forward(ones, ones, ConvParams(2)), NotSupported);
}
#else

using detail::ConvGeometry;
using testing::exactly_equal;
using testing::max_abs_difference;
using testing::nan_tensor;
using testing::pick;
using testing::random_tensor;
using testing::relative_error;

// ---- Problems ----------------------------------------------------------------------------------

// One convolution or transposed convolution, as the public ops take it.
struct ConvProblem {
    ConvParams params{2};
    Shape input;
    Shape weight;
    bool transposed = false;

    std::string name() const {
        return testing::test_name(conv_op_name(params.spatial_rank, transposed) + "_" + params.to_string() + "_x" +
                                  input.to_string() + "_w" + weight.to_string());
    }
    // The convolution the backends run (for a transposed one, the convolution it is the adjoint of).
    ConvGeometry geometry() const {
        const std::string op = conv_op_name(params.spatial_rank, transposed);
        return transposed ? detail::conv_transpose_geometry(op, input, weight, params)
                          : detail::conv_geometry(op, input, weight, params);
    }
};

void PrintTo(const ConvProblem& p, std::ostream* os) { *os << p.name(); }

ConvProblem conv(const ConvParams& p, Shape input, Shape weight) { return {p, input, weight, false}; }
ConvProblem transposed(const ConvParams& p, Shape input, Shape weight) { return {p, input, weight, true}; }

// Where im2col/col2im can go wrong: padding modes that send several taps to one element
// (circular padding equal to the size, replicate padding past it, reflect), asymmetric 'same'
// padding, groups and depthwise with a multiplier, strides that skip input elements (which the
// fold must leave at zero or the bias), output_padding >= stride (the adjoint evaluated at its
// first positions only), 3-D, batch 1, channel counts like 3, 5, 7.
std::vector<ConvProblem> fixed_problems() {
    using P = ConvParams;
    using PM = PaddingMode;
    return {
        conv(P(1), Shape{2, 3, 17}, Shape{5, 3, 3}),
        conv(P(1).set_stride(2).set_padding(1).set_dilation(2), Shape{1, 5, 23}, Shape{7, 5, 4}),
        conv(P(1).set_groups(5), Shape{2, 5, 19}, Shape{10, 1, 5}),
        conv(P(1).set_padding(2).set_padding_mode(PM::Reflect), Shape{1, 3, 9}, Shape{2, 3, 5}),
        conv(P(1).set_padding(5).set_padding_mode(PM::Circular), Shape{1, 2, 5}, Shape{3, 2, 3}),
        conv(P(1).set_same_padding().set_padding_mode(PM::Circular).set_dilation(2), Shape{2, 3, 8}, Shape{2, 3, 4}),
        conv(P(2), Shape{1, 3, 8, 9}, Shape{4, 3, 3, 3}),
        conv(P(2).set_stride({2, 1}).set_padding({1, 2}), Shape{2, 7, 11, 13}, Shape{5, 7, 3, 5}),
        conv(P(2).set_stride(2).set_dilation({2, 3}).set_padding(2).set_groups(2), Shape{1, 6, 15, 14},
             Shape{8, 3, 3, 2}),
        conv(P(2).set_groups(6).set_padding(1), Shape{3, 6, 10, 7}, Shape{6, 1, 3, 3}),
        conv(P(2).set_stride(2), Shape{2, 5, 9, 9}, Shape{3, 5, 1, 1}),
        conv(P(2).set_same_padding(), Shape{1, 3, 10, 11}, Shape{4, 3, 4, 2}),
        conv(P(2).set_same_padding().set_padding_mode(PM::Reflect), Shape{1, 2, 6, 7}, Shape{3, 2, 4, 2}),
        conv(P(2).set_padding({4, 1}).set_padding_mode(PM::Replicate), Shape{1, 2, 3, 4}, Shape{2, 2, 3, 3}),
        conv(P(2).set_padding(1).set_padding_mode(PM::Circular).set_groups(3), Shape{2, 9, 5, 6}, Shape{6, 3, 3, 3}),
        conv(P(3), Shape{1, 2, 5, 6, 7}, Shape{3, 2, 3, 3, 3}),
        conv(P(3).set_stride({1, 2, 2}).set_padding(1).set_dilation({2, 1, 1}), Shape{2, 3, 7, 8, 9},
             Shape{5, 3, 2, 3, 3}),
        conv(P(3).set_groups(4).set_padding({0, 1, 2}).set_padding_mode(PM::Replicate), Shape{1, 4, 4, 5, 6},
             Shape{4, 1, 3, 3, 3}),
        transposed(P(1).set_stride(2).set_padding(1).set_output_padding(1), Shape{2, 3, 9}, Shape{3, 5, 4}),
        transposed(P(2).set_stride(2).set_padding(1), Shape{1, 4, 7, 6}, Shape{4, 3, 4, 4}),
        transposed(P(2).set_stride({2, 3}).set_dilation({1, 2}).set_output_padding({1, 1}).set_groups(2),
                   Shape{2, 4, 5, 4}, Shape{4, 3, 3, 2}),
        transposed(P(2).set_dilation(3).set_padding(1).set_output_padding(2), Shape{1, 2, 5, 5}, Shape{2, 2, 2, 2}),
        transposed(P(3).set_stride(2).set_padding(1), Shape{1, 3, 3, 4, 5}, Shape{3, 2, 3, 3, 3}),
    };
}

// A random valid problem: rank 1-3, convolution or transposed, any stride, padding (or 'same'),
// dilation, output_padding, groups (depthwise included) and padding mode. Draws until the
// parameters make a valid geometry; the geometry code is the judge of validity.
ConvProblem random_problem(std::mt19937_64& rng) {
    static constexpr PaddingMode modes[] = {PaddingMode::Zeros, PaddingMode::Reflect, PaddingMode::Replicate,
                                            PaddingMode::Circular};
    for (;;) {
        const int rank = static_cast<int>(pick(rng, 1, 3));
        ConvProblem p;
        p.transposed = pick(rng, 0, 2) == 0;
        p.params = ConvParams(rank);
        const std::int64_t groups = pick(rng, 1, 3);
        const std::int64_t in_per_group = pick(rng, 0, 3) == 0 ? 1 : pick(rng, 1, 3);
        const std::int64_t out_per_group = pick(rng, 1, 3);
        p.params.groups = groups;
        p.params.padding_mode = p.transposed ? PaddingMode::Zeros : modes[pick(rng, 0, 3)];
        p.params.same_padding = !p.transposed && pick(rng, 0, 3) == 0;
        std::vector<std::int64_t> input{pick(rng, 1, 3), groups * in_per_group};
        std::vector<std::int64_t> weight = p.transposed
                                               ? std::vector<std::int64_t>{groups * in_per_group, out_per_group}
                                               : std::vector<std::int64_t>{groups * out_per_group, in_per_group};
        for (int i = 0; i < rank; ++i) {
            const auto d = static_cast<std::size_t>(i);
            p.params.stride[d] = p.params.same_padding ? 1 : pick(rng, 1, 3);
            p.params.dilation[d] = pick(rng, 1, 3);
            p.params.padding[d] = p.params.same_padding ? 0 : pick(rng, 0, 3);
            if (p.transposed) {
                p.params.output_padding[d] = pick(rng, 0, std::max(p.params.stride[d], p.params.dilation[d]) - 1);
            }
            input.push_back(pick(rng, 1, rank == 3 ? 6 : 11));
            weight.push_back(pick(rng, 1, rank == 3 ? 3 : 4));
        }
        p.input = Shape(input);
        p.weight = Shape(weight);
        try {
            (void)p.geometry();
            return p;
        } catch (const InvalidArgument&) {
            continue;  // e.g. a kernel larger than the padded input, reflect padding past the size
        }
    }
}

// ---- Running the passes ------------------------------------------------------------------------

using PassInputs = testing::ConvPassInputs;
using PassResults = testing::ConvPassResults;

// float64 values that float32 holds exactly: the float32 runs then see the reference's inputs,
// and only their arithmetic is measured. (With rounded inputs a short sum that nearly cancels,
// such as a bias gradient over 9 terms, can be 1.8e-5 off relative to its small result.)
Tensor float32_exact(const Tensor& t) { return t.to(DType::Float32).to(DType::Float64); }

PassInputs random_inputs(const ConvGeometry& g, std::mt19937_64& rng) {
    return {float32_exact(random_tensor(g.input_shape(), rng)), float32_exact(random_tensor(g.weight_shape(), rng)),
            float32_exact(random_tensor(g.output_shape(), rng)),
            float32_exact(random_tensor(Shape{g.out_channels}, rng)),
            float32_exact(random_tensor(Shape{g.in_channels}, rng))};
}

PassInputs small_integer_inputs(const ConvGeometry& g, std::mt19937_64& rng) {
    using testing::small_integer_tensor;
    return {small_integer_tensor(g.input_shape(), rng()), small_integer_tensor(g.weight_shape(), rng()),
            small_integer_tensor(g.output_shape(), rng()), small_integer_tensor(Shape{g.out_channels}, rng()),
            small_integer_tensor(Shape{g.in_channels}, rng())};
}

// The four passes of a registered variant, into NaN-filled outputs.
PassResults run_variant(const char* name, const ConvGeometry& g, const PassInputs& in, DType dtype) {
    return testing::run_conv_passes(testing::conv_variant_named(name), g, in, dtype);
}

// The BLAS passes with a given scratch budget, into NaN-filled outputs (no bias gradient: the
// table's is the reference's).
template <typename T>
PassResults run_blas(const ConvGeometry& g, const PassInputs& in, std::size_t scratch_bytes) {
    const DType dtype = dtype_of<T>;
    const Tensor x = in.x.to(dtype), w = in.w.to(dtype), dy = in.dy.to(dtype);
    const Tensor bias_out = in.bias_out.to(dtype), bias_in = in.bias_in.to(dtype);
    PassResults r{nan_tensor(g.output_shape(), dtype), nan_tensor(g.input_shape(), dtype),
                  nan_tensor(g.weight_shape(), dtype), Tensor()};
    host::conv_forward_blas<T>(g, x.data<T>(), w.data<T>(), bias_out.data<T>(), r.y.data<T>(), scratch_bytes);
    host::conv_backward_data_blas<T>(g, dy.data<T>(), w.data<T>(), bias_in.data<T>(), r.dx.data<T>(), scratch_bytes);
    host::conv_backward_filter_blas<T>(g, dy.data<T>(), x.data<T>(), r.dw.data<T>(), scratch_bytes);
    return r;
}

// Per-thread budgets that make blocks of one column, of half an image plus one (two uneven
// blocks per image), and the library's default (whole images here).
std::vector<std::size_t> scratch_budgets(const ConvGeometry& g, std::size_t element_size) {
    const auto per_column = static_cast<std::size_t>(g.in_channels_per_group() * g.kernel_spatial()) * element_size;
    const auto half_image = static_cast<std::size_t>(g.output_spatial() / 2 + 1);
    return {1, half_image * per_column, host::kConvBlasScratchBytesPerThread};
}

void expect_close(const PassResults& got, const PassResults& expected, double tolerance) {
    EXPECT_LT(relative_error(got.y, expected.y), tolerance) << "forward";
    EXPECT_LT(relative_error(got.dx, expected.dx), tolerance) << "backward data";
    EXPECT_LT(relative_error(got.dw, expected.dw), tolerance) << "backward filter";
    if (got.db.defined()) {
        EXPECT_LT(relative_error(got.db, expected.db), tolerance) << "bias gradient";
    }
}

// The passes run on |inputs|: each element is then the sum of the absolute values of the terms
// behind the same element of the signed passes, the scale a float32 summation's error is bounded
// by whatever the cancellation.
PassResults term_magnitudes(const ConvGeometry& g, const PassInputs& in) {
    return run_variant("host.reference", g, {abs(in.x), abs(in.w), abs(in.dy), abs(in.bias_out), abs(in.bias_in)},
                       DType::Float64);
}

// float32 passes judged element by element against their terms' magnitudes (summation_error).
// A norm-relative error cannot judge them: a small random problem whose few weight-gradient
// sums nearly cancel leaves float32 no relative accuracy in any order (1.3e-5 was seen).
void expect_float32_sums_close(const PassResults& got, const PassResults& expected, const PassResults& magnitudes) {
    using testing::summation_error;
    constexpr double tolerance = testing::kHostBlasFloat32SummationTolerance;
    EXPECT_LT(summation_error(got.y, expected.y, magnitudes.y), tolerance) << "forward";
    EXPECT_LT(summation_error(got.dx, expected.dx, magnitudes.dx), tolerance) << "backward data";
    EXPECT_LT(summation_error(got.dw, expected.dw, magnitudes.dw), tolerance) << "backward filter";
    if (got.db.defined()) {
        EXPECT_LT(summation_error(got.db, expected.db, magnitudes.db), tolerance) << "bias gradient";
    }
}

void expect_exact(const PassResults& got, const PassResults& expected) {
    EXPECT_TRUE(exactly_equal(got.y, expected.y))
        << "forward, max difference " << max_abs_difference(got.y, expected.y);
    EXPECT_TRUE(exactly_equal(got.dx, expected.dx))
        << "backward data, max difference " << max_abs_difference(got.dx, expected.dx);
    EXPECT_TRUE(exactly_equal(got.dw, expected.dw))
        << "backward filter, max difference " << max_abs_difference(got.dw, expected.dw);
    if (got.db.defined()) {
        EXPECT_TRUE(exactly_equal(got.db, expected.db)) << "bias gradient";
    }
}

// Every pass, every scratch budget, float64 and float32, against the float64 reference.
void expect_blas_matches_reference(const ConvProblem& p, std::mt19937_64& rng) {
    const ConvGeometry g = p.geometry();
    const PassInputs in = random_inputs(g, rng);
    const PassResults reference = run_variant("host.reference", g, in, DType::Float64);
    const PassResults magnitudes = term_magnitudes(g, in);
    {
        SCOPED_TRACE("variant, float64");
        expect_close(run_variant("host.blas", g, in, DType::Float64), reference,
                     testing::kFloat64Tolerance);
    }
    {
        SCOPED_TRACE("variant, float32");
        expect_float32_sums_close(run_variant("host.blas", g, in, DType::Float32), reference, magnitudes);
    }
    for (std::size_t budget : scratch_budgets(g, sizeof(double))) {
        SCOPED_TRACE("float64, scratch " + std::to_string(budget) + " bytes");
        expect_close(run_blas<double>(g, in, budget), reference, testing::kFloat64Tolerance);
    }
    for (std::size_t budget : scratch_budgets(g, sizeof(float))) {
        SCOPED_TRACE("float32, scratch " + std::to_string(budget) + " bytes");
        expect_float32_sums_close(run_blas<float>(g, in, budget), reference, magnitudes);
    }
}

// Small integers: every product and partial sum is exact in both dtypes, so any summation order
// gives the reference's values bit for bit; an index error cannot hide in a tolerance.
void expect_blas_exact_on_small_integers(const ConvProblem& p, std::mt19937_64& rng) {
    const ConvGeometry g = p.geometry();
    const PassInputs in = small_integer_inputs(g, rng);
    const PassResults reference = run_variant("host.reference", g, in, DType::Float64);
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        expect_exact(run_variant("host.blas", g, in, dtype), reference);
    }
    SCOPED_TRACE("float64, one-column blocks");
    expect_exact(run_blas<double>(g, in, 1), reference);
}

// ---- Tests -------------------------------------------------------------------------------------

std::string problem_name(const ::testing::TestParamInfo<ConvProblem>& info) {
    return info.param.name() + "_" + std::to_string(info.index);
}

class ConvBlas : public ::testing::TestWithParam<ConvProblem> {};

TEST_P(ConvBlas, EveryPassMatchesTheReference) {
    CONVKIT_SEEDED_RNG(rng);
    expect_blas_matches_reference(GetParam(), rng);
}

TEST_P(ConvBlas, ExactOnSmallIntegers) {
    CONVKIT_SEEDED_RNG(rng);
    expect_blas_exact_on_small_integers(GetParam(), rng);
}

INSTANTIATE_TEST_SUITE_P(Corners, ConvBlas, ::testing::ValuesIn(fixed_problems()), problem_name);

constexpr int kRandomProblems = 60;

TEST(ConvBlasRandom, EveryPassMatchesTheReference) {
    CONVKIT_SEEDED_RNG(rng);
    for (int i = 0; i < kRandomProblems; ++i) {
        const ConvProblem p = random_problem(rng);
        SCOPED_TRACE(p.name());
        expect_blas_matches_reference(p, rng);
    }
}

TEST(ConvBlasRandom, ExactOnSmallIntegers) {
    CONVKIT_SEEDED_RNG(rng);
    for (int i = 0; i < kRandomProblems; ++i) {
        const ConvProblem p = random_problem(rng);
        SCOPED_TRACE(p.name());
        expect_blas_exact_on_small_integers(p, rng);
    }
}

// The public ops route host tensors by the host slot: with host-blas chosen they give the
// reference's answers, transposed convolution included (its three passes are the adjoint
// mapping in ops/conv.cpp over the same backend entries).
TEST(ConvBlasOps, PublicOpsOnHostBlasMatchTheReference) {
    CONVKIT_SEEDED_RNG(rng);
    for (const ConvProblem& p : {fixed_problems()[8], fixed_problems()[13], fixed_problems()[20]}) {
        SCOPED_TRACE(p.name());
        const Tensor x = random_tensor(p.input, rng);
        const Tensor w = random_tensor(p.weight, rng);
        const ConvGeometry g = p.geometry();
        const Tensor bias = random_tensor(Shape{p.transposed ? g.in_channels : g.out_channels}, rng);
        const Shape out_shape = p.transposed ? g.input_shape() : g.output_shape();
        const Tensor dy = random_tensor(out_shape, rng);
        const auto all_ops = [&] {
            if (p.transposed) {
                return std::vector<Tensor>{conv_transpose_forward(x, w, bias, p.params),
                                           conv_transpose_backward_data(dy, w, x.shape(), p.params),
                                           conv_transpose_backward_filter(dy, x, w.shape(), p.params),
                                           conv_backward_bias(dy)};
            }
            return std::vector<Tensor>{conv_forward(x, w, bias, p.params),
                                       conv_backward_data(dy, w, x.shape(), p.params),
                                       conv_backward_filter(dy, x, w.shape(), p.params), conv_backward_bias(dy)};
        };
        std::vector<Tensor> reference, blas;
        {
            BackendGuard guard(Backend::Host);
            reference = all_ops();
        }
        {
            BackendGuard guard(Backend::HostBlas);
            blas = all_ops();
        }
        for (std::size_t i = 0; i < reference.size(); ++i) {
            EXPECT_LT(relative_error(blas[i], reference[i]), testing::kFloat64Tolerance) << "op " << i;
        }
    }
}

// The scratch is bounded whatever the batch: a block's patches fit the per-thread budget, hold
// at most one image's positions, and at least one column when not even one fits.
TEST(ConvBlasScratch, BlocksStayWithinTheBudget) {
    const ConvGeometry g = detail::conv_geometry("conv2d", Shape{1'000'000, 32, 112, 112}, Shape{64, 32, 3, 3},
                                                 ConvParams(2).set_padding(1));
    const std::int64_t rows = 32 * 9;
    const std::int64_t columns = host::conv_blas_block_columns(g, sizeof(float), host::kConvBlasScratchBytesPerThread);
    EXPECT_LE(static_cast<std::size_t>(columns * rows) * sizeof(float), host::kConvBlasScratchBytesPerThread);
    EXPECT_GT(static_cast<std::size_t>((columns + 1) * rows) * sizeof(float), host::kConvBlasScratchBytesPerThread)
        << "but as many as fit";
    EXPECT_LT(columns, 112 * 112);
    EXPECT_EQ(host::conv_blas_block_columns(g, sizeof(double), 100 * rows * sizeof(double)), 100);
    EXPECT_EQ(host::conv_blas_block_columns(g, sizeof(double), 1), 1);
    // A small image is one block.
    const ConvGeometry small = detail::conv_geometry("conv2d", Shape{1'000'000, 32, 14, 14}, Shape{64, 32, 3, 3},
                                                     ConvParams(2).set_padding(1));
    EXPECT_EQ(host::conv_blas_block_columns(small, sizeof(float), host::kConvBlasScratchBytesPerThread), 14 * 14);
}

// A patch matrix past the BLAS integer is NotSupported with the reason, never a fallback.
TEST(ConvBlasOps, SizesPastTheBlasIntegerAreNotSupported) {
    ConvGeometry g;
    g.in_channels = std::int64_t{1} << 20;
    g.kernel = {1, 1 << 6, 1 << 6};  // 2^32 patch rows
    g.input = {1, 1 << 6, 1 << 6};
    EXPECT_NE(host::conv_blas_unsupported_reason(g), "");
    const detail::ConvProblem problem = detail::conv_problem(g, DType::Float32, Device::host());
    BackendGuard guard(Backend::HostBlas);
    try {
        detail::choose_variant("conv2d", problem, ConvPass::Forward);
        FAIL() << "expected NotSupported";
    } catch (const NotSupported& e) {
        EXPECT_NE(std::string(e.what()).find("conv2d: the host-blas backend cannot run this convolution"),
                  std::string::npos)
            << e.what();
    }
    BackendGuard reference(Backend::Host);
    EXPECT_NO_THROW(detail::choose_variant("conv2d", problem, ConvPass::Forward));
}

#endif  // CONVKIT_WITH_OPENBLAS

}  // namespace
}  // namespace convkit
