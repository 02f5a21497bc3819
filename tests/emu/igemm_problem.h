#pragma once
// The tensor-core convolution tests' problems (tests/emu/test_emu_igemm.cpp: cuda.igemm's kernels;
// tests/emu/test_emu_wgmma.cpp: the wgmma forward): a case (geometry, operand and output types,
// epilogue options), its operands drawn at random or as small integers, the expected output from
// a float64 loop straight from the definition written here (channels-last x, KRSC w), and the
// run of a launcher into a NaN-poisoned output.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/conv_igemm.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit::igemm_test {

using kernels::IgemmConvShape;
using kernels::IgemmEpilogue;
using kernels::IgemmOperand;
using kernels::IgemmOutput;
using kernels::IgemmTile;
using testing::pick;

// 16-bit encodings written here, independently of the emulator's cvt: values are drawn so that
// they are exact in both formats (multiples of 1/64 up to 2 in magnitude, or small integers).
inline std::uint16_t bfloat16_of_exact(double v) {
    const auto f = static_cast<float>(v);
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    return static_cast<std::uint16_t>(bits >> 16);
}
inline std::uint16_t float16_of_exact(double v) {  // |v| in [2^-14, 65504] or 0, exactly representable
    if (v == 0) return 0;
    const std::uint16_t sign = v < 0 ? 0x8000 : 0;
    int exponent;
    const double fraction = std::frexp(std::abs(v), &exponent);                     // in [0.5, 1)
    const auto significand = static_cast<std::uint32_t>(std::ldexp(fraction, 11));  // 11 bits, top set
    return static_cast<std::uint16_t>(sign | (static_cast<std::uint32_t>(exponent + 14) << 10) |
                                      (significand & 0x3ffu));
}
inline double float16_value(std::uint16_t bits) {
    const int exponent = (bits >> 10) & 0x1f;
    const double mantissa = bits & 0x3ff;
    const double magnitude = exponent == 0    ? std::ldexp(mantissa, -24)
                             : exponent == 31 ? (mantissa == 0 ? std::numeric_limits<double>::infinity()
                                                               : std::numeric_limits<double>::quiet_NaN())
                                              : std::ldexp(1024 + mantissa, exponent - 25);
    return (bits & 0x8000) != 0 ? -magnitude : magnitude;
}
inline double bfloat16_value(std::uint16_t bits) {
    const std::uint32_t widened = std::uint32_t{bits} << 16;
    float f;
    std::memcpy(&f, &widened, sizeof(f));
    return f;
}

// y = conv(x, w); dx = conv^T(dy, w); dw from dy and x.
enum class Direction { Forward, BackwardData, BackwardFilter };

struct Case {
    IgemmConvShape shape;
    IgemmTile tile;
    IgemmOperand operand;
    IgemmOutput output;
    bool bias, residual, relu;  // backward-filter: residual only
    Direction direction = Direction::Forward;
    int splits = 1;  // split-K: the GEMM's k tiles dealt out to this many ranges
    bool producer_warpgroup = false;  // cuda.wgmma's producer ring (kernels::WgmmaSchedule; wgmma tests only)
};

// The cases of the misaligned-output tests: every epilogue option on (bias, residual, ReLU), each
// output in both passes, split `splits` ways and not; tf32 operands for a float32 output, bf16
// for the others; the large tile (a caller may set its own).
inline std::vector<Case> every_output_with_every_option(const IgemmConvShape& s, int splits) {
    std::vector<Case> cases;
    for (Direction direction : {Direction::Forward, Direction::BackwardData})
        for (IgemmOutput output : {IgemmOutput::BFloat16, IgemmOutput::Float16, IgemmOutput::Float32})
            for (int split : {1, splits}) {
                const IgemmOperand operand =
                    output == IgemmOutput::Float32 ? IgemmOperand::TensorFloat32 : IgemmOperand::BFloat16;
                cases.push_back({s, IgemmTile::Large, operand, output, true, true, true, direction, split});
            }
    return cases;
}

inline std::string name_of(const Case& c) {
    std::string n = c.direction == Direction::Forward        ? "fwd "
                    : c.direction == Direction::BackwardData ? "bwd_data "
                                                             : "bwd_filter ";
    if (c.splits != 1) n += "split" + std::to_string(c.splits) + " ";
    n += c.shape.to_string();
    n += c.tile == IgemmTile::Large    ? " large"
         : c.tile == IgemmTile::Narrow ? " narrow"
         : c.tile == IgemmTile::Slim   ? " slim"
                                       : " small";
    n += c.operand == IgemmOperand::BFloat16 ? " bf16" : c.operand == IgemmOperand::Float16 ? " f16" : " tf32";
    n += c.output == IgemmOutput::BFloat16 ? " to bf16" : c.output == IgemmOutput::Float16 ? " to f16" : " to f32";
    if (c.bias) n += " bias";
    if (c.residual) n += " residual";
    if (c.relu) n += " relu";
    if (c.producer_warpgroup) n += " producer";
    return n;
}

// gtest prints a failing parameter with this instead of its bytes.
inline void PrintTo(const Case& c, std::ostream* out) {
    *out << name_of(c);
}

inline IgemmConvShape shape(int rank, std::int64_t n, std::int64_t c, std::int64_t k, std::int64_t g,
                            std::array<std::int64_t, 3> in, std::array<std::int64_t, 3> kernel,
                            std::array<std::int64_t, 3> stride = {1, 1, 1}, std::array<std::int64_t, 3> pad = {0, 0, 0},
                            std::array<std::int64_t, 3> dil = {1, 1, 1}) {
    IgemmConvShape s;
    s.rank = rank;
    s.batch = n;
    s.in_channels = c;
    s.out_channels = k;
    s.groups = g;
    s.input = in;
    s.kernel = kernel;
    s.stride = stride;
    s.padding = pad;
    s.dilation = dil;
    return s;
}

// An operand's elements as the kernels read them: 16-bit bits, or float32 for tf32.
struct OperandData {
    std::vector<std::uint16_t> bits16;
    std::vector<float> values32;
    const void* data() const {
        return values32.empty() ? static_cast<const void*>(bits16.data()) : static_cast<const void*>(values32.data());
    }
    std::size_t bytes() const { return bits16.size() * sizeof(std::uint16_t) + values32.size() * sizeof(float); }
};

// Host data of one run: the kernel's two operands (x and w forward, dy and w backward-data, dy
// and x backward-filter), the expected output (y, dx or dw).
struct Problem {
    OperandData first, second;
    std::vector<float> bias;
    std::vector<double> residual;  // values, exact in the output type
    std::vector<double> expected;
    std::int64_t outputs = 0;
};

inline std::int64_t product(const std::array<std::int64_t, 3>& v, int rank) {
    std::int64_t p = 1;
    for (int i = 0; i < rank; ++i) p *= v[static_cast<std::size_t>(i)];
    return p;
}

// y[n, o, k] = sum over taps t and channels c of the group: x[n, o*s - p + t*d, c] * w[k, t, c];
// backward-data, the adjoint: each product dy[n, o, k] * w[k, t, c] added to
// dx[n, o*s - p + t*d, c]; backward-filter: each dy[n, o, k] * x[n, o*s - p + t*d, c] added to
// dw[k, t, c]. Then + bias[channel] + residual, then ReLU: the definitions, in double.
// Values: small integers, or random ones (16-bit: multiples of 1/64 exact in the format; tf32:
// floats with up to 21 significant bits, which the kernel rounds to 11), or, when `constants`
// is given, x, w and dy each one value everywhere.
inline Problem make_problem(const Case& cs, std::mt19937_64& rng, bool small_integers,
                            const std::array<double, 3>* constants = nullptr) {
    const IgemmConvShape& s = cs.shape;
    const auto out = s.output();
    const int r = s.rank;
    const std::int64_t positions = product(out, r), in_positions = product(s.input, r), taps = product(s.kernel, r);
    const std::int64_t cg = s.in_channels / s.groups, kg = s.out_channels / s.groups;
    Problem p;
    const bool tf32 = cs.operand == IgemmOperand::TensorFloat32;
    auto draw = [&] {
        if (small_integers) return static_cast<double>(pick(rng, -2, 2));
        return tf32 ? static_cast<double>(pick(rng, -(1 << 20), 1 << 20)) / (1 << 20)
                    : static_cast<double>(pick(rng, -64, 64)) / 64;
    };
    auto encode = [&](double v, OperandData& into) {
        if (tf32) {
            into.values32.push_back(static_cast<float>(v));  // exact: at most 21 significant bits
        } else {
            into.bits16.push_back(cs.operand == IgemmOperand::BFloat16 ? bfloat16_of_exact(v) : float16_of_exact(v));
        }
    };
    const Direction dir = cs.direction;
    std::vector<double> xs(static_cast<std::size_t>(s.batch * in_positions * s.in_channels));
    std::vector<double> ws(static_cast<std::size_t>(s.out_channels * taps * cg));
    std::vector<double> dys(static_cast<std::size_t>(s.batch * positions * s.out_channels));
    std::size_t which = 0;
    for (auto* values : {&xs, &ws, &dys}) {
        for (auto& v : *values) v = constants != nullptr ? (*constants)[which] : draw();
        ++which;
    }
    const auto& first = dir == Direction::Forward ? xs : dys;
    const auto& second = dir == Direction::BackwardFilter ? xs : ws;
    for (double v : first) encode(v, p.first);
    for (double v : second) encode(v, p.second);
    const std::int64_t out_channels = dir == Direction::BackwardData ? s.in_channels : s.out_channels;
    p.outputs = static_cast<std::int64_t>(dir == Direction::Forward        ? dys.size()
                                          : dir == Direction::BackwardData ? xs.size()
                                                                           : ws.size());
    if (cs.bias) {
        p.bias.resize(static_cast<std::size_t>(out_channels));
        for (auto& v : p.bias) v = static_cast<float>(draw());
    }
    if (cs.residual) {
        p.residual.resize(static_cast<std::size_t>(p.outputs));
        for (auto& v : p.residual) v = draw();
    }
    p.expected.assign(static_cast<std::size_t>(p.outputs), 0.0);
    // Coordinates as 3 dims with the rank's dims last.
    std::array<std::int64_t, 3> in3{1, 1, 1}, out3{1, 1, 1}, k3{1, 1, 1}, s3{1, 1, 1}, p3{0, 0, 0}, d3{1, 1, 1};
    for (int i = 0; i < r; ++i) {
        const auto f = static_cast<std::size_t>(i), t = static_cast<std::size_t>(3 - r + i);
        in3[t] = s.input[f];
        out3[t] = out[f];
        k3[t] = s.kernel[f];
        s3[t] = s.stride[f];
        p3[t] = s.padding[f];
        d3[t] = s.dilation[f];
    }
    for (std::int64_t n = 0; n < s.batch; ++n)
        for (std::int64_t od = 0; od < out3[0]; ++od)
            for (std::int64_t oh = 0; oh < out3[1]; ++oh)
                for (std::int64_t ow = 0; ow < out3[2]; ++ow)
                    for (std::int64_t k = 0; k < s.out_channels; ++k) {
                        const std::int64_t g = k / kg;
                        const std::int64_t y_index =
                            (((n * out3[0] + od) * out3[1] + oh) * out3[2] + ow) * s.out_channels + k;
                        for (std::int64_t kd = 0; kd < k3[0]; ++kd)
                            for (std::int64_t kh = 0; kh < k3[1]; ++kh)
                                for (std::int64_t kw = 0; kw < k3[2]; ++kw) {
                                    const std::int64_t id = od * s3[0] - p3[0] + kd * d3[0];
                                    const std::int64_t ih = oh * s3[1] - p3[1] + kh * d3[1];
                                    const std::int64_t iw = ow * s3[2] - p3[2] + kw * d3[2];
                                    if (id < 0 || id >= in3[0] || ih < 0 || ih >= in3[1] || iw < 0 || iw >= in3[2])
                                        continue;
                                    const std::int64_t tap = (kd * k3[1] + kh) * k3[2] + kw;
                                    for (std::int64_t c = 0; c < cg; ++c) {
                                        const std::int64_t x_index =
                                            (((n * in3[0] + id) * in3[1] + ih) * in3[2] + iw) * s.in_channels + g * cg +
                                            c;
                                        const auto xi = static_cast<std::size_t>(x_index);
                                        const auto yi = static_cast<std::size_t>(y_index);
                                        const auto wi = static_cast<std::size_t>((k * taps + tap) * cg + c);
                                        if (dir == Direction::Forward) {
                                            p.expected[yi] += xs[xi] * ws[wi];
                                        } else if (dir == Direction::BackwardData) {
                                            p.expected[xi] += dys[yi] * ws[wi];
                                        } else {
                                            p.expected[wi] += dys[yi] * xs[xi];
                                        }
                                    }
                                }
                    }
    for (std::size_t i = 0; i < p.expected.size(); ++i) {
        double& v = p.expected[i];
        if (cs.bias) v += p.bias[i % static_cast<std::size_t>(out_channels)];
        if (cs.residual) v += p.residual[i];
        if (cs.relu) v = std::max(v, 0.0);
    }
    return p;
}

// Runs launch(epilogue, y) with the case's epilogue into a NaN-poisoned y (host memory) and
// returns y as doubles. With `misalign` 1, y and the residual start one element into their
// buffers: off the alignment of a pair of elements (the epilogue then writes each value alone).
inline std::vector<double> run_with(const Case& cs, const Problem& p,
                                    const std::function<void(const IgemmEpilogue&, void*)>& launch,
                                    std::size_t misalign = 0) {
    const auto count = static_cast<std::size_t>(p.outputs);
    std::vector<float> y32(count + misalign, std::numeric_limits<float>::quiet_NaN()), residual32(misalign);
    const std::uint16_t nan16 = cs.output == IgemmOutput::BFloat16 ? 0x7fc0 : 0x7e00;
    std::vector<std::uint16_t> y16(count + misalign, nan16), residual16(misalign);
    const void* residual = nullptr;
    if (cs.residual) {
        if (cs.output == IgemmOutput::Float32) {
            for (double v : p.residual) residual32.push_back(static_cast<float>(v));
            residual = residual32.data() + misalign;
        } else {
            for (double v : p.residual)
                residual16.push_back(cs.output == IgemmOutput::BFloat16 ? bfloat16_of_exact(v) : float16_of_exact(v));
            residual = residual16.data() + misalign;
        }
    }
    const IgemmEpilogue epilogue{cs.bias ? p.bias.data() : nullptr, residual, cs.relu};
    void* y = cs.output == IgemmOutput::Float32 ? static_cast<void*>(y32.data() + misalign)
                                                : static_cast<void*>(y16.data() + misalign);
    launch(epilogue, y);
    std::vector<double> result(count);
    for (std::size_t i = 0; i < count; ++i)
        result[i] = cs.output == IgemmOutput::Float32    ? y32[misalign + i]
                    : cs.output == IgemmOutput::BFloat16 ? bfloat16_value(y16[misalign + i])
                                                         : float16_value(y16[misalign + i]);
    return result;
}

// ||y - expected|| / ||expected||; NaN if any element is NaN (an unwritten one).
inline double relative_error(const std::vector<double>& y, const std::vector<double>& expected) {
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        if (std::isnan(y[i])) return std::numeric_limits<double>::quiet_NaN();
        diff += (y[i] - expected[i]) * (y[i] - expected[i]);
        norm += expected[i] * expected[i];
    }
    return std::sqrt(diff / std::max(norm, 1e-300));
}

// The elements of `y` that differ from `expected`: 0 for a bit-for-bit check to pass.
inline std::size_t differing(const std::vector<double>& y, const std::vector<double>& expected) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < y.size(); ++i) count += y[i] != expected[i] ? 1 : 0;
    return count;
}

// A parameterised case's gtest name: its index and name_of, alphanumerics only.
inline std::string case_test_name(const ::testing::TestParamInfo<Case>& info) {
    return testing::test_name(std::to_string(info.index) + "_" + name_of(info.param));
}

// By output type: its rounding (bf16 8 bits, f16 11) dominates; float sums a few hundred exact
// products in float32.
inline double tolerance(IgemmOutput output) {
    return output == IgemmOutput::BFloat16 ? 1e-2 : output == IgemmOutput::Float16 ? 1e-3 : 1e-5;
}
// tf32 operands (float32 output): each rounded to 11 significant bits on its way in.
inline double tolerance(const Case& c) {
    return c.operand == IgemmOperand::TensorFloat32 ? testing::kTf32Tolerance : tolerance(c.output);
}

inline constexpr auto kBF = IgemmOperand::BFloat16;
inline constexpr auto kF16 = IgemmOperand::Float16;
inline constexpr auto kTF32 = IgemmOperand::TensorFloat32;
inline constexpr auto kToBF = IgemmOutput::BFloat16;
inline constexpr auto kToF16 = IgemmOutput::Float16;
inline constexpr auto kToF32 = IgemmOutput::Float32;
inline constexpr auto kLarge = IgemmTile::Large;
inline constexpr auto kSmall = IgemmTile::Small;
inline constexpr auto kNarrow = IgemmTile::Narrow;
inline constexpr auto kSlim = IgemmTile::Slim;

}  // namespace convkit::igemm_test
