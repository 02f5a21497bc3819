// The depthwise convolution variant `cuda.depthwise` (kernels/conv_depthwise.cu, label gpu),
// run directly (no selection) on its own sweep: forward, backward data, backward filter and
// the bias gradient against the float64 host reference, in float32 and float64, into NaN-filled outputs. The
// sweep covers MobileNet's 3x3, ConvNeXt's 7x7, RepLKNet's 31x31, long 1-D sequences, 3-D 3x3x3,
// strides, dilations, channel multipliers, batch 1, odd sizes, sizes one past the kernels' tile
// edges, small planes (several planes per block), every padding mode and asymmetric 'same'
// padding. Then: backward filter is bit-identical run to run, and the variant refuses what is
// not depthwise (and 16-bit contiguous problems, kernels too large for shared memory; on
// channels-last activations channel multipliers and padding other than zeros) with its reason.
// The channels-last kernels (kernels/conv_depthwise_nhwc.cu) meet their sweep in
// test_variant_sweep.cpp (Depthwise/*) and the public ops below.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernel_sweeps.h"
#include "test_util.h"
#include "tolerances.h"
#include "variant_runner.h"

namespace convkit {
namespace {

using testing::conv;
using testing::ConvCase;
using P = ConvParams;

constexpr const char* kVariant = "cuda.depthwise";

// groups == channels everywhere; weight [channels * multiplier, 1, kernel...].
std::vector<ConvCase> depthwise_sweep() {
    using testing::gpu_or_emulated;
    const std::int64_t long_sequence = gpu_or_emulated(20'000, 3'001);
    return {
        // MobileNet 3x3: 17 rows are one past two of the 8-row tiles every pass cuts a 65-wide
        // plane into (rows of 128 columns; the 1-D cases below cross column tiles).
        conv(P(2).set_padding(1).set_groups(5), Shape{2, 5, 17, 65}, Shape{5, 1, 3, 3}),
        conv(P(2).set_stride(2).set_padding(1).set_groups(4), Shape{2, 4, 15, 16}, Shape{8, 1, 3, 3}),  // x2
        conv(P(2).set_padding(1).set_groups(37), Shape{2, 37, 7, 7}, Shape{37, 1, 3, 3}),  // 16 planes per block
        conv(P(2).set_padding(1).set_padding_mode(PaddingMode::Reflect).set_groups(3), Shape{1, 3, 9, 11},
             Shape{3, 1, 3, 3}),
        conv(P(2).set_stride(2).set_padding(2).set_padding_mode(PaddingMode::Replicate).set_groups(2),
             Shape{1, 2, 6, 9}, Shape{4, 1, 3, 3}),
        conv(P(2).set_padding(1).set_padding_mode(PaddingMode::Circular).set_groups(3), Shape{2, 3, 5, 8},
             Shape{6, 1, 3, 3}),
        conv(P(2).set_stride(3).set_dilation(2).set_groups(2), Shape{1, 2, 13, 14}, Shape{2, 1, 3, 3}),  // gaps
        // 144 tiles of 16x64 (3 row tiles x 48 planes): more than the emulated 64-block grid.
        conv(P(2).set_padding(1).set_groups(24), Shape{2, 24, 33, 40}, Shape{24, 1, 3, 3}),
        conv(P(2).set_padding(3).set_groups(2), Shape{1, 2, 4, 5}, Shape{4, 1, 7, 7}),  // kernel > input
        // MobileNetV2's first depthwise layer and a strided one at full size (batch 1 emulated).
        conv(P(2).set_padding(1).set_groups(32), Shape{gpu_or_emulated(8, 1), 32, 112, 112}, Shape{32, 1, 3, 3}),
        conv(P(2).set_stride(2).set_padding(1).set_groups(96), Shape{gpu_or_emulated(4, 1), 96, 56, 56},
             Shape{96, 1, 3, 3}),
        // ConvNeXt 7x7, RepLKNet 31x31 (and strided: shrinks the tile to fit shared memory).
        conv(P(2).set_padding(3).set_groups(3), Shape{1, 3, 14, 13}, Shape{3, 1, 7, 7}),
        conv(P(2).set_padding(15).set_groups(2), Shape{1, 2, 20, 19}, Shape{2, 1, 31, 31}),
        conv(P(2).set_stride(2).set_padding(15).set_padding_mode(PaddingMode::Reflect).set_groups(1),
             Shape{1, 1, 33, 34}, Shape{1, 1, 31, 31}),
        // Kernels 1, 3x5 with per-dim stride and dilation, 'same' with an even kernel (asymmetric).
        conv(P(2).set_stride(2).set_groups(3), Shape{2, 3, 9, 8}, Shape{3, 1, 1, 1}),
        conv(P(2).set_stride({2, 1}).set_dilation({1, 2}).set_padding({1, 3}).set_groups(3), Shape{1, 3, 11, 12},
             Shape{6, 1, 3, 5}),
        conv(P(2).set_same_padding().set_groups(2), Shape{1, 2, 9, 10}, Shape{6, 1, 4, 4}),  // x3
        conv(P(2).set_same_padding().set_dilation(2).set_padding_mode(PaddingMode::Circular).set_groups(2),
             Shape{1, 2, 8, 9}, Shape{2, 1, 5, 5}),
        // 1-D: long sequences with 31 and 3 taps (1025 is one past a 1024-wide tile), strided and
        // dilated under circular padding. The first has 96 blocks' worth of work in every pass,
        // more than the emulated device's 64-block grids: each block takes a second unit.
        conv(P(1).set_padding(15).set_groups(16), Shape{2, 16, long_sequence}, Shape{16, 1, 31}),
        conv(P(1).set_padding(1).set_groups(2), Shape{1, 2, 1025}, Shape{4, 1, 3}),
        conv(P(1).set_stride(2).set_dilation(2).set_padding(6).set_padding_mode(PaddingMode::Circular).set_groups(2),
             Shape{2, 2, 301}, Shape{2, 1, 7}),
        conv(P(1).set_stride(3).set_padding(3).set_padding_mode(PaddingMode::Reflect).set_groups(4), Shape{1, 4, 50},
             Shape{8, 1, 7}),
        conv(P(1).set_stride(2).set_dilation(3).set_padding(40).set_groups(3), Shape{1, 3, 500}, Shape{3, 1, 31}),
        // 3-D 3x3x3, and strided, dilated, replicate-padded with multiplier 2.
        conv(P(3).set_padding(1).set_groups(3), Shape{2, 3, 5, 6, 7}, Shape{3, 1, 3, 3, 3}),
        conv(P(3).set_stride(2)
                 .set_dilation({2, 1, 2})
                 .set_padding(2)
                 .set_padding_mode(PaddingMode::Replicate)
                 .set_groups(2),
             Shape{1, 2, 7, 8, 9}, Shape{4, 1, 3, 3, 3}),
        conv(P(3).set_padding(2).set_padding_mode(PaddingMode::Reflect).set_groups(2), Shape{1, 2, 6, 7, 8},
             Shape{2, 1, 5, 5, 5}),
        // A depthwise transposed convolution: the adjoint geometry is depthwise too.
        testing::transposed(P(2).set_stride(2).set_padding(1).set_output_padding(1).set_groups(4), Shape{1, 4, 5, 6},
                            Shape{4, 1, 3, 3}),
    };
}

detail::ConvGeometry geometry_of(const ConvCase& c) {
    const std::string op = conv_op_name(c.params.spatial_rank, c.transposed);
    return c.transposed ? detail::conv_transpose_geometry(op, c.input, c.weight, c.params)
                        : detail::conv_geometry(op, c.input, c.weight, c.params);
}

detail::ConvProblem problem_of(const detail::ConvGeometry& g, DType dtype,
                               MemoryFormat layout = MemoryFormat::Contiguous) {
    detail::ConvProblem problem = detail::conv_problem(g, dtype, Device::cuda());
    problem.x_layout = problem.y_layout = layout;
    problem.bias_grad = {g.batch, g.out_channels, g.output_spatial()};
    return problem;
}

using DepthwiseParam = std::tuple<ConvCase, DType>;

class CudaDepthwise : public testing::WithCuda<::testing::TestWithParam<DepthwiseParam>> {};

// Runs every pass of the variant on g in dtype with the activations in `layout` and expects the
// float64 reference's results (the dtype's tolerance) on the same random inputs, exact in float32
// (in the dtype for 16-bit ones).
void expect_every_pass_matches_the_reference(const detail::ConvGeometry& g, DType dtype, std::mt19937_64& rng,
                                             MemoryFormat layout = MemoryFormat::Contiguous) {
    const detail::ConvVariant& variant = testing::conv_variant_named(kVariant);
    for (ConvPass pass : kConvPasses) {
        std::string reason;
        ASSERT_TRUE(variant.supports(problem_of(g, dtype, layout), pass, &reason))
            << conv_pass_name(pass) << ": " << reason;
    }
    const bool sixteen_bit = dtype == DType::BFloat16 || dtype == DType::Float16;
    const testing::ConvPassInputs in = testing::random_pass_inputs(g, sixteen_bit ? dtype : DType::Float32, rng);
    const testing::ConvPassResults expected =
        testing::run_conv_passes(testing::conv_variant_named("host.reference"), g, in, DType::Float64);
    const testing::ConvPassResults got = testing::run_conv_passes(variant, g, in, dtype, Device::cuda(), layout);
    const double tol = dtype == DType::Float64 ? testing::kFloat64Tolerance
                       : sixteen_bit           ? testing::sixteen_bit_tolerance(dtype)
                                               : testing::kCudaStrictFloat32Tolerance;
    // Every pass judged per element against the sum of its terms' magnitudes (the reference on
    // |x|, |w|, |dy|, |biases|): a random geometry may have one channel and a kernel of a few taps,
    // so that a pass has a few elements whose random terms cancel to near zero and keep no
    // relative accuracy in float32 (seed 14692979781493758838: a 3-tap filter gradient, 1.3e-5
    // relative). The bias gradient, a sum per channel of batch x positions terms, likewise.
    testing::expect_conv_passes_close(got, expected, testing::conv_pass_magnitudes(g, in), tol);
}

TEST_P(CudaDepthwise, EveryPassMatchesTheFloat64Reference) {
    const auto& [c, dtype] = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    expect_every_pass_matches_the_reference(geometry_of(c), dtype, rng);
}

INSTANTIATE_TEST_SUITE_P(depthwise, CudaDepthwise,
                         ::testing::Combine(::testing::ValuesIn(depthwise_sweep()),
                                            ::testing::Values(DType::Float32, DType::Float64)),
                         [](const ::testing::TestParamInfo<DepthwiseParam>& info) {
                             return std::get<0>(info.param).name() + "_" + dtype_name(std::get<1>(info.param)) + "_" +
                                    std::to_string(info.index);
                         });

// Lower case, so that test names carry "depthwise" (ctest -R 'depthwise' selects every test of
// the variant, in this file and in the variant sweep).
class depthwise : public testing::WithCuda<> {};

// A random depthwise geometry the host reference accepts: rank 1-3, kernels up to 31 (1-D),
// 9 (2-D) or 5 (3-D), strides and dilations 1-3, any padding up to the dilated kernel, any
// mode, 'same' now and then, channels 1-5 with multipliers 1-3, batch 1-3. For the channels-last
// kernels: zeros padding, multiplier 1, and as often 8 to 40 channels (16-byte packs of 16-bit
// values) as 1 to 7.
ConvCase random_depthwise_case(std::mt19937_64& rng, bool channels_last = false) {
    using testing::pick;
    for (;;) {
        const int rank = static_cast<int>(pick(rng, 1, 3));
        const std::int64_t max_kernel = rank == 1 ? 31 : rank == 2 ? 9 : 5;
        const std::int64_t max_size = rank == 1 ? 300 : rank == 2 ? 30 : 9;
        const std::int64_t channels = !channels_last    ? pick(rng, 1, 5)
                                      : pick(rng, 0, 1) ? 8 * pick(rng, 1, 5)
                                                        : pick(rng, 1, 7);
        const std::int64_t multiplier = channels_last ? 1 : pick(rng, 1, 3);
        P params(rank);
        params.groups = channels;
        params.padding_mode = channels_last ? PaddingMode::Zeros : static_cast<PaddingMode>(pick(rng, 0, 3));
        params.same_padding = pick(rng, 0, 5) == 0;
        std::vector<std::int64_t> input{pick(rng, 1, 3), channels}, weight{channels * multiplier, 1};
        for (int d = 0; d < rank; ++d) {
            const std::int64_t kernel = pick(rng, 1, max_kernel);
            params.dilation[d] = pick(rng, 1, 3);
            params.stride[d] = params.same_padding ? 1 : pick(rng, 1, 3);
            params.padding[d] = params.same_padding ? 0 : pick(rng, 0, params.dilation[d] * (kernel - 1));
            input.push_back(pick(rng, 1, max_size));
            weight.push_back(kernel);
        }
        const ConvCase c = conv(params, Shape(input), Shape(weight));
        try {
            geometry_of(c);
            return c;
        } catch (const InvalidArgument&) {
            // not a convolution the reference takes (output below 1, padding past the size): draw again
        }
    }
}

// Fresh random geometries on every run (the seed is printed on failure, CONVKIT_TEST_SEED replays).
TEST_F(depthwise, RandomGeometriesMatchTheFloat64Reference) {
    CONVKIT_SEEDED_RNG(rng);
    for (int i = 0; i < 24; ++i) {
        const ConvCase c = random_depthwise_case(rng);
        SCOPED_TRACE(c.name());
        expect_every_pass_matches_the_reference(geometry_of(c), i % 2 == 0 ? DType::Float64 : DType::Float32, rng);
    }
}

// The channels-last kernels (kernels/conv_depthwise_nhwc.cu) on fresh random geometries,
// bfloat16 and float16 in turn, in packs or single channels.
TEST_F(depthwise, ChannelsLastRandomGeometriesMatchTheFloat64Reference) {
    CONVKIT_SEEDED_RNG(rng);
    for (int i = 0; i < 24; ++i) {
        const ConvCase c = random_depthwise_case(rng, true);
        const DType dtype = i % 2 == 0 ? DType::BFloat16 : DType::Float16;
        SCOPED_TRACE(c.name() + " " + dtype_name(dtype));
        expect_every_pass_matches_the_reference(geometry_of(c), dtype, rng, MemoryFormat::ChannelsLast);
    }
}

// Every channels-last case of the shared depthwise sweep (tests/kernel_sweeps.h, which
// test_variant_sweep runs) is run, not refused, but the reflect-padded one: in every pass in 16
// bits, forward and backward-data in float32 and float64 (their weight and bias gradients are the
// contiguous kernels'). A refusal there would pass that sweep unnoticed.
TEST_F(depthwise, ChannelsLastSweepCasesAreRunNotRefused) {
    const detail::ConvVariant& variant = testing::conv_variant_named(kVariant);
    for (const ConvCase& c : testing::depthwise_conv_sweep()) {
        const detail::ConvGeometry g = geometry_of(c);
        for (DType dtype : {DType::BFloat16, DType::Float16, DType::Float32, DType::Float64}) {
            for (ConvPass pass : kConvPasses) {
                std::string why;
                const bool runs = variant.supports(problem_of(g, dtype, MemoryFormat::ChannelsLast), pass, &why);
                const bool sixteen_bit = dtype == DType::BFloat16 || dtype == DType::Float16;
                const bool parameter_gradient = pass == ConvPass::BackwardFilter || pass == ConvPass::BackwardBias;
                EXPECT_EQ(runs, (sixteen_bit || !parameter_gradient) && c.params.padding_mode == PaddingMode::Zeros)
                    << c.name() << " " << dtype_name(dtype) << " " << conv_pass_name(pass) << ": " << why;
            }
        }
    }
}

// A buffer off a 16-byte boundary (a view one element into a larger one) runs single channels
// where its channel count would allow packs: the same sums in the same order, so the same bits
// as the aligned run, in every pass (backward-filter's plan comes from the channel count alone).
TEST_F(depthwise, MisalignedChannelsLastBuffersGiveThePackedRunsBits) {
    CONVKIT_SEEDED_RNG(rng);
    const detail::ConvVariant& variant = testing::conv_variant_named(kVariant);
    const ConvCase c = conv(P(2).set_stride(2).set_padding(1).set_groups(32), Shape{2, 32, 17, 18}, Shape{32, 1, 3, 3});
    const detail::ConvGeometry g = geometry_of(c);
    for (DType dtype : {DType::BFloat16, DType::Float16}) {
        SCOPED_TRACE(dtype_name(dtype));
        const detail::ConvProblem problem = problem_of(g, dtype, MemoryFormat::ChannelsLast);
        const std::size_t element = dtype_size(dtype);
        // Each operand's values at the start of a buffer, and one element into a buffer of one more.
        struct Operand {
            Tensor aligned, shifted;
            void* at(bool shift, std::size_t element) const {
                return shift ? static_cast<char*>(shifted.raw_data()) + element : aligned.raw_data();
            }
        };
        const auto operand = [&](const Shape& shape) {
            const Tensor values = testing::random_exact_in(dtype, Shape{shape.numel() + 1}, rng).to(dtype);
            Tensor aligned = Tensor::empty(Shape{shape.numel()}, dtype, Device::host());
            std::memcpy(aligned.raw_data(), static_cast<const char*>(values.raw_data()) + element,
                        static_cast<std::size_t>(shape.numel()) * element);
            return Operand{aligned.to(Device::cuda()), values.to(Device::cuda())};
        };
        const Operand x = operand(g.input_shape()), w = operand(g.weight_shape()), dy = operand(g.output_shape());
        const auto run = [&](ConvPass pass, const Shape& out_shape, bool shifted) {
            const Operand out{testing::nan_tensor(out_shape, dtype, Device::cuda()),
                              testing::nan_tensor(Shape{out_shape.numel() + 1}, dtype, Device::cuda())};
            const std::size_t bytes = variant.workspace(problem, pass);
            Tensor scratch =
                Tensor::empty(Shape{static_cast<std::int64_t>((bytes + 7) / 8 + 1)}, DType::Int64, Device::cuda());
            detail::ConvOperands o{.w = w.at(shifted, element), .out = out.at(shifted, element)};
            if (pass != ConvPass::BackwardData) o.x = x.at(shifted, element);
            if (pass != ConvPass::Forward) o.dy = dy.at(shifted, element);
            variant.run(problem, pass, o, {scratch.raw_data(), bytes}, testing::stream_for(Device::cuda()));
            const Tensor host = (shifted ? out.shifted : out.aligned).to(Device::host());
            const auto* first = static_cast<const std::uint8_t*>(host.raw_data()) + (shifted ? element : 0);
            return std::vector<std::uint8_t>(first, first + out_shape.numel() * static_cast<std::int64_t>(element));
        };
        for (const auto& [pass, shape] :
             {std::pair{ConvPass::Forward, g.output_shape()}, std::pair{ConvPass::BackwardData, g.input_shape()},
              std::pair{ConvPass::BackwardFilter, g.weight_shape()}}) {
            EXPECT_EQ(run(pass, shape, true), run(pass, shape, false)) << conv_pass_name(pass);
        }
    }
}

// Float32 and float64 forward and backward-data on channels-last activations (the channels-last
// kernels) give the contiguous kernels' bits, element for element: the sweep's zeros-padded
// geometries (strides, dilation, padding past the input, 1-D to 3-D, a transposed layer, packs
// and single channels) and fresh random ones, with a bias; then again with the first tap of every
// channel's filter infinite, so that a padding tap's product is 0 x inf = NaN where it is added
// (random values alone cannot tell an added zero product from a skipped one). Compared byte for
// byte: a kernel summing in another order, or skipping a tap the other adds, differs there.
TEST_F(depthwise, FloatChannelsLastPassesGiveTheContiguousBits) {
    CONVKIT_SEEDED_RNG(rng);
    const detail::ConvVariant& variant = testing::conv_variant_named(kVariant);
    std::vector<ConvCase> cases;
    for (const ConvCase& c : testing::depthwise_conv_sweep()) {
        if (c.params.padding_mode == PaddingMode::Zeros) cases.push_back(c);
    }
    for (int i = 0; i < 12; ++i) cases.push_back(random_depthwise_case(rng, true));
    for (const ConvCase& c : cases) {
        const detail::ConvGeometry g = geometry_of(c);
        for (DType dtype : {DType::Float32, DType::Float64}) {
            SCOPED_TRACE(c.name() + " " + dtype_name(dtype));
            testing::ConvPassInputs in = testing::random_pass_inputs(g, dtype, rng);
            const auto same_bytes = [](const Tensor& a, const Tensor& b) {
                const auto bytes = static_cast<std::size_t>(a.numel()) * dtype_size(a.dtype());
                return a.defined() && a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), bytes) == 0;
            };
            const auto expect_same_bits = [&](const char* what) {
                // Channels-last runs the forward and backward-data only (the gradients' refusals left out).
                const testing::ConvPassResults last =
                    testing::run_conv_passes(variant, g, in, dtype, Device::cuda(), MemoryFormat::ChannelsLast, true);
                const testing::ConvPassResults contiguous =
                    testing::run_conv_passes(variant, g, in, dtype, Device::cuda(), MemoryFormat::Contiguous);
                EXPECT_TRUE(same_bytes(last.y, contiguous.y)) << "forward " << what;
                EXPECT_TRUE(same_bytes(last.dx, contiguous.dx)) << "backward-data " << what;
            };
            expect_same_bits("random filter");
            const std::int64_t taps = g.kernel_spatial();
            for (std::int64_t c = 0; c < g.out_channels; ++c) {
                static_cast<double*>(in.w.raw_data())[c * taps] = std::numeric_limits<double>::infinity();
            }
            expect_same_bits("first taps infinite");
        }
    }
}

// The partial sums of each split are added in a fixed order, so two runs agree bit for bit
// (float32, where a different order would show); many batch x tile steps and splits; the
// contiguous kernels and the channels-last ones (2 channels one at a time, 64 in packs of 4).
TEST_F(depthwise, BackwardFilterIsBitIdenticalRunToRun) {
    const detail::ConvVariant& variant = testing::conv_variant_named(kVariant);
    for (const ConvCase& c : {conv(P(2).set_padding(1).set_groups(3), Shape{4, 3, 33, 40}, Shape{6, 1, 3, 3}),
                              conv(P(1).set_padding(3).set_groups(2), Shape{3, 2, 2'100}, Shape{2, 1, 7}),
                              conv(P(2).set_padding(1).set_groups(64), Shape{2, 64, 40, 6}, Shape{64, 1, 3, 3})}) {
        for (MemoryFormat layout : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
            SCOPED_TRACE(c.name() + " " + memory_format_name(layout));
            const detail::ConvGeometry g = geometry_of(c);
            CONVKIT_SEEDED_RNG(rng);
            const Tensor x =
                testing::random_tensor(g.input_shape(), rng).to(DType::Float32).to(Device::cuda()).to(layout);
            const Tensor dy =
                testing::random_tensor(g.output_shape(), rng).to(DType::Float32).to(Device::cuda()).to(layout);
            detail::ConvProblem problem = problem_of(g, DType::Float32);
            problem.x_layout = problem.y_layout = layout;
            if (!variant.supports(problem, ConvPass::BackwardFilter))
                continue;  // a channel multiplier: contiguous only
            const std::size_t bytes = variant.workspace(problem, ConvPass::BackwardFilter);
            ASSERT_GT(bytes, 0u);
            const auto run = [&] {
                Tensor dw = testing::nan_tensor(g.weight_shape(), DType::Float32, Device::cuda());
                Tensor scratch =
                    Tensor::empty(Shape{static_cast<std::int64_t>((bytes + 7) / 8)}, DType::Int64, Device::cuda());
                variant.run(problem, ConvPass::BackwardFilter,
                            {.x = x.raw_physical_data(), .dy = dy.raw_physical_data(), .out = dw.raw_data()},
                            {scratch.raw_data(), bytes}, testing::stream_for(Device::cuda()));
                return dw.to(Device::host());
            };
            const Tensor first = run(), second = run();
            EXPECT_TRUE(testing::exactly_equal(first, second));
        }
    }
}

// Named through the public API, the variant runs every pass of the public ops, the op layer
// allocating its workspaces (reflect padding: backward data folds; backward filter splits).
TEST_F(depthwise, RunsThePublicOpsWhenNamed) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = P(2).set_stride(2).set_padding(2).set_padding_mode(PaddingMode::Reflect).set_groups(3);
    const Tensor x = testing::random_tensor(Shape{2, 3, 11, 12}, rng);
    const Tensor w = testing::random_tensor(Shape{6, 1, 5, 5}, rng);
    const Tensor b = testing::random_tensor(Shape{6}, rng);
    const Tensor y = conv_forward(x, w, b, params);
    const Tensor dy = testing::random_tensor(y.shape(), rng);
    const Tensor dx = conv_backward_data(dy, w, x.shape(), params);
    const Tensor dw = conv_backward_filter(dy, x, w.shape(), params);
    const Tensor db = conv_backward_bias(dy);
    const auto cuda = [](const Tensor& t) { return t.to(Device::cuda()); };
    VariantGuard guard(kVariant);
    EXPECT_LT(testing::relative_error(conv_forward(cuda(x), cuda(w), cuda(b), params), y), testing::kFloat64Tolerance);
    EXPECT_LT(testing::relative_error(conv_backward_data(cuda(dy), cuda(w), x.shape(), params), dx),
              testing::kFloat64Tolerance);
    EXPECT_LT(testing::relative_error(conv_backward_filter(cuda(dy), cuda(x), w.shape(), params), dw),
              testing::kFloat64Tolerance);
    EXPECT_LT(testing::relative_error(conv_backward_bias(cuda(dy)), db), testing::kFloat64Tolerance);
    // A convolution that is not depthwise is refused with the variant's reason, not run by another.
    try {
        conv_forward(cuda(x), cuda(testing::random_tensor(Shape{4, 3, 3, 3}, rng)), P(2));
        ADD_FAILURE() << "a dense convolution ran on " << kVariant;
    } catch (const NotSupported& e) {
        EXPECT_NE(std::string(e.what()).find("cuda.depthwise named for the forward pass runs depthwise convolutions "
                                             "only (groups == input channels), not 1 group of 3 input channels"),
                  std::string::npos)
            << e.what();
    }
}

// On channels-last activations the CUDA default runs a 16-bit depthwise layer on the channels-last
// kernels, converting no layout (bfloat16 had gone to
// cuda.im2col: a column matrix of 9 times the input and one cuBLAS GEMM of one column per
// channel). The forward and every gradient through autograd, against float64 on the host, from
// inputs exact in bfloat16; the forward, backward-data and backward-filter passes' variants.
TEST_F(depthwise, ChannelsLastSixteenBitLayersRunNativelyByDefault) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = P(2).set_stride(2).set_padding(1).set_groups(16);
    const Tensor x = testing::random_exact_in(DType::BFloat16, Shape{2, 16, 9, 10}, rng);
    const Tensor w = testing::random_exact_in(DType::BFloat16, Shape{16, 1, 3, 3}, rng);
    const Tensor b = testing::random_exact_in(DType::BFloat16, Shape{16}, rng);
    const auto leaf = [](const Tensor& t, DType dtype, Device device, MemoryFormat format) {
        Tensor on = t.to(dtype).to(device).to(format).detach();
        on.set_requires_grad();
        return on;
    };
    const auto run = [&](DType dtype, Device device, MemoryFormat format) {
        const Tensor xl = leaf(x, dtype, device, format), wl = leaf(w, dtype, device, MemoryFormat::Contiguous),
                     bl = leaf(b, dtype, device, MemoryFormat::Contiguous);
        const Tensor y = conv_forward(xl, wl, bl, params);
        std::string variants = last_conv_variant();
        const Tensor dy = testing::random_exact_in(DType::BFloat16, y.shape(), rng).to(dtype).to(device).to(format);
        y.backward(dy);
        // The gradients' passes through their own entry points, to name the variant of each (the
        // bias gradient, the same channel sums wherever it runs, may go to cuda.igemm's list entry).
        (void)conv_backward_data(dy, wl.detach(), xl.shape(), params);
        variants += " / " + last_conv_variant();
        (void)conv_backward_filter(dy, xl.detach(), wl.shape(), params);
        variants += " / " + last_conv_variant();
        const auto host = [](const Tensor& t) { return t.to(Device::host()).contiguous().to(DType::Float64); };
        return std::tuple{variants, host(y), host(xl.grad()), host(wl.grad()), host(bl.grad())};
    };
    const std::uint64_t seed = rng();
    rng.seed(seed);
    const auto [reference_variant, y, dx, dw, db] = run(DType::Float64, Device::host(), MemoryFormat::Contiguous);
    for (DType dtype : {DType::BFloat16, DType::Float16}) {
        SCOPED_TRACE(dtype_name(dtype));
        rng.seed(seed);  // the same dy
        reset_layout_conversions();
        const auto [variant, y_got, dx_got, dw_got, db_got] = run(dtype, Device::cuda(), MemoryFormat::ChannelsLast);
        EXPECT_EQ(variant, "cuda.depthwise / cuda.depthwise / cuda.depthwise");
        EXPECT_EQ(layout_conversions(), 0u) << "channels-last in, channels-last kernels";
        const double tolerance = testing::sixteen_bit_tolerance(dtype);
        EXPECT_LT(testing::relative_error(y_got, y), tolerance);
        EXPECT_LT(testing::relative_error(dx_got, dx), tolerance);
        EXPECT_LT(testing::relative_error(dw_got, dw), tolerance);
        EXPECT_LT(testing::relative_error(db_got, db), tolerance);
    }
}

// Float32 on channels-last activations: the default runs the forward and backward-data on the
// channels-last kernels with no layout converted (they had converted x and y both ways, two more
// passes over each), and the weight gradient converts (the contiguous kernel's order of sums);
// every result is the contiguous run's, bit for bit.
TEST_F(depthwise, FloatChannelsLastForwardAndBackwardDataRunNativelyByDefault) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = P(2).set_padding(3).set_groups(16);
    const Tensor x = testing::random_tensor(Shape{2, 16, 9, 10}, rng).to(Device::cuda());
    const Tensor w = testing::random_tensor(Shape{16, 1, 7, 7}, rng).to(Device::cuda());
    const Tensor b = testing::random_tensor(Shape{16}, rng).to(Device::cuda());
    const Tensor dy = testing::random_tensor(Shape{2, 16, 9, 10}, rng).to(Device::cuda());
    const Tensor x_last = x.to(MemoryFormat::ChannelsLast), dy_last = dy.to(MemoryFormat::ChannelsLast);
    const auto same = [](const Tensor& a, const Tensor& b) {
        return testing::exactly_equal(a.contiguous().to(Device::host()), b.contiguous().to(Device::host()));
    };
    reset_layout_conversions();
    const Tensor y = conv_forward(x_last, w, b, params);
    EXPECT_EQ(last_conv_variant(), "cuda.depthwise");
    const Tensor dx = conv_backward_data(dy_last, w, x.shape(), params);
    EXPECT_EQ(last_conv_variant(), "cuda.depthwise");
    EXPECT_EQ(layout_conversions(), 0u) << "forward and backward-data on channels-last activations";
    EXPECT_EQ(y.memory_format(), MemoryFormat::ChannelsLast);
    EXPECT_EQ(dx.memory_format(), MemoryFormat::ChannelsLast);
    const Tensor dw = conv_backward_filter(dy_last, x_last, w.shape(), params);
    EXPECT_GT(layout_conversions(), 0u) << "the weight gradient runs contiguous";
    EXPECT_TRUE(same(y, conv_forward(x, w, b, params)));
    EXPECT_TRUE(same(dx, conv_backward_data(dy, w, x.shape(), params)));
    EXPECT_TRUE(same(dw, conv_backward_filter(dy, x, w.shape(), params)));
}

// A float32 channels-last depthwise layer trained through autograd: the forward and the input
// gradient run on the channels-last kernels, and only the weight and bias gradients (the
// contiguous kernels' orders of sums) convert their operands, x and dy once each: 2 conversions a
// step where the whole layer had run contiguous (x, y, dy and dx converted: 4). Every result and
// gradient is the contiguous step's, bit for bit.
TEST_F(depthwise, FloatChannelsLastTrainingConvertsOnlyForTheWeightGradient) {
    CONVKIT_SEEDED_RNG(rng);
    const ConvParams params = P(2).set_stride(2).set_padding(1).set_groups(16);
    const Tensor x0 = testing::random_tensor(Shape{2, 16, 9, 10}, rng).to(Device::cuda());
    const Tensor w0 = testing::random_tensor(Shape{16, 1, 3, 3}, rng).to(Device::cuda());
    const Tensor b0 = testing::random_tensor(Shape{16}, rng).to(Device::cuda());
    const Tensor dy0 = testing::random_tensor(Shape{2, 16, 5, 5}, rng).to(Device::cuda());
    const auto step = [&](MemoryFormat format) {
        const auto leaf = [](const Tensor& t, MemoryFormat f) {
            Tensor l = t.to(f).detach();
            l.set_requires_grad();
            return l;
        };
        const Tensor x = leaf(x0, format), w = leaf(w0, MemoryFormat::Contiguous),
                     b = leaf(b0, MemoryFormat::Contiguous);
        reset_layout_conversions();
        const Tensor y = conv_forward(x, w, b, params);
        EXPECT_EQ(last_conv_variant(), "cuda.depthwise");
        y.backward(dy0.to(format));
        EXPECT_EQ(y.memory_format(), format);
        EXPECT_EQ(x.grad().memory_format(), format);
        const auto host = [](const Tensor& t) { return t.contiguous().to(Device::host()); };
        return std::tuple{layout_conversions(), host(y), host(x.grad()), host(w.grad()), host(b.grad())};
    };
    const auto [contiguous_conversions, y, dx, dw, db] = step(MemoryFormat::Contiguous);
    const auto [conversions, y_last, dx_last, dw_last, db_last] = step(MemoryFormat::ChannelsLast);
    EXPECT_EQ(contiguous_conversions, 0u);
    EXPECT_EQ(conversions, 2u) << "x and dy to contiguous for the weight and bias gradients, once each";
    EXPECT_TRUE(testing::exactly_equal(y_last, y));
    EXPECT_TRUE(testing::exactly_equal(dx_last, dx));
    EXPECT_TRUE(testing::exactly_equal(dw_last, dw));
    EXPECT_TRUE(testing::exactly_equal(db_last, db));
}

std::string refusal(const detail::ConvProblem& problem, ConvPass pass = ConvPass::Forward) {
    std::string reason;
    EXPECT_FALSE(testing::conv_variant_named(kVariant).supports(problem, pass, &reason));
    return reason;
}

TEST_F(depthwise, RefusesWhatIsNotDepthwiseWithItsReason) {
    const auto problem = [](const ConvCase& c, DType dtype = DType::Float32) {
        return problem_of(geometry_of(c), dtype);
    };
    const ConvCase dense = conv(P(2).set_padding(1), Shape{1, 3, 8, 8}, Shape{4, 3, 3, 3});
    const ConvCase grouped = conv(P(2).set_groups(2), Shape{1, 6, 8, 8}, Shape{4, 3, 3, 3});
    const ConvCase depthwise = conv(P(2).set_padding(1).set_groups(3), Shape{1, 3, 8, 8}, Shape{3, 1, 3, 3});
    for (ConvPass pass : kConvPasses) {
        EXPECT_EQ(refusal(problem(dense), pass),
                  "runs depthwise convolutions only (groups == input channels), not 1 group of 3 input channels");
        EXPECT_EQ(refusal(problem(grouped), pass),
                  "runs depthwise convolutions only (groups == input channels), not 2 groups of 6 input channels");
    }
    // Channels-last activations (kernels/conv_depthwise_nhwc.cu): one output channel per input
    // channel and zeros padding, every floating dtype; 16-bit contiguous ones are refused.
    const auto channels_last = [&](const ConvCase& c, DType dtype = DType::BFloat16) {
        detail::ConvProblem p = problem(c, dtype);
        p.x_layout = p.y_layout = detail::Layout::ChannelsLast;
        return p;
    };
    const ConvCase multiplier = conv(P(2).set_padding(1).set_groups(3), Shape{1, 3, 8, 8}, Shape{6, 1, 3, 3});
    const ConvCase reflect = conv(P(2).set_padding(1).set_padding_mode(PaddingMode::Reflect).set_groups(3),
                                  Shape{1, 3, 8, 8}, Shape{3, 1, 3, 3});
    EXPECT_EQ(refusal(channels_last(multiplier)),
              "runs one output channel per input channel on channels-last activations, not a channel multiplier of 2");
    EXPECT_EQ(refusal(channels_last(reflect)), "runs zeros padding only on channels-last activations");
    EXPECT_EQ(refusal(channels_last(dense)),
              "runs depthwise convolutions only (groups == input channels), not 1 group of 3 input channels");
    EXPECT_EQ(refusal(problem(depthwise, DType::BFloat16)), "runs float32 and float64 only, not bfloat16");
    detail::ConvProblem mixed = problem(depthwise);
    mixed.x_layout = detail::Layout::ChannelsLast;
    EXPECT_EQ(refusal(mixed), "runs activations and weight contiguous, or the activations channels-last");
    for (DType dtype : {DType::BFloat16, DType::Float16}) {
        std::string why;
        EXPECT_TRUE(
            testing::conv_variant_named(kVariant).supports(channels_last(depthwise, dtype), ConvPass::Forward, &why))
            << dtype_name(dtype) << ": " << why;
    }
    // Float32 and float64 channels-last: forward and backward-data, the gradients of the weight
    // and bias refused (the contiguous kernels' order of sums), and nothing the contiguous kernels
    // refuse (the same bits in both layouts needs both kernels).
    for (DType dtype : {DType::Float32, DType::Float64}) {
        SCOPED_TRACE(dtype_name(dtype));
        for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData}) {
            std::string why;
            EXPECT_TRUE(testing::conv_variant_named(kVariant).supports(channels_last(depthwise, dtype), pass, &why))
                << conv_pass_name(pass) << ": " << why;
        }
        for (ConvPass pass : {ConvPass::BackwardFilter, ConvPass::BackwardBias}) {
            EXPECT_EQ(refusal(channels_last(depthwise, dtype), pass),
                      std::string("computes ") + dtype_name(dtype) +
                          " weight and bias gradients on contiguous activations only (the contiguous kernels' order "
                          "of sums, so that both layouts give the same bits)");
        }
    }
    // 31x31x31 taps of float64 are 238 KiB on their own: no tile fits 48 KiB, in either layout.
    const ConvCase huge = conv(P(3).set_groups(1), Shape{1, 1, 31, 31, 31}, Shape{1, 1, 31, 31, 31});
    for (const detail::ConvProblem& huge_problem :
         {problem(huge, DType::Float64), channels_last(huge, DType::Float64)}) {
        const std::string too_large = refusal(huge_problem);
        EXPECT_NE(too_large.find("has no tile of a 31x31x31 kernel in float64 within the 48 KiB"), std::string::npos)
            << too_large;
    }
    // Supported: the reason is empty and the checks above are not vacuous.
    std::string reason;
    EXPECT_TRUE(testing::conv_variant_named(kVariant).supports(problem(depthwise), ConvPass::Forward, &reason))
        << reason;
}

}  // namespace
}  // namespace convkit
