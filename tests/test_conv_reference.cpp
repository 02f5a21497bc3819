// The host convolution reference (the oracle every other backend is tested against) checked
// against definitions written in this file and sharing no code with it: an explicit im2col of
// an input padded by this file's own padding code, times the weight matrix; hand-computed
// values; finite-difference gradients; adjoint identities. Every test draws fresh inputs each
// run; a failure prints the seed, and CONVKIT_TEST_SEED=<seed> replays it.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
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
using testing::exactly_equal;
using testing::fresh_seed;
using testing::image_shape;
using testing::max_abs_difference;
using testing::norm;
using testing::numeric_gradient;
using testing::pick;
using testing::random_tensor;
using testing::relative_error;
using testing::small_integer_tensor;
using testing::to_float32;

using testing::kFiniteDifferenceStep;
using testing::kFloat32VsFloat64Tolerance;
using testing::kFloat64Tolerance;
using testing::kGradientTolerance;
using testing::kFloat32VsIndependentTolerance;

// This executable tests the reference itself (both of its files): host tensors run on it.
const auto* const pinned = ::testing::AddGlobalTestEnvironment(new testing::PinHostReference);

// ---- The problem description -------------------------------------------------------------------

// One convolution problem. Spatial vectors hold one entry per spatial dim, in D, H, W order.
struct ConvCase {
    ConvParams params{1};
    std::int64_t batch = 1;
    std::int64_t in_channels = 1;
    std::int64_t out_channels = 1;
    std::vector<std::int64_t> input;
    std::vector<std::int64_t> kernel;
    bool bias = true;

    int rank() const { return params.spatial_rank; }
    Shape input_shape() const { return image_shape(batch, in_channels, input); }
    Shape weight_shape() const { return image_shape(out_channels, in_channels / params.groups, kernel); }

    // Usable as a gtest name: "conv2d_s2x1_p0x1_d1x2_g1_n2_c3_o4_i7x6_k1x3".
    std::string name() const {
        std::ostringstream s;
        s << "conv" << rank() << "d_" << params.to_string() << "_n" << batch << "_c" << in_channels << "_o"
          << out_channels << "_i" << dims_text(input) << "_k" << dims_text(kernel) << (bias ? "" : "_nobias");
        return testing::test_name(s.str());
    }
};

void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name(); }

ConvCase conv_case(const ConvParams& params, std::int64_t batch, std::int64_t in_channels, std::int64_t out_channels,
                   std::vector<std::int64_t> input, std::vector<std::int64_t> kernel, bool bias = true) {
    ConvCase c;
    c.params = params;
    c.batch = batch;
    c.in_channels = in_channels;
    c.out_channels = out_channels;
    c.input = std::move(input);
    c.kernel = std::move(kernel);
    c.bias = bias;
    return c;
}

// ---- The independent definition: pad, im2col, matrix product ----------------------------------

// A dense [N, C, D, H, W] array of doubles; 1-D and 2-D problems use D = H = 1 or D = 1.
struct Grid {
    std::int64_t batch = 1;
    std::int64_t channels = 1;
    std::array<std::int64_t, 3> size{1, 1, 1};
    std::vector<double> values;

    Grid(std::int64_t n, std::int64_t c, std::array<std::int64_t, 3> spatial)
        : batch(n), channels(c), size(spatial),
          values(static_cast<std::size_t>(n * c * spatial[0] * spatial[1] * spatial[2]), 0.0) {}

    std::size_t offset(std::int64_t n, std::int64_t c, std::int64_t d, std::int64_t h, std::int64_t w) const {
        return static_cast<std::size_t>((((n * channels + c) * size[0] + d) * size[1] + h) * size[2] + w);
    }
    double& at(std::int64_t n, std::int64_t c, std::int64_t d, std::int64_t h, std::int64_t w) {
        return values[offset(n, c, d, h, w)];
    }
    double at(std::int64_t n, std::int64_t c, std::int64_t d, std::int64_t h, std::int64_t w) const {
        return values[offset(n, c, d, h, w)];
    }
};

// A rank-entry spatial vector widened to D, H, W, the missing leading dims set to `fill`.
std::array<std::int64_t, 3> widen(const std::vector<std::int64_t>& dims, std::int64_t fill) {
    std::array<std::int64_t, 3> wide{fill, fill, fill};
    std::copy(dims.begin(), dims.end(), wide.begin() + (3 - static_cast<std::ptrdiff_t>(dims.size())));
    return wide;
}
std::array<std::int64_t, 3> widen(const SpatialDims& dims, int rank, std::int64_t fill) {
    return widen(std::vector<std::int64_t>(dims.begin(), dims.begin() + rank), fill);
}

Grid to_grid(const Tensor& t, const std::vector<std::int64_t>& spatial) {
    Grid grid(t.size(0), t.size(1), widen(spatial, 1));
    grid.values = t.to_vector();
    return grid;
}

// Where position j of a line of n values padded with `before` values in front reads from, by
// PyTorch's definition of each mode; -1 for a zero. Reflect mirrors with period 2 (n - 1)
// without repeating the edge, circular is a true modulus: both valid for any padding.
std::int64_t padded_line_source(std::int64_t j, std::int64_t n, std::int64_t before, PaddingMode mode) {
    const std::int64_t i = j - before;
    switch (mode) {
        case PaddingMode::Zeros: return i >= 0 && i < n ? i : -1;
        case PaddingMode::Replicate: return std::clamp<std::int64_t>(i, 0, n - 1);
        case PaddingMode::Circular: return (i % n + n) % n;
        case PaddingMode::Reflect: {
            if (n == 1) return 0;
            const std::int64_t period = 2 * (n - 1);
            const std::int64_t m = (i % period + period) % period;
            return m < n ? m : period - m;
        }
    }
    return -1;
}

// Pads one spatial axis (0 = D, 1 = H, 2 = W). Padding axis after axis is how PyTorch's F.pad
// builds the corners, and is a different construction from the reference's per-tap lookup.
Grid pad_axis(const Grid& in, int axis, std::int64_t before, std::int64_t after, PaddingMode mode) {
    std::array<std::int64_t, 3> size = in.size;
    size[axis] += before + after;
    Grid out(in.batch, in.channels, size);
    for (std::int64_t n = 0; n < out.batch; ++n)
        for (std::int64_t c = 0; c < out.channels; ++c)
            for (std::int64_t d = 0; d < size[0]; ++d)
                for (std::int64_t h = 0; h < size[1]; ++h)
                    for (std::int64_t w = 0; w < size[2]; ++w) {
                        std::array<std::int64_t, 3> source{d, h, w};
                        source[axis] = padded_line_source(source[axis], in.size[axis], before, mode);
                        if (source[axis] >= 0) out.at(n, c, d, h, w) = in.at(n, c, source[0], source[1], source[2]);
                    }
    return out;
}

// Padding before and after each spatial dim (D, H, W), derived here from the parameters: 'same'
// splits dilation * (kernel - 1) with the odd element at the end, as PyTorch does.
std::array<std::array<std::int64_t, 2>, 3> padding_of(const ConvCase& c) {
    std::array<std::array<std::int64_t, 2>, 3> pads{};
    const int r = c.rank();
    for (int i = 0; i < r; ++i) {
        const auto dim = static_cast<std::size_t>(3 - r + i);
        if (c.params.same_padding) {
            const std::int64_t total = c.params.dilation[static_cast<std::size_t>(i)] * (c.kernel[i] - 1);
            pads[dim] = {total / 2, total - total / 2};
        } else {
            pads[dim] = {c.params.padding[static_cast<std::size_t>(i)], c.params.padding[static_cast<std::size_t>(i)]};
        }
    }
    return pads;
}

// Output spatial sizes from the textbook formula on the explicitly padded size.
std::vector<std::int64_t> output_sizes(const ConvCase& c) {
    const auto pads = padding_of(c);
    std::vector<std::int64_t> out;
    const int r = c.rank();
    for (int i = 0; i < r; ++i) {
        const auto dim = static_cast<std::size_t>(3 - r + i);
        const std::int64_t padded = c.input[i] + pads[dim][0] + pads[dim][1];
        const std::int64_t extent = c.params.dilation[static_cast<std::size_t>(i)] * (c.kernel[i] - 1) + 1;
        out.push_back((padded - extent) / c.params.stride[static_cast<std::size_t>(i)] + 1);
    }
    return out;
}

// The convolution as im2col times a matrix: for each image and group, unfold the padded input
// into a patch matrix (row = input channel of the group and kernel tap, column = output
// position) and multiply the group's rows of the weight, read as [C_out, C_in / groups * taps].
Tensor conv_by_im2col(const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor& b) {
    const int r = c.rank();
    const auto pads = padding_of(c);
    Grid padded = to_grid(x, c.input);
    for (int axis = 0; axis < 3; ++axis)
        padded = pad_axis(padded, axis, pads[static_cast<std::size_t>(axis)][0],
                          pads[static_cast<std::size_t>(axis)][1], c.params.padding_mode);

    const std::vector<std::int64_t> out_sizes = output_sizes(c);
    const auto out = widen(out_sizes, 1);
    const auto kernel = widen(c.kernel, 1);
    const auto stride = widen(c.params.stride, r, 1);
    const auto dilation = widen(c.params.dilation, r, 1);
    const std::int64_t taps = kernel[0] * kernel[1] * kernel[2];
    const std::int64_t positions = out[0] * out[1] * out[2];
    const std::int64_t in_per_group = c.in_channels / c.params.groups;
    const std::int64_t out_per_group = c.out_channels / c.params.groups;
    const std::int64_t rows = in_per_group * taps;
    const std::vector<double> weight = w.to_vector();
    const std::vector<double> bias = c.bias ? b.to_vector() : std::vector<double>(c.out_channels, 0.0);

    Grid result(c.batch, c.out_channels, out);
    std::vector<double> columns(static_cast<std::size_t>(rows * positions));
    for (std::int64_t n = 0; n < c.batch; ++n) {
        for (std::int64_t group = 0; group < c.params.groups; ++group) {
            for (std::int64_t ci = 0; ci < in_per_group; ++ci)
                for (std::int64_t kd = 0; kd < kernel[0]; ++kd)
                    for (std::int64_t kh = 0; kh < kernel[1]; ++kh)
                        for (std::int64_t kw = 0; kw < kernel[2]; ++kw) {
                            const std::int64_t row = ((ci * kernel[0] + kd) * kernel[1] + kh) * kernel[2] + kw;
                            for (std::int64_t od = 0; od < out[0]; ++od)
                                for (std::int64_t oh = 0; oh < out[1]; ++oh)
                                    for (std::int64_t ow = 0; ow < out[2]; ++ow) {
                                        const std::int64_t column = (od * out[1] + oh) * out[2] + ow;
                                        columns[static_cast<std::size_t>(row * positions + column)] = padded.at(
                                            n, group * in_per_group + ci, od * stride[0] + kd * dilation[0],
                                            oh * stride[1] + kh * dilation[1], ow * stride[2] + kw * dilation[2]);
                                    }
                        }
            for (std::int64_t co = group * out_per_group; co < (group + 1) * out_per_group; ++co) {
                for (std::int64_t column = 0; column < positions; ++column) {
                    double sum = bias[static_cast<std::size_t>(co)];
                    for (std::int64_t row = 0; row < rows; ++row)
                        sum += weight[static_cast<std::size_t>(co * rows + row)] *
                               columns[static_cast<std::size_t>(row * positions + column)];
                    result.values[result.offset(n, co, 0, 0, 0) + static_cast<std::size_t>(column)] = sum;
                }
            }
        }
    }
    return Tensor::from_vector(image_shape(c.batch, c.out_channels, out_sizes), result.values);
}

// ---- Inputs ------------------------------------------------------------------------------------

struct ConvInputs {
    Tensor x, w, b;  // b undefined when the case has no bias
};

ConvInputs random_inputs(const ConvCase& c, std::mt19937_64& rng) {
    ConvInputs in{random_tensor(c.input_shape(), rng), random_tensor(c.weight_shape(), rng), Tensor()};
    if (c.bias) in.b = random_tensor(Shape{c.out_channels}, rng);
    return in;
}

// The reference sums in double and rounds once at the end, and a product of two floats is exact
// in double; so on float32-rounded inputs every float32 element must be the float64 result
// correctly rounded, within half an ulp (2^-24 of its magnitude). Stricter than the norm-wise
// 1e-6, it catches a float32 path that accumulates in float. NaN fails the comparison.
bool is_correctly_rounded(const Tensor& y32, const Tensor& y64) {
    const std::vector<double> a = y32.to_vector();
    const std::vector<double> b = y64.to_vector();
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!(std::fabs(a[i] - b[i]) <= std::ldexp(std::fabs(b[i]), -24))) return false;
    return true;
}

// ---- Shared checks, used by the fixed cases and by the random configurations ------------------

void expect_forward_matches_im2col(const ConvCase& c, std::mt19937_64& rng) {
    const ConvInputs in = random_inputs(c, rng);
    const Tensor expected = conv_by_im2col(c, in.x, in.w, in.b);
    const Tensor y = conv_forward(in.x, in.w, in.b, c.params);
    ASSERT_EQ(y.shape(), expected.shape());
    EXPECT_LT(relative_error(y, expected), kFloat64Tolerance) << "float64";

    // float32 against the float64 definition on the same (rounded) inputs.
    const ConvInputs in32{to_float32(in.x), to_float32(in.w), to_float32(in.b)};
    const Tensor expected32 = conv_by_im2col(c, in32.x.to(DType::Float64), in32.w.to(DType::Float64),
                                             c.bias ? in32.b.to(DType::Float64) : Tensor());
    const Tensor y32 = conv_forward(in32.x, in32.w, in32.b, c.params);
    ASSERT_EQ(y32.dtype(), DType::Float32);
    EXPECT_LT(relative_error(y32, expected32), kFloat32VsIndependentTolerance) << "float32";
}

void expect_gradients_match_finite_differences(const ConvCase& c, std::mt19937_64& rng) {
    const Tensor x = random_tensor(c.input_shape(), rng);
    const Tensor w = random_tensor(c.weight_shape(), rng);
    const Tensor b = random_tensor(Shape{c.out_channels}, rng);
    const Tensor r = random_tensor(conv_output_shape(x.shape(), w.shape(), c.params), rng);
    const auto loss_of_x = [&](const Tensor& probe) { return dot(conv_forward(probe, w, b, c.params), r); };
    const auto loss_of_w = [&](const Tensor& probe) { return dot(conv_forward(x, probe, b, c.params), r); };
    const auto loss_of_b = [&](const Tensor& probe) { return dot(conv_forward(x, w, probe, c.params), r); };
    EXPECT_LT(relative_error(conv_backward_data(r, w, x.shape(), c.params),
                             numeric_gradient(loss_of_x, x, kFiniteDifferenceStep)),
              kGradientTolerance)
        << "conv_backward_data";
    EXPECT_LT(relative_error(conv_backward_filter(r, x, w.shape(), c.params),
                             numeric_gradient(loss_of_w, w, kFiniteDifferenceStep)),
              kGradientTolerance)
        << "conv_backward_filter";
    EXPECT_LT(relative_error(conv_backward_bias(r), numeric_gradient(loss_of_b, b, kFiniteDifferenceStep)),
              kGradientTolerance)
        << "conv_backward_bias";
}

// |lhs - rhs| relative to `magnitude`, the sum of the absolute values of the products x w y that
// both inner products of an adjoint identity add up (in different orders): the bound of their
// rounding, whatever the cancellation. Absolute where it is 0 (every tap reads zero padding).
double adjoint_mismatch(double lhs, double rhs, double magnitude) {
    const double difference = std::fabs(lhs - rhs);
    return magnitude > 0 ? difference / magnitude : difference;
}

// Without bias, conv is linear in x and in w: backward data and filter are its adjoints. Each
// identity is judged against <conv(|x|, |w|), |y|>, not inner_product_mismatch's Cauchy-Schwarz
// scale: with replicate, reflect or circular padding several taps read the same input element,
// so conv(x) and conv_backward_data(y) are sums of weights that may both cancel to near zero, and
// the scale with them (seed 17239425097788876820: conv3d, replicate, one channel, input 2x1x1,
// kernel 2x2x2; <conv(x), y> = -5.1e-7, a mismatch of 3e-17 was 2.3e-11 of that scale).
void expect_adjoint_identities(const ConvCase& c, std::mt19937_64& rng) {
    const Tensor x = random_tensor(c.input_shape(), rng);
    const Tensor w = random_tensor(c.weight_shape(), rng);
    const Tensor y = random_tensor(conv_output_shape(x.shape(), w.shape(), c.params), rng);
    const Tensor conv_x = conv_forward(x, w, c.params);
    const double magnitude = dot(conv_forward(abs(x), abs(w), c.params), abs(y));
    const Tensor back_data = conv_backward_data(y, w, x.shape(), c.params);
    EXPECT_LT(adjoint_mismatch(dot(conv_x, y), dot(x, back_data), magnitude), kFloat64Tolerance)
        << "<conv(x), y> = " << dot(conv_x, y) << " vs <x, conv_backward_data(y)> = " << dot(x, back_data);
    const Tensor back_filter = conv_backward_filter(y, x, w.shape(), c.params);
    EXPECT_LT(adjoint_mismatch(dot(conv_x, y), dot(back_filter, w), magnitude), kFloat64Tolerance)
        << "<conv(x, w), y> = " << dot(conv_x, y) << " vs <conv_backward_filter(y, x), w> = " << dot(back_filter, w);
}

// ---- The fixed list of cases -------------------------------------------------------------------

std::vector<ConvCase> fixed_cases() {
    using PM = PaddingMode;
    std::vector<ConvCase> cases = {
        // 1-D
        conv_case(ConvParams(1), 1, 1, 1, {5}, {3}),
        conv_case(ConvParams(1).set_stride(2).set_padding(1), 2, 3, 5, {11}, {3}),
        conv_case(ConvParams(1).set_stride(3).set_dilation(2), 1, 5, 7, {17}, {4}, false),
        conv_case(ConvParams(1).set_padding(2).set_dilation(3).set_groups(2), 2, 4, 6, {9}, {2}),
        conv_case(ConvParams(1).set_stride(2).set_padding(1).set_groups(5), 1, 5, 10, {12}, {3}),  // depthwise, x2
        conv_case(ConvParams(1).set_same_padding(), 1, 3, 3, {8}, {4}),  // odd total: the extra pad at the end
        conv_case(ConvParams(1).set_same_padding().set_dilation(3), 2, 3, 5, {10}, {3}),
        conv_case(ConvParams(1).set_same_padding().set_dilation(3), 1, 3, 2, {7}, {2}),  // total 3: 1 before, 2 after
        conv_case(ConvParams(1).set_padding(2).set_padding_mode(PM::Reflect), 1, 3, 2, {5}, {3}),
        conv_case(ConvParams(1).set_padding(2).set_stride(2).set_padding_mode(PM::Replicate), 1, 3, 2, {6}, {5}),
        conv_case(ConvParams(1).set_padding(2).set_dilation(2).set_padding_mode(PM::Circular), 2, 2, 3, {4}, {3}),
        conv_case(ConvParams(1).set_padding(2).set_padding_mode(PM::Circular), 1, 1, 1, {2}, {3}),  // pad = size
        conv_case(ConvParams(1).set_same_padding().set_dilation(2).set_padding_mode(PM::Reflect), 1, 7, 7, {6}, {3}),
        // 2-D
        conv_case(ConvParams(2), 1, 3, 4, {5, 6}, {3, 3}),
        conv_case(ConvParams(2).set_stride({2, 1}).set_padding({0, 1}).set_dilation({1, 2}), 2, 3, 4, {7, 6}, {1, 3}),
        conv_case(ConvParams(2).set_stride({1, 3}).set_padding({2, 0}), 1, 5, 3, {6, 11}, {3, 1}),
        conv_case(ConvParams(2).set_stride({3, 2}).set_padding({1, 2}).set_groups(2), 1, 4, 6, {9, 8}, {2, 5}),
        conv_case(ConvParams(2).set_stride({2, 3}).set_padding(1).set_dilation({2, 1}).set_groups(7), 1, 7, 7, {8, 9},
                  {3, 3}),  // depthwise
        conv_case(ConvParams(2).set_padding(2).set_dilation(3).set_groups(3), 2, 3, 6, {7, 7}, {3, 2}, false),
        conv_case(ConvParams(2).set_same_padding().set_dilation({1, 2}), 1, 3, 5, {6, 7}, {2, 4}),
        conv_case(ConvParams(2).set_same_padding().set_padding_mode(PM::Reflect), 1, 2, 3, {5, 4}, {3, 3}),
        conv_case(ConvParams(2).set_same_padding().set_dilation({2, 1}).set_padding_mode(PM::Circular), 1, 3, 2,
                  {5, 4}, {2, 3}),
        conv_case(ConvParams(2).set_same_padding().set_dilation({3, 1}).set_padding_mode(PM::Replicate), 1, 5, 5,
                  {4, 6}, {2, 4}),
        conv_case(ConvParams(2).set_stride({2, 1}).set_padding({1, 2}).set_groups(2).set_padding_mode(PM::Reflect), 2,
                  4, 2, {5, 3}, {3, 2}),
        conv_case(ConvParams(2).set_stride({1, 2}).set_padding({2, 1}).set_dilation({1, 3}).set_padding_mode(
                      PM::Replicate),
                  1, 3, 3, {4, 7}, {2, 3}),
        conv_case(ConvParams(2).set_stride(2).set_padding({1, 2}).set_padding_mode(PM::Circular), 1, 5, 3, {3, 5},
                  {3, 3}),
        // 3-D, tiny
        conv_case(ConvParams(3), 1, 2, 3, {3, 4, 3}, {2, 2, 2}),
        conv_case(ConvParams(3).set_stride({1, 2, 3}).set_padding({1, 0, 2}).set_dilation({2, 1, 1}), 2, 3, 2,
                  {4, 5, 6}, {2, 3, 2}),
        conv_case(ConvParams(3).set_padding(1).set_groups(3), 1, 3, 3, {3, 3, 4}, {3, 3, 3}),  // depthwise
        conv_case(ConvParams(3).set_stride(2).set_groups(2), 1, 4, 2, {5, 4, 5}, {1, 3, 2}, false),
        conv_case(ConvParams(3).set_same_padding().set_dilation({1, 1, 2}), 1, 2, 2, {3, 4, 5}, {2, 3, 2}),
        conv_case(ConvParams(3).set_padding({1, 2, 1}).set_padding_mode(PM::Reflect), 1, 2, 2, {3, 3, 2}, {2, 2, 2}),
        conv_case(ConvParams(3).set_stride({2, 1, 1}).set_padding(1).set_padding_mode(PM::Replicate), 1, 3, 2,
                  {3, 2, 4}, {3, 1, 2}),
        conv_case(ConvParams(3).set_padding({2, 1, 1}).set_dilation({1, 2, 1}).set_padding_mode(PM::Circular), 1, 2, 4,
                  {2, 3, 3}, {2, 2, 3}),
    };
    return cases;
}

std::string case_name(const ::testing::TestParamInfo<ConvCase>& info) {
    // gtest needs unique names; two cases that print alike get their index appended.
    const std::vector<ConvCase> all = fixed_cases();
    int same_name_before = 0;
    for (std::size_t i = 0; i < info.index; ++i) same_name_before += all[i].name() == info.param.name();
    return same_name_before == 0 ? info.param.name() : info.param.name() + "_" + std::to_string(info.index);
}

// A random valid problem of the given spatial rank: any stride, padding, dilation, groups and
// padding mode, the input size drawn above the smallest that the kernel and the padding mode
// allow. 3-D problems stay tiny so that finite differences over every element remain cheap.
ConvCase random_case(std::mt19937_64& rng, int rank) {
    static constexpr PaddingMode modes[] = {PaddingMode::Zeros, PaddingMode::Reflect, PaddingMode::Replicate,
                                            PaddingMode::Circular};
    ConvCase c;
    c.params = ConvParams(rank);
    c.params.padding_mode = modes[pick(rng, 0, 3)];
    c.params.same_padding = pick(rng, 0, 3) == 0;
    c.params.groups = pick(rng, 1, 3);
    c.batch = rank == 3 ? 1 : pick(rng, 1, 2);
    c.in_channels = c.params.groups * pick(rng, 1, rank == 3 ? 2 : 3);
    c.out_channels = c.params.groups * pick(rng, 1, rank == 3 ? 2 : 3);
    c.bias = pick(rng, 0, 3) != 0;
    for (int i = 0; i < rank; ++i) {
        const auto d = static_cast<std::size_t>(i);
        const std::int64_t k = pick(rng, 1, rank == 3 ? 2 : 4);
        c.params.dilation[d] = pick(rng, 1, rank == 3 ? 2 : 3);
        c.params.stride[d] = c.params.same_padding ? 1 : pick(rng, 1, 3);
        c.params.padding[d] = c.params.same_padding ? 0 : pick(rng, 0, 2);
        const std::int64_t total = c.params.dilation[d] * (k - 1);
        const std::int64_t before = c.params.same_padding ? total / 2 : c.params.padding[d];
        const std::int64_t after = c.params.same_padding ? total - total / 2 : c.params.padding[d];
        std::int64_t smallest = std::max<std::int64_t>(1, total + 1 - before - after);
        if (c.params.padding_mode == PaddingMode::Reflect) smallest = std::max(smallest, std::max(before, after) + 1);
        if (c.params.padding_mode == PaddingMode::Circular) smallest = std::max(smallest, std::max(before, after));
        c.kernel.push_back(k);
        c.input.push_back(smallest + pick(rng, 0, rank == 3 ? 2 : 4));
    }
    return c;
}

// ---- Tests over the fixed list -----------------------------------------------------------------

class ConvReference : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvReference, ForwardMatchesIm2colDefinition) {
    CONVKIT_SEEDED_RNG(rng);
    expect_forward_matches_im2col(GetParam(), rng);
}

// Small integers make every product and sum exact in both dtypes, so the reference and the
// definition must agree bit for bit whatever their summation order.
TEST_P(ConvReference, ExactOnSmallIntegers) {
    const ConvCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = small_integer_tensor(c.input_shape(), rng());
    const Tensor w = small_integer_tensor(c.weight_shape(), rng());
    const Tensor b = c.bias ? small_integer_tensor(Shape{c.out_channels}, rng()) : Tensor();
    testing::expect_exact_in_both_dtypes(
        [&](const Tensor& xi, const Tensor& wi, const Tensor& bi) { return conv_forward(xi, wi, bi, c.params); }, x, w,
        b, conv_by_im2col(c, x, w, b));
}

TEST_P(ConvReference, GradientsMatchFiniteDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    expect_gradients_match_finite_differences(GetParam(), rng);
}

TEST_P(ConvReference, BackwardPassesAreAdjointsOfForward) {
    CONVKIT_SEEDED_RNG(rng);
    expect_adjoint_identities(GetParam(), rng);
}

// The float32 instantiation must compute what the float64 one does: on the same (float32-rounded)
// inputs the only difference is the final rounding of each element.
TEST_P(ConvReference, Float32MatchesFloat64ForEveryPass) {
    const ConvCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x32 = random_tensor(c.input_shape(), rng).to(DType::Float32);
    const Tensor w32 = random_tensor(c.weight_shape(), rng).to(DType::Float32);
    const Tensor b32 = random_tensor(Shape{c.out_channels}, rng).to(DType::Float32);
    const Tensor dy32 = random_tensor(conv_output_shape(x32.shape(), w32.shape(), c.params), rng).to(DType::Float32);
    const Tensor x64 = x32.to(DType::Float64);
    const Tensor w64 = w32.to(DType::Float64);
    const Tensor b64 = b32.to(DType::Float64);
    const Tensor dy64 = dy32.to(DType::Float64);

    const Tensor y32 = conv_forward(x32, w32, b32, c.params);
    ASSERT_EQ(y32.dtype(), DType::Float32);
    const Tensor y64 = conv_forward(x64, w64, b64, c.params);
    EXPECT_LT(relative_error(y32, y64), kFloat32VsFloat64Tolerance) << "forward";
    EXPECT_TRUE(is_correctly_rounded(y32, y64)) << "forward";

    const Tensor data32 = conv_backward_data(dy32, w32, x32.shape(), c.params);
    const Tensor data64 = conv_backward_data(dy64, w64, x64.shape(), c.params);
    EXPECT_LT(relative_error(data32, data64), kFloat32VsFloat64Tolerance) << "backward data";
    EXPECT_TRUE(is_correctly_rounded(data32, data64)) << "backward data";

    const Tensor filter32 = conv_backward_filter(dy32, x32, w32.shape(), c.params);
    const Tensor filter64 = conv_backward_filter(dy64, x64, w64.shape(), c.params);
    EXPECT_LT(relative_error(filter32, filter64), kFloat32VsFloat64Tolerance) << "backward filter";
    EXPECT_TRUE(is_correctly_rounded(filter32, filter64)) << "backward filter";

    const Tensor bias32 = conv_backward_bias(dy32);
    const Tensor bias64 = conv_backward_bias(dy64);
    EXPECT_LT(relative_error(bias32, bias64), kFloat32VsFloat64Tolerance) << "backward bias";
    EXPECT_TRUE(is_correctly_rounded(bias32, bias64)) << "backward bias";
}

INSTANTIATE_TEST_SUITE_P(Cases, ConvReference, ::testing::ValuesIn(fixed_cases()), case_name);

// ---- Tests over random configurations ----------------------------------------------------------

// Cycled through spatial ranks 1, 2, 3 so that every rank gets a third of them.
constexpr int kRandomConfigurations = 99;

// Runs `check(case, rng)` on kRandomConfigurations fresh problems, naming each on failure.
template <typename Check>
void check_random_cases(Check check) {
    CONVKIT_SEEDED_RNG(rng);
    for (int i = 0; i < kRandomConfigurations; ++i) {
        const ConvCase c = random_case(rng, 1 + i % 3);
        SCOPED_TRACE(c.name());
        check(c, rng);
    }
}

TEST(ConvReferenceRandom, ForwardMatchesIm2colDefinition) {
    check_random_cases(expect_forward_matches_im2col);
}

TEST(ConvReferenceRandom, GradientsMatchFiniteDifferences) {
    check_random_cases(expect_gradients_match_finite_differences);
}

TEST(ConvReferenceRandom, BackwardPassesAreAdjointsOfForward) {
    check_random_cases(expect_adjoint_identities);
}

// ---- Hand-computed values ----------------------------------------------------------------------

Tensor vector_1d(std::vector<double> values) {
    const auto n = static_cast<std::int64_t>(values.size());
    return Tensor::from_vector(Shape{1, 1, n}, values);
}

TEST(ConvReferenceKnownValues, StridedDilated1d) {
    // Taps at 0, 2, 4 (dilation 2), windows starting at 0 and 2 (stride 2); extent 5 fits twice in 7.
    //   y[0] = 1 * 1 + 3 * 10 + 5 * 100 = 531,   y[1] = 3 * 1 + 5 * 10 + 7 * 100 = 753.
    const Tensor x = vector_1d({1, 2, 3, 4, 5, 6, 7});
    const Tensor w = vector_1d({1, 10, 100});
    const Tensor y = conv_forward(x, w, ConvParams(1).set_stride(2).set_dilation(2));
    EXPECT_EQ(y.shape(), (Shape{1, 1, 2}));
    EXPECT_EQ(y.to_vector(), (std::vector<double>{531, 753}));

    // Stride and dilation differ, so swapping them cannot go unnoticed. On x = 1..9:
    //   stride 3, dilation 2: taps 0 2 4 and 3 5 7: 1 + 30 + 500 = 531, 4 + 60 + 800 = 864;
    //   stride 2, dilation 3: taps 0 3 6 and 2 5 8: 1 + 40 + 700 = 741, 3 + 60 + 900 = 963.
    const Tensor x9 = vector_1d({1, 2, 3, 4, 5, 6, 7, 8, 9});
    EXPECT_EQ(conv_forward(x9, w, ConvParams(1).set_stride(3).set_dilation(2)).to_vector(),
              (std::vector<double>{531, 864}));
    EXPECT_EQ(conv_forward(x9, w, ConvParams(1).set_stride(2).set_dilation(3)).to_vector(),
              (std::vector<double>{741, 963}));
}

// x = [1, 2, 3, 4], w = [1, 10, 100], y[o] = p[o] + 10 p[o + 1] + 100 p[o + 2] on the padded p.
TEST(ConvReferenceKnownValues, PaddingModes1d) {
    const Tensor x = vector_1d({1, 2, 3, 4});
    const Tensor w = vector_1d({1, 10, 100});
    // zeros, padding 1, bias 0.5: p = [0 1 2 3 4 0].
    EXPECT_EQ(conv_forward(x, w, Tensor::from_vector(Shape{1}, std::vector<double>{0.5}), ConvParams(1).set_padding(1))
                  .to_vector(),
              (std::vector<double>{210.5, 321.5, 432.5, 43.5}));
    // reflect, padding 2: the edge is not repeated, p = [3 2 | 1 2 3 4 | 3 2].
    EXPECT_EQ(conv_forward(x, w, ConvParams(1).set_padding(2).set_padding_mode(PaddingMode::Reflect)).to_vector(),
              (std::vector<double>{123, 212, 321, 432, 343, 234}));
    // replicate, padding 2: p = [1 1 | 1 2 3 4 | 4 4].
    EXPECT_EQ(conv_forward(x, w, ConvParams(1).set_padding(2).set_padding_mode(PaddingMode::Replicate)).to_vector(),
              (std::vector<double>{111, 211, 321, 432, 443, 444}));
    // circular, padding 2: wraps, p = [3 4 | 1 2 3 4 | 1 2].
    EXPECT_EQ(conv_forward(x, w, ConvParams(1).set_padding(2).set_padding_mode(PaddingMode::Circular)).to_vector(),
              (std::vector<double>{143, 214, 321, 432, 143, 214}));
    // 'same' with an even kernel puts the odd pad at the end: w = [1, 10], p = [1 2 3 4 0].
    EXPECT_EQ(conv_forward(x, vector_1d({1, 10}), ConvParams(1).set_same_padding()).to_vector(),
              (std::vector<double>{21, 32, 43, 4}));
}

// Gradients of padded positions go back to the element they copied.
TEST(ConvReferenceKnownValues, PaddingModeGradientsScatterToTheSourceElement) {
    const Tensor x = vector_1d({1, 2, 3, 4});
    const Tensor w = vector_1d({1, 10, 100});
    const Tensor dy = vector_1d({1, 0, 0, 0, 0, 1});  // picks y[0] + y[5]
    const Shape x_shape = x.shape();
    // reflect: y[0] = x2 + 10 x1 + 100 x0, y[5] = x3 + 10 x2 + 100 x1.
    const ConvParams reflect = ConvParams(1).set_padding(2).set_padding_mode(PaddingMode::Reflect);
    EXPECT_EQ(conv_backward_data(dy, w, x_shape, reflect).to_vector(), (std::vector<double>{100, 110, 11, 1}));
    // dw[k] = p[k] + p[5 + k] with p = [3 2 1 2 3 4 3 2].
    EXPECT_EQ(conv_backward_filter(dy, x, w.shape(), reflect).to_vector(), (std::vector<double>{7, 5, 3}));
    // circular: y[0] = x2 + 10 x3 + 100 x0, y[5] = x3 + 10 x0 + 100 x1.
    const ConvParams circular = ConvParams(1).set_padding(2).set_padding_mode(PaddingMode::Circular);
    EXPECT_EQ(conv_backward_data(dy, w, x_shape, circular).to_vector(), (std::vector<double>{110, 100, 1, 11}));
    // replicate: y[0] = x0 + 10 x0 + 100 x0, y[5] = x3 + 10 x3 + 100 x3.
    const ConvParams replicate = ConvParams(1).set_padding(2).set_padding_mode(PaddingMode::Replicate);
    EXPECT_EQ(conv_backward_data(dy, w, x_shape, replicate).to_vector(), (std::vector<double>{111, 0, 0, 111}));
    // zeros: y[0] = 100 x0 (taps on padding read nothing), y[5] = x3.
    EXPECT_EQ(conv_backward_data(dy, w, x_shape, ConvParams(1).set_padding(2)).to_vector(),
              (std::vector<double>{100, 0, 0, 1}));
    EXPECT_EQ(conv_backward_bias(dy).to_vector(), (std::vector<double>{2}));
}

TEST(ConvReferenceKnownValues, NonSquareKernelWithPerDimStride2d) {
    // x = 1..12 as 3x4, kernel 1x2 = [1, 10], stride (2, 1): rows 0 and 2, y = x[r][c] + 10 x[r][c + 1].
    std::vector<double> values(12);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i + 1);
    const Tensor x = Tensor::from_vector(Shape{1, 1, 3, 4}, values);
    const Tensor w = Tensor::from_vector(Shape{1, 1, 1, 2}, std::vector<double>{1, 10});
    const Tensor y = conv_forward(x, w, ConvParams(2).set_stride({2, 1}));
    EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 3}));
    EXPECT_EQ(y.to_vector(), (std::vector<double>{21, 32, 43, 109, 120, 131}));
}

TEST(ConvReferenceKnownValues, GroupsReadOnlyTheirOwnChannels) {
    // Two groups of two input channels, one output channel each, 1x1 kernels:
    //   y0 = 1 * x0 + 10 * x1,  y1 = 100 * x2 + 1000 * x3.
    const Tensor x = Tensor::from_vector(Shape{1, 4, 1, 2}, std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8});
    const Tensor w = Tensor::from_vector(Shape{2, 2, 1, 1}, std::vector<double>{1, 10, 100, 1000});
    const Tensor b = Tensor::from_vector(Shape{2}, std::vector<double>{0.25, -0.5});
    const Tensor y = conv_forward(x, w, b, ConvParams(2).set_groups(2));
    EXPECT_EQ(y.to_vector(), (std::vector<double>{31.25, 42.25, 7500 - 0.5, 8600 - 0.5}));
}

// Every comparison above is `relative_error(...) < tol` or exact equality: a NaN (an element the
// reference forgot to write and that happened to hold NaN) must make them fail, not pass.
TEST(ConvReferenceComparisons, FailOnNaN) {
    const Tensor good = Tensor::full(Shape{1, 1, 3}, 1.0, DType::Float64);
    Tensor bad = good.clone();
    bad.data<double>()[1] = std::numeric_limits<double>::quiet_NaN();
    EXPECT_FALSE(relative_error(bad, good) < kFloat64Tolerance);
    EXPECT_FALSE(relative_error(good, bad) < kFloat64Tolerance);
    EXPECT_FALSE(exactly_equal(bad, bad));
    EXPECT_TRUE(std::isnan(max_abs_difference(bad, good)));
}

}  // namespace
}  // namespace convkit
