// The host transposed-convolution reference checked against definitions written in this file:
// zero insertion, padding (or cropping) and a plain stride-1 convolution with the kernel flipped
// and its channel axes swapped; the adjoint identity with convolution; finite-difference
// gradients; hand-computed values; the output-size formula. Every test draws fresh inputs each
// run; a failure prints the seed, and CONVKIT_TEST_SEED=<seed> replays it.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

using testing::dims_text;
using testing::dot;
using testing::image_shape;
using testing::inner_product_mismatch;
using testing::norm;
using testing::random_tensor;
using testing::to_float32;
using testing::exactly_equal;
using testing::fresh_seed;
using testing::max_abs_difference;
using testing::numeric_gradient;
using testing::pick;
using testing::relative_error;
using testing::small_integer_tensor;

using testing::kFiniteDifferenceStep;
using testing::kFloat32VsFloat64Tolerance;
using testing::kFloat64Tolerance;
using testing::kGradientTolerance;

using Dims3 = std::array<std::int64_t, 3>;

// ---- The problem description -------------------------------------------------------------------

// One transposed convolution: input [N, C_in, in...], weight [C_in, C_out / groups, kernel...],
// output [N, C_out, out...]. Spatial vectors hold one entry per spatial dim, in D, H, W order.
struct TransposeCase {
    ConvParams params{1};
    std::int64_t batch = 1;
    std::int64_t in_channels = 1;
    std::int64_t out_channels = 1;
    std::vector<std::int64_t> input;
    std::vector<std::int64_t> kernel;
    bool bias = true;

    int rank() const { return params.spatial_rank; }
    Shape input_shape() const { return image_shape(batch, in_channels, input); }
    Shape weight_shape() const { return image_shape(in_channels, out_channels / params.groups, kernel); }
    // (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1, per dim.
    std::vector<std::int64_t> output() const {
        std::vector<std::int64_t> out;
        for (int i = 0; i < rank(); ++i) {
            const auto d = static_cast<std::size_t>(i);
            out.push_back((input[d] - 1) * params.stride[d] - 2 * params.padding[d] +
                          params.dilation[d] * (kernel[d] - 1) + params.output_padding[d] + 1);
        }
        return out;
    }
    Shape output_shape() const { return image_shape(batch, out_channels, output()); }

    // Usable as a gtest name: "conv_transpose2d_s2x1_p1x0_d1x1_g1_op1x0_n1_c3_o4_i5x4_k3x2".
    std::string name() const {
        std::ostringstream s;
        s << "conv_transpose" << rank() << "d_" << params.to_string() << "_n" << batch << "_c" << in_channels << "_o"
          << out_channels << "_i" << dims_text(input) << "_k" << dims_text(kernel) << (bias ? "" : "_nobias");
        return testing::test_name(s.str());
    }
};

void PrintTo(const TransposeCase& c, std::ostream* os) { *os << c.name(); }

TransposeCase transpose_case(const ConvParams& params, std::int64_t batch, std::int64_t in_channels,
                             std::int64_t out_channels, std::vector<std::int64_t> input,
                             std::vector<std::int64_t> kernel, bool bias = true) {
    TransposeCase c;
    c.params = params;
    c.batch = batch;
    c.in_channels = in_channels;
    c.out_channels = out_channels;
    c.input = std::move(input);
    c.kernel = std::move(kernel);
    c.bias = bias;
    return c;
}

// A rank-entry spatial vector widened to D, H, W, the missing leading dims set to `fill`.
Dims3 widen(const std::vector<std::int64_t>& dims, std::int64_t fill) {
    Dims3 wide{fill, fill, fill};
    std::copy(dims.begin(), dims.end(), wide.begin() + (3 - static_cast<std::ptrdiff_t>(dims.size())));
    return wide;
}
Dims3 widen(const SpatialDims& dims, int rank, std::int64_t fill) {
    return widen(std::vector<std::int64_t>(dims.begin(), dims.begin() + rank), fill);
}

// Row-major offset into a contiguous [N, C, D, H, W] array.
std::size_t offset(std::int64_t channels, const Dims3& size, std::int64_t n, std::int64_t c, std::int64_t d,
                   std::int64_t h, std::int64_t w) {
    return static_cast<std::size_t>((((n * channels + c) * size[0] + d) * size[1] + h) * size[2] + w);
}

// ---- The independent definition ----------------------------------------------------------------

// A transposed convolution is a stride-1 convolution of the input with stride - 1 zeros inserted
// between elements, padded by q = dilation * (kernel - 1) - padding on each side and by
// output_padding more at the end, with the kernel flipped in every spatial dim and, per group,
// its two channel axes swapped. A negative q crops instead: input elements that would land
// before position 0 or past the end are simply not placed.
Tensor conv_transpose_by_zero_insertion(const TransposeCase& c, const Tensor& x, const Tensor& w, const Tensor& b) {
    const int r = c.rank();
    const Dims3 in = widen(c.input, 1);
    const Dims3 kernel = widen(c.kernel, 1);
    const Dims3 stride = widen(c.params.stride, r, 1);
    const Dims3 padding = widen(c.params.padding, r, 0);
    const Dims3 dilation = widen(c.params.dilation, r, 1);
    const Dims3 output_padding = widen(c.params.output_padding, r, 0);

    // The upsampled, padded input u [N, C_in, length...].
    Dims3 shift{};
    Dims3 length{};
    Dims3 out{};
    for (std::size_t s = 0; s < 3; ++s) {
        shift[s] = dilation[s] * (kernel[s] - 1) - padding[s];
        length[s] = (in[s] - 1) * stride[s] + 1 + 2 * shift[s] + output_padding[s];
        out[s] = length[s] - dilation[s] * (kernel[s] - 1);  // a stride-1 'valid' convolution
    }
    const std::vector<double> xs = x.to_vector();
    std::vector<double> u(static_cast<std::size_t>(c.batch * c.in_channels * length[0] * length[1] * length[2]), 0.0);
    for (std::int64_t n = 0; n < c.batch; ++n)
        for (std::int64_t ci = 0; ci < c.in_channels; ++ci)
            for (std::int64_t i0 = 0; i0 < in[0]; ++i0)
                for (std::int64_t i1 = 0; i1 < in[1]; ++i1)
                    for (std::int64_t i2 = 0; i2 < in[2]; ++i2) {
                        const Dims3 at{i0 * stride[0] + shift[0], i1 * stride[1] + shift[1],
                                       i2 * stride[2] + shift[2]};
                        bool inside = true;
                        for (std::size_t s = 0; s < 3; ++s) inside = inside && at[s] >= 0 && at[s] < length[s];
                        if (inside)
                            u[offset(c.in_channels, length, n, ci, at[0], at[1], at[2])] =
                                xs[offset(c.in_channels, in, n, ci, i0, i1, i2)];
                    }

    // The equivalent convolution weight [C_out, C_in / groups, kernel...]: for output channel
    // co of group g and input channel ci of that group, w[g * C_in/g + ci, co - g * C_out/g]
    // with every spatial index flipped.
    const std::int64_t in_per_group = c.in_channels / c.params.groups;
    const std::int64_t out_per_group = c.out_channels / c.params.groups;
    const std::vector<double> ws = w.to_vector();
    const std::vector<double> bias = c.bias ? b.to_vector() : std::vector<double>(c.out_channels, 0.0);
    const auto flipped_weight = [&](std::int64_t co, std::int64_t ci, std::int64_t kd, std::int64_t kh,
                                    std::int64_t kw) {
        const std::int64_t group = co / out_per_group;
        return ws[offset(out_per_group, kernel, group * in_per_group + ci, co - group * out_per_group,
                         kernel[0] - 1 - kd, kernel[1] - 1 - kh, kernel[2] - 1 - kw)];
    };

    // y[n, co, o] = bias[co] + sum over ci of the group and every tap k of u[n, ci, o + k * dilation] w'[co, ci, k].
    std::vector<double> y(static_cast<std::size_t>(c.batch * c.out_channels * out[0] * out[1] * out[2]));
    for (std::int64_t n = 0; n < c.batch; ++n)
        for (std::int64_t co = 0; co < c.out_channels; ++co)
            for (std::int64_t o0 = 0; o0 < out[0]; ++o0)
                for (std::int64_t o1 = 0; o1 < out[1]; ++o1)
                    for (std::int64_t o2 = 0; o2 < out[2]; ++o2) {
                        double sum = bias[static_cast<std::size_t>(co)];
                        const std::int64_t first_ci = co / out_per_group * in_per_group;
                        for (std::int64_t ci = 0; ci < in_per_group; ++ci)
                            for (std::int64_t kd = 0; kd < kernel[0]; ++kd)
                                for (std::int64_t kh = 0; kh < kernel[1]; ++kh)
                                    for (std::int64_t kw = 0; kw < kernel[2]; ++kw)
                                        sum += u[offset(c.in_channels, length, n, first_ci + ci,
                                                        o0 + kd * dilation[0], o1 + kh * dilation[1],
                                                        o2 + kw * dilation[2])] *
                                               flipped_weight(co, ci, kd, kh, kw);
                        y[offset(c.out_channels, out, n, co, o0, o1, o2)] = sum;
                    }
    std::vector<std::int64_t> out_sizes(out.begin() + (3 - r), out.end());
    return Tensor::from_vector(image_shape(c.batch, c.out_channels, out_sizes), y);
}

// ---- Inputs and shared checks ------------------------------------------------------------------

void expect_forward_matches_zero_insertion(const TransposeCase& c, std::mt19937_64& rng) {
    const Tensor x = random_tensor(c.input_shape(), rng);
    const Tensor w = random_tensor(c.weight_shape(), rng);
    const Tensor b = c.bias ? random_tensor(Shape{c.out_channels}, rng) : Tensor();
    const Tensor expected = conv_transpose_by_zero_insertion(c, x, w, b);
    const Tensor y = conv_transpose_forward(x, w, b, c.params);
    ASSERT_EQ(y.shape(), expected.shape());
    EXPECT_LT(relative_error(y, expected), kFloat64Tolerance);
}

void expect_gradients_match_finite_differences(const TransposeCase& c, std::mt19937_64& rng) {
    const Tensor x = random_tensor(c.input_shape(), rng);
    const Tensor w = random_tensor(c.weight_shape(), rng);
    const Tensor b = random_tensor(Shape{c.out_channels}, rng);
    const Tensor r = random_tensor(c.output_shape(), rng);
    const auto loss_of_x = [&](const Tensor& probe) { return dot(conv_transpose_forward(probe, w, b, c.params), r); };
    const auto loss_of_w = [&](const Tensor& probe) { return dot(conv_transpose_forward(x, probe, b, c.params), r); };
    const auto loss_of_b = [&](const Tensor& probe) { return dot(conv_transpose_forward(x, w, probe, c.params), r); };
    EXPECT_LT(relative_error(conv_transpose_backward_data(r, w, x.shape(), c.params),
                             numeric_gradient(loss_of_x, x, kFiniteDifferenceStep)),
              kGradientTolerance)
        << "conv_transpose_backward_data";
    EXPECT_LT(relative_error(conv_transpose_backward_filter(r, x, w.shape(), c.params),
                             numeric_gradient(loss_of_w, w, kFiniteDifferenceStep)),
              kGradientTolerance)
        << "conv_transpose_backward_filter";
    EXPECT_LT(relative_error(conv_backward_bias(r), numeric_gradient(loss_of_b, b, kFiniteDifferenceStep)),
              kGradientTolerance)
        << "conv_backward_bias of the transposed output";
}

// ---- The fixed list of cases -------------------------------------------------------------------

std::vector<TransposeCase> fixed_cases() {
    std::vector<TransposeCase> cases = {
        // 1-D
        transpose_case(ConvParams(1), 1, 1, 1, {4}, {3}),
        transpose_case(ConvParams(1).set_stride(2).set_padding(1).set_output_padding(1), 2, 3, 5, {5}, {3}),
        transpose_case(ConvParams(1).set_stride(3).set_padding(2).set_dilation(2).set_output_padding(2), 1, 3, 7, {4},
                       {4}),
        // output_padding 2 >= stride 1 is allowed because it is below dilation 3.
        transpose_case(ConvParams(1).set_padding(1).set_dilation(3).set_output_padding(2).set_groups(2), 1, 4, 2, {5},
                       {2}),
        // dilation * (kernel - 1) - padding = -2: the zero-inserted input is cropped, not padded.
        transpose_case(ConvParams(1).set_stride(3).set_padding(3), 1, 2, 3, {4}, {2}, false),
        transpose_case(ConvParams(1).set_stride(2).set_padding(1).set_groups(5), 1, 5, 10, {7}, {3}),  // depthwise
        transpose_case(ConvParams(1).set_stride(2).set_padding(2).set_output_padding(1), 2, 7, 3, {1}, {5}),
        // 2-D
        transpose_case(ConvParams(2), 1, 2, 3, {3, 4}, {2, 2}),
        transpose_case(ConvParams(2).set_stride({2, 1}).set_padding({1, 0}).set_dilation({1, 2}).set_output_padding(
                           {1, 0}),
                       1, 3, 4, {5, 4}, {3, 2}),
        transpose_case(ConvParams(2).set_stride({3, 2}).set_padding({2, 1}).set_output_padding({2, 1}).set_groups(2), 1,
                       4, 6, {3, 5}, {2, 5}),
        transpose_case(ConvParams(2).set_stride(2).set_padding(1).set_output_padding({1, 0}).set_groups(7), 1, 7, 7,
                       {4, 5}, {3, 3}),  // depthwise
        transpose_case(ConvParams(2).set_dilation({2, 3}).set_output_padding({1, 2}), 2, 2, 3, {3, 3}, {2, 2}, false),
        transpose_case(ConvParams(2).set_stride({1, 3}).set_padding({2, 0}).set_dilation(2).set_groups(3), 1, 3, 6,
                       {4, 3}, {3, 1}),
        // 3-D, tiny
        transpose_case(ConvParams(3).set_stride(2).set_padding(1).set_output_padding({1, 0, 1}), 1, 2, 3, {2, 3, 2},
                       {2, 3, 2}),
        transpose_case(ConvParams(3)
                           .set_stride({1, 2, 3})
                           .set_dilation({2, 1, 1})
                           .set_padding({0, 1, 2})
                           .set_output_padding({1, 1, 2})
                           .set_groups(2),
                       1, 4, 2, {2, 3, 2}, {2, 2, 3}),
        transpose_case(ConvParams(3).set_padding(1).set_groups(3), 2, 3, 6, {2, 2, 3}, {3, 3, 3}),  // depthwise
    };
    return cases;
}

std::string case_name(const ::testing::TestParamInfo<TransposeCase>& info) {
    // gtest needs unique names; two cases that print alike get their index appended.
    const std::vector<TransposeCase> all = fixed_cases();
    int same_name_before = 0;
    for (std::size_t i = 0; i < info.index; ++i) same_name_before += all[i].name() == info.param.name();
    return same_name_before == 0 ? info.param.name() : info.param.name() + "_" + std::to_string(info.index);
}

// A random valid transposed convolution of the given spatial rank: any stride, padding,
// dilation, groups and output_padding below max(stride, dilation), the input grown until the
// output is not empty.
TransposeCase random_transpose_case(std::mt19937_64& rng, int rank) {
    TransposeCase c;
    c.params = ConvParams(rank);
    c.params.groups = pick(rng, 1, 3);
    c.batch = rank == 3 ? 1 : pick(rng, 1, 2);
    c.in_channels = c.params.groups * pick(rng, 1, rank == 3 ? 2 : 3);
    c.out_channels = c.params.groups * pick(rng, 1, rank == 3 ? 2 : 3);
    c.bias = pick(rng, 0, 3) != 0;
    for (int i = 0; i < rank; ++i) {
        const auto d = static_cast<std::size_t>(i);
        c.kernel.push_back(pick(rng, 1, rank == 3 ? 2 : 4));
        c.params.stride[d] = pick(rng, 1, 3);
        c.params.dilation[d] = pick(rng, 1, 3);
        c.params.padding[d] = pick(rng, 0, 2);
        c.params.output_padding[d] = pick(rng, 0, std::max(c.params.stride[d], c.params.dilation[d]) - 1);
        c.input.push_back(pick(rng, 1, rank == 3 ? 3 : 5));
    }
    // Only once every dim has its input size can output() be evaluated.
    for (std::size_t d = 0; d < c.input.size(); ++d) {
        while (c.output()[d] < 1) ++c.input[d];
    }
    return c;
}

// A random convolution with zeros padding, and the output_padding that makes its transposed
// convolution map the conv's output size back to exactly its input size:
// output_padding = (in + 2p - d(k - 1) - 1) mod stride, the remainder the conv's floor dropped.
struct AdjointPair {
    ConvParams conv{1};
    ConvParams transposed{1};
    Shape input;   // of the conv, = the transposed output
    Shape weight;  // [C_out, C_in / groups, kernel...] for the conv = [C_in', C_out' / groups, ...] transposed
    std::string name;
};

AdjointPair random_adjoint_pair(std::mt19937_64& rng, int rank) {
    AdjointPair pair;
    pair.conv = ConvParams(rank);
    pair.conv.groups = pick(rng, 1, 3);
    const std::int64_t in_channels = pair.conv.groups * pick(rng, 1, 3);
    const std::int64_t out_channels = pair.conv.groups * pick(rng, 1, 3);
    std::vector<std::int64_t> input{pick(rng, 1, 2), in_channels};
    std::vector<std::int64_t> weight{out_channels, in_channels / pair.conv.groups};
    pair.transposed = pair.conv;
    for (int i = 0; i < rank; ++i) {
        const auto d = static_cast<std::size_t>(i);
        const std::int64_t k = pick(rng, 1, rank == 3 ? 2 : 4);
        const std::int64_t s = pick(rng, 1, 3);
        const std::int64_t dil = pick(rng, 1, 3);
        const std::int64_t p = pick(rng, 0, 2);
        const std::int64_t in = std::max<std::int64_t>(1, dil * (k - 1) + 1 - 2 * p) + pick(rng, 0, rank == 3 ? 3 : 6);
        pair.conv.stride[d] = pair.transposed.stride[d] = s;
        pair.conv.dilation[d] = pair.transposed.dilation[d] = dil;
        pair.conv.padding[d] = pair.transposed.padding[d] = p;
        pair.transposed.output_padding[d] = (in + 2 * p - dil * (k - 1) - 1) % s;
        input.push_back(in);
        weight.push_back(k);
    }
    pair.input = Shape(input);
    pair.weight = Shape(weight);
    pair.name = pair.transposed.to_string() + " input " + pair.input.to_string() + " weight " + pair.weight.to_string();
    return pair;
}

// ---- Tests over the fixed list -----------------------------------------------------------------

class ConvTransposeReference : public ::testing::TestWithParam<TransposeCase> {};

TEST_P(ConvTransposeReference, ForwardMatchesZeroInsertionDefinition) {
    CONVKIT_SEEDED_RNG(rng);
    expect_forward_matches_zero_insertion(GetParam(), rng);
}

// Small integers make every product and sum exact in both dtypes: bit-for-bit agreement.
TEST_P(ConvTransposeReference, ExactOnSmallIntegers) {
    const TransposeCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = small_integer_tensor(c.input_shape(), rng());
    const Tensor w = small_integer_tensor(c.weight_shape(), rng());
    const Tensor b = c.bias ? small_integer_tensor(Shape{c.out_channels}, rng()) : Tensor();
    testing::expect_exact_in_both_dtypes(
        [&](const Tensor& xi, const Tensor& wi, const Tensor& bi) { return conv_transpose_forward(xi, wi, bi, c.params); },
        x, w, b, conv_transpose_by_zero_insertion(c, x, w, b));
}

TEST_P(ConvTransposeReference, GradientsMatchFiniteDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    expect_gradients_match_finite_differences(GetParam(), rng);
}

// On the same (float32-rounded) inputs, float32 differs from float64 by the final rounding only.
TEST_P(ConvTransposeReference, Float32MatchesFloat64ForEveryPass) {
    const TransposeCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x32 = random_tensor(c.input_shape(), rng).to(DType::Float32);
    const Tensor w32 = random_tensor(c.weight_shape(), rng).to(DType::Float32);
    const Tensor b32 = random_tensor(Shape{c.out_channels}, rng).to(DType::Float32);
    const Tensor dy32 = random_tensor(c.output_shape(), rng).to(DType::Float32);
    const Tensor x64 = x32.to(DType::Float64);
    const Tensor w64 = w32.to(DType::Float64);
    const Tensor b64 = b32.to(DType::Float64);
    const Tensor dy64 = dy32.to(DType::Float64);

    const Tensor y32 = conv_transpose_forward(x32, w32, b32, c.params);
    ASSERT_EQ(y32.dtype(), DType::Float32);
    EXPECT_LT(relative_error(y32, conv_transpose_forward(x64, w64, b64, c.params)), kFloat32VsFloat64Tolerance)
        << "forward";
    EXPECT_LT(relative_error(conv_transpose_backward_data(dy32, w32, x32.shape(), c.params),
                             conv_transpose_backward_data(dy64, w64, x64.shape(), c.params)),
              kFloat32VsFloat64Tolerance)
        << "backward data";
    EXPECT_LT(relative_error(conv_transpose_backward_filter(dy32, x32, w32.shape(), c.params),
                             conv_transpose_backward_filter(dy64, x64, w64.shape(), c.params)),
              kFloat32VsFloat64Tolerance)
        << "backward filter";
}

TEST_P(ConvTransposeReference, OutputShapeFollowsTheFormula) {
    const TransposeCase& c = GetParam();
    const Tensor x = Tensor::zeros(c.input_shape(), DType::Float64);
    const Tensor w = Tensor::zeros(c.weight_shape(), DType::Float64);
    EXPECT_EQ(conv_transpose_output_shape(x.shape(), w.shape(), c.params), c.output_shape());
    EXPECT_EQ(conv_transpose_forward(x, w, c.params).shape(), c.output_shape());
}

INSTANTIATE_TEST_SUITE_P(Cases, ConvTransposeReference, ::testing::ValuesIn(fixed_cases()), case_name);

// ---- Tests over random configurations ----------------------------------------------------------

// Cycled through spatial ranks 1, 2, 3 so that every rank gets a third of them.
constexpr int kRandomConfigurations = 99;

// Runs `check(case, rng)` on kRandomConfigurations fresh problems, naming each on failure.
template <typename Check>
void check_random_cases(Check check) {
    CONVKIT_SEEDED_RNG(rng);
    for (int i = 0; i < kRandomConfigurations; ++i) {
        const TransposeCase c = random_transpose_case(rng, 1 + i % 3);
        SCOPED_TRACE(c.name());
        check(c, rng);
    }
}

TEST(ConvTransposeReferenceRandom, ForwardMatchesZeroInsertionDefinition) {
    check_random_cases(expect_forward_matches_zero_insertion);
}

TEST(ConvTransposeReferenceRandom, GradientsMatchFiniteDifferences) {
    check_random_cases(expect_gradients_match_finite_differences);
}

// Output size (in - 1) s - 2p + d (k - 1) + op + 1 per dim and C_out = weight.size(1) * groups,
// from the shape function and from the op itself.
TEST(ConvTransposeReferenceRandom, OutputShapeFollowsTheFormula) {
    check_random_cases([](const TransposeCase& c, std::mt19937_64&) {
        const Tensor x = Tensor::zeros(c.input_shape(), DType::Float64);
        const Tensor w = Tensor::zeros(c.weight_shape(), DType::Float64);
        std::vector<std::int64_t> expected{c.batch, w.size(1) * c.params.groups};
        for (int d = 0; d < c.rank(); ++d) {
            const auto s = static_cast<std::size_t>(d);
            expected.push_back((c.input[s] - 1) * c.params.stride[s] - 2 * c.params.padding[s] +
                               c.params.dilation[s] * (c.kernel[s] - 1) + c.params.output_padding[s] + 1);
        }
        EXPECT_EQ(conv_transpose_output_shape(x.shape(), w.shape(), c.params), Shape(expected));
        EXPECT_EQ(conv_transpose_forward(x, w, c.params).shape(), Shape(expected));
    });
}

// <conv(x), y> = <x, conv_transpose(y)> with the same weight and parameters: transposed
// convolution is the adjoint of convolution, the definition the library is built on.
TEST(ConvTransposeReferenceRandom, IsTheAdjointOfConvolution) {
    CONVKIT_SEEDED_RNG(rng);
    for (int i = 0; i < kRandomConfigurations; ++i) {
        const AdjointPair pair = random_adjoint_pair(rng, 1 + i % 3);
        SCOPED_TRACE(pair.name);
        const Tensor x = random_tensor(pair.input, rng);
        const Tensor w = random_tensor(pair.weight, rng);
        const Tensor y = random_tensor(conv_output_shape(pair.input, pair.weight, pair.conv), rng);
        const Tensor conv_x = conv_forward(x, w, pair.conv);
        const Tensor transposed_y = conv_transpose_forward(y, w, pair.transposed);
        ASSERT_EQ(transposed_y.shape(), x.shape());
        EXPECT_LT(inner_product_mismatch(conv_x, y, x, transposed_y), kFloat64Tolerance)
            << "<conv(x), y> = " << dot(conv_x, y) << " vs <x, conv_transpose(y)> = " << dot(x, transposed_y);
    }
}

// ---- Hand-computed values ----------------------------------------------------------------------

Tensor vector_1d(std::vector<double> values) {
    const auto n = static_cast<std::int64_t>(values.size());
    return Tensor::from_vector(Shape{1, 1, n}, values);
}

// x = [1, 2, 3] scattered through w = [1, 10, 100]: y[i * stride - padding + k * dilation] += x[i] w[k].
TEST(ConvTransposeReferenceKnownValues, Scatter1d) {
    const Tensor x = vector_1d({1, 2, 3});
    const Tensor w = vector_1d({1, 10, 100});
    // stride 2: 1 10 100 at 0, 2 20 200 at 2, 3 30 300 at 4.
    EXPECT_EQ(conv_transpose_forward(x, w, ConvParams(1).set_stride(2)).to_vector(),
              (std::vector<double>{1, 10, 102, 20, 203, 30, 300}));
    // padding 1 crops one element from each end.
    EXPECT_EQ(conv_transpose_forward(x, w, ConvParams(1).set_stride(2).set_padding(1)).to_vector(),
              (std::vector<double>{10, 102, 20, 203, 30}));
    // output_padding 1 gives back one element at the end.
    const ConvParams output_padded = ConvParams(1).set_stride(2).set_padding(1).set_output_padding(1);
    EXPECT_EQ(conv_transpose_forward(x, w, output_padded).to_vector(),
              (std::vector<double>{10, 102, 20, 203, 30, 300}));
    // dilation 2: taps 0, 2, 4 apart; bias 0.5 on every element.
    EXPECT_EQ(conv_transpose_forward(x, w, Tensor::from_vector(Shape{1}, std::vector<double>{0.5}),
                                     ConvParams(1).set_dilation(2))
                  .to_vector(),
              (std::vector<double>{1.5, 2.5, 13.5, 20.5, 130.5, 200.5, 300.5}));
}

TEST(ConvTransposeReferenceKnownValues, WeightIsInChannelsThenOutChannelsPerGroup) {
    // Two groups, weight [C_in = 2, C_out / groups = 2, 1]: input channel 0 feeds outputs 0 and 1
    // with weights 1 and 10, input channel 1 feeds outputs 2 and 3 with 100 and 1000.
    const Tensor x = Tensor::from_vector(Shape{1, 2, 2}, std::vector<double>{1, 2, 3, 4});
    const Tensor w = Tensor::from_vector(Shape{2, 2, 1}, std::vector<double>{1, 10, 100, 1000});
    const Tensor y = conv_transpose_forward(x, w, ConvParams(1).set_groups(2));
    EXPECT_EQ(y.shape(), (Shape{1, 4, 2}));
    EXPECT_EQ(y.to_vector(), (std::vector<double>{1, 2, 10, 20, 300, 400, 3000, 4000}));
}

}  // namespace
}  // namespace convkit
