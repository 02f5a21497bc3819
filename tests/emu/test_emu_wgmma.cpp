// The warpgroup-MMA implicit-GEMM convolution (kernels/conv_wgmma.cu and conv_wgmma_filter.cu,
// sm_90a) executed on the CPU by the emulator (its wgmma: src/emu/warpgroup_mma.cpp), against the
// float64 definition of tests/emu/igemm_problem.h. Forward: a sweep over rank 1-3, M and N at and past the 128 x
// 128 block tile's edges (and the 128 x 64 one's up to 64 channels a group), K from under one k tile (64 16-bit values
// or 32 tf32) to many (through the 4-stage ring, with a partial last tile), strides, dilations, padding, groups, batch
// 1, every epilogue option, bf16, f16 and tf32 operands and every output type, outputs NaN-poisoned; small integers bit
// for bit; tf32 rounding to nearest; refusals with their reasons. Backward-data per phase of the
// stride: a sweep of its own below; split-K; the plans. Backward-filter: test_emu_wgmma_filter.cpp
// (what both share: wgmma_sweeps.h).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "convkit/error.h"
#include "emu/emulator.h"
#include "igemm_problem.h"
#include "kernels/conv_wgmma.h"
#include "wgmma_sweeps.h"

namespace convkit::wgmma_test {

// Forward and backward-data cases with named splits, defined below.
const std::vector<Case>& split_sweep();

void expect_matches_the_definition(const Case& cs) {
    CONVKIT_SEEDED_RNG(rng);
    const Problem p = make_problem(cs, rng, false);
    EXPECT_LT(relative_error(run_pass(cs, p), p.expected), tolerance(cs)) << name_of(cs);
}

void expect_small_integers_bit_for_bit(const std::vector<Case>& cases) {
    CONVKIT_SEEDED_RNG(rng);
    for (Case cs : cases) {
        cs.output = kToF32;
        const Problem p = make_problem(cs, rng, true);
        EXPECT_EQ(differing(run_pass(cs, p), p.expected), 0u) << name_of(cs);
    }
}

// How a forward or backward-data case runs: its own split (1, the sweeps': none, so their long-K
// cases go through the ring unsplit), or with splits 0 the kernels' default plan; and its ring.
constexpr int kDefaultPlan = 0;
kernels::WgmmaSchedule schedule_of(const Case& cs) {
    return {cs.splits == kDefaultPlan ? std::nullopt : std::optional<int>(cs.splits), cs.producer_warpgroup};
}

std::vector<Case> on_the_producer_ring(std::vector<Case> cases) {
    for (Case& c : cases) c.producer_warpgroup = true;
    return cases;
}

// A NaN-filled workspace of `bytes` (null for none): a slice element left unwritten would poison
// the sum.
std::vector<float> poisoned_workspace(std::size_t bytes) {
    return std::vector<float>(bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
}

// y and the residual `misalign` elements into their buffers (run_with).
std::vector<double> run(const Case& cs, const Problem& p, std::size_t misalign = 0) {
    std::vector<float> slices =
        poisoned_workspace(kernels::conv_wgmma_forward_plan(cs.shape, cs.operand, schedule_of(cs)).workspace_bytes());
    return run_with(
        cs, p,
        [&](const IgemmEpilogue& epilogue, void* y) {
            kernels::conv_wgmma_forward(cs.shape, cs.operand, cs.output, schedule_of(cs), p.first.data(),
                                        p.second.data(), epilogue, y, slices.empty() ? nullptr : slices.data(),
                                        Stream{});
        },
        misalign);
}

// The tile is 128 (M = N * output positions) x 128 (output channels per group), or x 64 up to 64
// channels a group, k 64 deep a stage; `tile` is unused (kLarge for the names).
const std::vector<Case>& sweep() {
    static const std::vector<Case> cases = {
        // M = 128 and N = 128 exactly one tile; M = 129 just past it with K = 24 under one k tile.
        {shape(2, 2, 16, 128, 1, {8, 8}, {3, 3}, {1, 1}, {1, 1}), kLarge, kBF, kToF32, false, false, false},
        {shape(1, 1, 8, 8, 1, {129}, {3}, {1}, {1}), kLarge, kF16, kToF16, true, false, false},
        // N = 136, 8 past the tile's columns; N = 256 two tiles, M = 162 past one tile.
        {shape(2, 2, 32, 136, 1, {8, 8}, {3, 3}, {1, 1}, {1, 1}), kLarge, kBF, kToBF, true, true, true},
        {shape(2, 2, 16, 256, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1}), kLarge, kF16, kToF32, false, true, false},
        // K = 64 exactly one k tile (1x1), 128 two, 576 = 9 (3x3 x 64) with M = 2 x 14 x 14 = 392.
        {shape(2, 2, 64, 72, 1, {7, 7}, {1, 1}), kLarge, kBF, kToBF, true, true, true},
        {shape(2, 1, 128, 24, 1, {6, 6}, {1, 1}), kLarge, kF16, kToF16, false, false, true},
        {shape(2, 2, 64, 64, 1, {14, 14}, {3, 3}, {1, 1}, {1, 1}), kLarge, kBF, kToF32, true, false, false},
        // Long K through the ring: 1152 = 18 k tiles; 864 = 13.5 (a partial last tile); 2304 = 36.
        {shape(2, 1, 128, 16, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}), kLarge, kBF, kToF32, false, false, false},
        {shape(2, 1, 96, 24, 1, {3, 3}, {3, 3}, {1, 1}, {1, 1}), kLarge, kF16, kToF32, true, false, false},
        {shape(2, 2, 256, 136, 1, {5, 5}, {3, 3}, {2, 2}, {1, 1}), kLarge, kBF, kToBF, true, true, false},
        // Strides, dilations, both, with an odd-shaped kernel.
        {shape(2, 2, 24, 16, 1, {9, 9}, {3, 3}, {2, 2}, {1, 1}), kLarge, kBF, kToBF, true, true, false},
        {shape(2, 1, 16, 16, 1, {10, 10}, {3, 3}, {1, 1}, {2, 2}, {2, 2}), kLarge, kF16, kToBF, false, false, true},
        {shape(2, 1, 8, 8, 1, {11, 12}, {3, 2}, {2, 3}, {2, 1}, {2, 3}), kLarge, kBF, kToF16, true, false, true},
        // Groups: 2 of 16 -> 24, 4 of 8 -> 8 (a chunk exactly one group wide), 3 of 8 -> 72, 2 of
        // 64 -> 136 (each group's N past the tile).
        {shape(2, 2, 32, 48, 2, {6, 6}, {3, 3}, {1, 1}, {1, 1}), kLarge, kBF, kToF32, true, false, false},
        {shape(2, 1, 32, 32, 4, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kLarge, kF16, kToF16, false, true, false},
        {shape(2, 2, 24, 216, 3, {5, 5}, {3, 3}, {2, 2}, {1, 1}), kLarge, kF16, kToF32, true, false, true},
        {shape(2, 1, 128, 272, 2, {6, 6}, {3, 3}, {1, 1}, {1, 1}), kLarge, kBF, kToBF, true, true, true},
        // 3-D: K = 27 taps x 8 channels; strided and dilated with an odd-shaped kernel; grouped.
        {shape(3, 1, 8, 16, 1, {4, 5, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}), kLarge, kBF, kToBF, true, false, true},
        {shape(3, 2, 16, 8, 1, {5, 6, 7}, {2, 3, 1}, {2, 1, 2}, {1, 0, 0}, {1, 2, 1}), kLarge, kF16, kToF32, false,
         true, false},
        {shape(3, 1, 16, 32, 2, {3, 4, 4}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}), kLarge, kBF, kToF16, false, false, false},
        // Batch 1, 1-D strided and dilated, every epilogue option at once.
        {shape(1, 1, 40, 56, 1, {150}, {5}, {3}, {4}, {2}), kLarge, kBF, kToF16, true, true, true},
        // Padding wider than the kernel's reach in places; a kernel as large as the input.
        {shape(2, 1, 16, 16, 1, {3, 3}, {3, 3}, {1, 1}, {2, 2}), kLarge, kBF, kToBF, false, true, false},
        {shape(2, 4, 24, 16, 1, {5, 5}, {5, 5}), kLarge, kF16, kToF16, true, true, true},
        // tf32 (float32 tensors; a k tile is 32 deep, a chunk 4 channels): M = 129 one past the
        // wide tile and N = 132 4 past it, with K = 36 (one full k tile and 4 of the next); K = 32 exactly one (1x1);
        // 1152 = 36 k tiles through the ring, 108 = 3.4 (partial last); the narrow tile.
        {shape(1, 1, 4, 132, 1, {129}, {9}, {1}, {4}), kLarge, kTF32, kToF32, true, false, false},
        {shape(2, 2, 32, 136, 1, {9, 8}, {1, 1}), kLarge, kTF32, kToF32, false, true, true},
        {shape(2, 1, 128, 24, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}), kLarge, kTF32, kToF32, true, true, false},
        {shape(2, 2, 12, 64, 1, {6, 7}, {3, 3}, {2, 1}, {1, 1}), kLarge, kTF32, kToF32, false, false, true},
        // Groups of 4 channels (a chunk exactly one group wide) and of 12 -> 72; 3-D strided and
        // dilated; batch 1 1-D with every epilogue option.
        {shape(2, 1, 16, 16, 4, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kLarge, kTF32, kToF32, true, false, true},
        {shape(2, 2, 24, 144, 2, {5, 5}, {3, 3}, {2, 2}, {1, 1}), kLarge, kTF32, kToF32, false, true, false},
        {shape(3, 2, 8, 8, 1, {5, 6, 7}, {2, 3, 1}, {2, 1, 2}, {1, 0, 0}, {1, 2, 1}), kLarge, kTF32, kToF32, true,
         false, false},
        {shape(1, 1, 20, 40, 1, {150}, {5}, {3}, {4}, {2}), kLarge, kTF32, kToF32, true, true, true},
        // 64 channels a group, where the producer's A is one im2col copy a tile: 1-D dilated with
        // 2 groups and M past two tiles (2 x 141), 3-D strided (a rank-5 walk through D), 2-D
        // 3x3/2 dilated and padded 2 with groups.
        {shape(1, 2, 128, 48, 2, {145}, {5}, {1}, {2}, {2}), kLarge, kBF, kToF32, true, false, true},
        {shape(3, 2, 64, 40, 1, {5, 6, 7}, {3, 3, 3}, {2, 1, 2}, {1, 1, 1}), kLarge, kF16, kToF16, false, true, false},
        {shape(2, 2, 128, 80, 2, {9, 9}, {3, 3}, {2, 2}, {2, 2}, {2, 2}), kLarge, kBF, kToBF, true, true, true},
    };
    return cases;
}

class WgmmaSweep : public ::testing::TestWithParam<Case> {};

TEST_P(WgmmaSweep, MatchesTheDefinition) {
    expect_matches_the_definition(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Emu, WgmmaSweep, ::testing::ValuesIn(sweep()), case_test_name);
INSTANTIATE_TEST_SUITE_P(EmuProducer, WgmmaSweep, ::testing::ValuesIn(on_the_producer_ring(sweep())), case_test_name);

// ---- backward-data ------------------------------------------------------------------------

// The weight conv_wgmma_backward_data reads, from the problem's KRSC one (w[k, tap, c], k and c
// over all groups): per group [c, taps reversed, k] (what kernels::backward_data_conv_weight
// writes from convkit's [K, C/g, taps]; written here from the definition, independently).
OperandData backward_data_weight(const Case& cs, const OperandData& krsc) {
    const IgemmConvShape& s = cs.shape;
    std::int64_t taps = 1;
    for (int i = 0; i < s.rank; ++i) taps *= s.kernel[static_cast<std::size_t>(i)];
    const std::int64_t cg = s.in_channels / s.groups, kg = s.out_channels / s.groups;
    OperandData out;
    out.bits16.resize(krsc.bits16.size());
    out.values32.resize(krsc.values32.size());
    for (std::int64_t k = 0; k < s.out_channels; ++k) {
        const std::int64_t g = k / kg, kk = k % kg;
        for (std::int64_t tap = 0; tap < taps; ++tap) {
            for (std::int64_t c = 0; c < cg; ++c) {
                const auto from = static_cast<std::size_t>((k * taps + tap) * cg + c);
                const auto to = static_cast<std::size_t>(((g * cg + c) * taps + taps - 1 - tap) * kg + kk);
                if (krsc.values32.empty()) {
                    out.bits16[to] = krsc.bits16[from];
                } else {
                    out.values32[to] = krsc.values32[from];
                }
            }
        }
    }
    return out;
}

std::vector<double> run_backward_data(const Case& cs, const Problem& p, std::size_t misalign = 0) {
    const OperandData w = backward_data_weight(cs, p.second);
    std::vector<float> slices = poisoned_workspace(
        kernels::conv_wgmma_backward_data_plan(cs.shape, cs.operand, schedule_of(cs)).workspace_bytes());
    return run_with(
        cs, p,
        [&](const IgemmEpilogue& epilogue, void* dx) {
            kernels::conv_wgmma_backward_data(cs.shape, cs.operand, cs.output, schedule_of(cs), p.first.data(),
                                              w.data(), epilogue, dx, slices.empty() ? nullptr : slices.data(),
                                              Stream{});
        },
        misalign);
}

Case backward_data(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, bool bias, bool residual,
                   bool relu, int splits = 1) {
    return {s, kLarge, operand, output, bias, residual, relu, Direction::BackwardData, splits};
}

// The GEMM of a phase: M = N x the phase's dx positions, N = C/g (the tile: 128 columns past 64,
// else 64), K = the phase's taps x K/g. Stride 1 (one phase, every tap), uniform phases (one
// launch: 2x2/2, 4x4/2, 2x2x2/2 on inputs a multiple of the stride), phases of unequal taps
// (3x3/2), phases no tap reaches (1x1/2, 1-D k3/4), dilation with the stride (gcd 2), padding
// past the kernel's reach; M, N and K at and past the tiles' edges; groups; every operand.
const std::vector<Case>& backward_data_sweep() {
    static const std::vector<Case> cases = {
        // Stride 1: 3x3 'same' with groups; dilated unpadded; padding 3 past the 3x3's reach 2.
        backward_data(shape(2, 2, 32, 48, 2, {9, 8}, {3, 3}, {1, 1}, {1, 1}), kBF, kToF32, true, false, false),
        backward_data(shape(1, 2, 24, 16, 1, {20}, {5}, {1}, {0}, {2}), kF16, kToF16, false, true, true),
        backward_data(shape(2, 1, 16, 16, 1, {5, 5}, {3, 3}, {1, 1}, {3, 3}), kBF, kToBF, true, true, false),
        // Uniform phases, one launch: 2x2/2 (1 tap a phase), 4x4/2 pad 1 (DCGAN: 4 taps a phase,
        // M = 2 x 16 x 16 / 4 = 128 a phase exactly), 3-D 2x2x2/2 (8 phases), C/g = 136 past the wide tile.
        backward_data(shape(2, 2, 136, 16, 1, {10, 12}, {2, 2}, {2, 2}), kBF, kToBF, true, true, true),
        backward_data(shape(2, 2, 64, 32, 1, {16, 16}, {4, 4}, {2, 2}, {1, 1}), kF16, kToF32, false, false, true),
        backward_data(shape(3, 1, 16, 32, 1, {4, 6, 8}, {2, 2, 2}, {2, 2, 2}), kBF, kToF32, true, false, false),
        // 3x3/2 pad 1 (phases of 1, 2, 2 and 4 taps: a launch each), odd input, M past 128 a
        // phase (2 x 17 x 17: 162 rows in the largest), K/g = 72 (phase K up to 288).
        backward_data(shape(2, 2, 24, 72, 1, {17, 17}, {3, 3}, {2, 2}, {1, 1}), kBF, kToF16, true, false, true),
        // 1x1/2 (the downsample: 3 of 4 phases have no tap, their dx the epilogue of 0).
        backward_data(shape(2, 2, 64, 128, 1, {7, 8}, {1, 1}, {2, 2}), kF16, kToF16, true, true, false),
        // 1-D k3 stride 4 (a phase of no tap), dilation 2 with stride 2 (gcd 2: taps a step of 1).
        backward_data(shape(1, 2, 8, 16, 1, {23}, {3}, {4}, {1}), kBF, kToF32, false, true, false),
        backward_data(shape(2, 1, 16, 8, 1, {13, 12}, {3, 3}, {2, 2}, {2, 1}, {2, 2}), kF16, kToBF, true, false, true),
        // Long K through the ring (256 x 9 / 64 = 36 k tiles), groups of 8 channels.
        backward_data(shape(2, 1, 16, 256, 1, {6, 6}, {3, 3}, {1, 1}, {1, 1}), kBF, kToF32, false, false, false),
        backward_data(shape(2, 1, 32, 64, 4, {7, 7}, {3, 3}, {2, 2}, {1, 1}), kF16, kToF32, true, true, true),
        // tf32: stride 1, uniform 4x4/2, 3x3/2 with 2 groups (24 dx channels, 12 dy channels each).
        backward_data(shape(2, 2, 12, 20, 1, {9, 8}, {3, 3}, {1, 1}, {1, 1}), kTF32, kToF32, true, true, false),
        backward_data(shape(2, 1, 40, 36, 1, {12, 12}, {4, 4}, {2, 2}, {1, 1}), kTF32, kToF32, false, false, true),
        backward_data(shape(2, 2, 48, 24, 2, {9, 9}, {3, 3}, {2, 2}, {1, 1}), kTF32, kToF32, true, false, false),
        // 64 dy channels a group: whole k tiles a tap, so the producer copies the weight's tiles
        // with the bulk copy (at the phase's reversed taps): 3x3/2 phases of unequal taps with 2
        // groups, and uniform 4x4/2 phases.
        backward_data(shape(2, 2, 16, 128, 2, {9, 9}, {3, 3}, {2, 2}, {1, 1}), kBF, kToF32, true, false, true),
        backward_data(shape(2, 2, 24, 64, 1, {8, 8}, {4, 4}, {2, 2}, {1, 1}), kF16, kToBF, false, true, false),
        // 1x1 stride 1 with 2 groups of 32 dy channels: the producer copies A (dy's rows, 2 x 9 x 15
        // = 270: a partial third tile) with the bulk copy, B with cp.async (32 channels a tap).
        backward_data(shape(2, 2, 48, 64, 2, {9, 15}, {1, 1}, {1, 1}), kBF, kToBF, true, true, true),
    };
    return cases;
}

class WgmmaBackwardDataSweep : public ::testing::TestWithParam<Case> {};

TEST_P(WgmmaBackwardDataSweep, MatchesTheDefinition) {
    expect_matches_the_definition(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Emu, WgmmaBackwardDataSweep, ::testing::ValuesIn(backward_data_sweep()), case_test_name);
INSTANTIATE_TEST_SUITE_P(EmuProducer, WgmmaBackwardDataSweep,
                         ::testing::ValuesIn(on_the_producer_ring(backward_data_sweep())), case_test_name);

TEST(EmuWgmmaConv, BackwardDataSmallIntegersBitForBit) {
    expect_small_integers_bit_for_bit(backward_data_sweep());
}

// The launches: stride 1 one; uniform phases one of all of them (each block its phase); unequal
// phases one each, phases without positions left out; blocks as the tiles divide each GEMM.
TEST(EmuWgmmaConv, BackwardDataLaunchesPerPhase) {
    using Blocks = std::vector<std::int64_t>;
    auto blocks_of_launches = [](const IgemmConvShape& s) {
        Blocks blocks;
        for (const kernels::WgmmaLaunchPlan& l : kernels::conv_wgmma_backward_data_plan(s, kBF).launches)
            blocks.push_back(l.blocks);
        return blocks;
    };
    // 3x3 'same', 2 x 9 x 8 = 144 rows: 2 M tiles of 128; 48 columns: one of the narrow tile's.
    EXPECT_EQ(blocks_of_launches(backward_data_sweep()[0].shape), (Blocks{2 * 1 * 2}));
    // 4x4/2 on 16 x 16: 4 phases of 2 x 8 x 8 = 128 rows, one launch.
    EXPECT_EQ(blocks_of_launches(backward_data_sweep()[4].shape), (Blocks{4}));
    // 2x2x2/2: 8 phases of 2 x 3 x 4 = 24 rows, one launch; C = 16 one narrow column tile.
    EXPECT_EQ(blocks_of_launches(backward_data_sweep()[5].shape), (Blocks{8}));
    // 2x2/2 with C = 136: 4 phases of 2 x 5 x 6 rows, 2 column tiles of 128.
    EXPECT_EQ(blocks_of_launches(backward_data_sweep()[3].shape), (Blocks{8}));
    // 3x3/2 on 17 x 17: phases of 9 x 9, 9 x 8, 8 x 9, 8 x 8 positions (x 2 images): 162, 144, 144
    // and 128 rows, a launch each; 72 columns, one wide tile.
    EXPECT_EQ(blocks_of_launches(backward_data_sweep()[6].shape), (Blocks{2, 2, 2, 1}));
    // 1-D k3 stride 4 on 23: phases 0-3 of 6, 6, 6, 5 positions, each its own launch.
    EXPECT_EQ(blocks_of_launches(backward_data_sweep()[8].shape), (Blocks{1, 1, 1, 1}));
    // Refused shapes have no launches.
    EXPECT_TRUE(blocks_of_launches(shape(2, 1, 12, 16, 1, {8, 8}, {3, 3})).empty());
}

// Small integers bit for bit on every case of the sweep (each with its own operand: the sweep
// alternates bf16 and f16, and ends with tf32).
TEST(EmuWgmmaConv, SmallIntegersBitForBitOnTheSweep) {
    expect_small_integers_bit_for_bit(sweep());
}

// The default plan splits the sweeps' long-K cases on their few blocks (18 k tiles 2 ways, 36 4
// ways): those cases under it, on both rings, against the definition.
TEST(EmuWgmmaConv, TheDefaultPlanSplitsLongKOnFewBlocks) {
    CONVKIT_SEEDED_RNG(rng);
    for (const bool producer : {false, true}) {
        for (Case cs : {sweep()[7], sweep()[9], sweep()[25], backward_data_sweep()[10]}) {
            cs.splits = kDefaultPlan;
            cs.producer_warpgroup = producer;
            const kernels::WgmmaPlan plan = cs.direction == Direction::Forward
                                                ? kernels::conv_wgmma_forward_plan(cs.shape, cs.operand)
                                                : kernels::conv_wgmma_backward_data_plan(cs.shape, cs.operand);
            EXPECT_GT(plan.launches.at(0).splits, 1) << name_of(cs);
            const Problem p = make_problem(cs, rng, false);
            EXPECT_LT(relative_error(run_pass(cs, p), p.expected), tolerance(cs)) << name_of(cs);
        }
    }
}

// The producer ring, bit for bit on small integers over the forward and backward-data sweeps.
TEST(EmuWgmmaConv, ProducerRingSmallIntegersBitForBit) {
    expect_small_integers_bit_for_bit(on_the_producer_ring(sweep()));
    expect_small_integers_bit_for_bit(on_the_producer_ring(backward_data_sweep()));
}

// The producer ring's hand-overs under the schedules that find a missing or wrong one: run-to-block
// lets the producer run as far ahead as its empty barriers allow (a wait for the wrong phase, or
// none, refills a stage the multipliers still read: a KernelFault for the operand changed under a
// wgmma in flight, or a wrong result), and random interleaves the three warpgroups anyhow. Long K
// (18, 36 k tiles: every stage's barriers through both parities several times), tf32 (the
// producer rounds its chunks before the hand-over), a split (ranges of 4 and 2 k tiles: fewer
// tiles than stages), uniform backward-data phases, and the bulk copies (the weight's tiles of
// the long-K case and of grouped 3x3/2 phases, A's tiles of a 1x1 backward-data; backward-filter's
// operands, a 1-D split 3 ways (under random too) and 2 groups of 64).
TEST(EmuWgmmaConv, ProducerRingUnderRunToBlockAndRandomSchedules) {
    if (emu::schedule_from_environment() == emu::Schedule::Reverse) GTEST_SKIP() << "runs once, under forward";
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<Case> cases =
        on_the_producer_ring({sweep()[7], sweep()[9], sweep()[25], split_sweep()[1], backward_data_sweep()[4],
                              backward_data_sweep()[10], backward_data_sweep()[17], backward_data_sweep()[15],
                              backward_filter_sweep()[13], backward_filter_sweep()[12]});
    for (emu::Schedule schedule : {emu::Schedule::RunToBlock, emu::Schedule::Random}) {
        const ScheduleScope scope(schedule);
        for (std::size_t i = 0; i < cases.size(); ++i) {
            if (schedule == emu::Schedule::Random && i % 2 == 1) continue;  // the slower schedule: half of them
            const Problem p = make_problem(cases[i], rng, false);
            EXPECT_LT(relative_error(run_pass(cases[i], p), p.expected), tolerance(cases[i]))
                << name_of(cases[i]) << " under " << emu::schedule_name(schedule);
        }
    }
}

// The barrier between a k tile's cp.async wait and its wgmmas is what makes the other
// warpgroup's chunks (and the refilled stage's last readers) safe; ctest's forward and reverse
// schedules keep the block's threads too close together to miss it (docs/testing.md), but
// run-to-block runs each thread ahead until it blocks: without the barrier, warpgroup 0 multiplies
// before warpgroup 1's threads have copied their rows (a KernelFault or a wrong result). So the
// ring's cases (several k tiles, both tiles, M past one block) run under it, two under random too.
TEST(EmuWgmmaConv, RingUnderRunToBlockAndRandomSchedules) {
    // It sets its own schedules: ctest's reverse entry would repeat the forward one's runs.
    if (emu::schedule_from_environment() == emu::Schedule::Reverse) GTEST_SKIP() << "runs once, under forward";
    CONVKIT_SEEDED_RNG(rng);
    for (emu::Schedule schedule : {emu::Schedule::RunToBlock, emu::Schedule::Random}) {
        const ScheduleScope scope(schedule);
        // Random (the slower schedule) on two of them: the wide tile's M edge and its longest K.
        // The tf32 ones: M and N past the wide tile; 36 k tiles (the copies and then the rounding
        // of the chunks of both warpgroups before either multiplies).
        const std::vector<std::size_t> cases = schedule == emu::Schedule::RunToBlock
                                                   ? std::vector<std::size_t>{2, 6, 7, 9, 22, 23, 25}
                                                   : std::vector<std::size_t>{2, 9, 25};
        for (const std::size_t i : cases) {
            const Case& cs = sweep()[i];
            const Problem p = make_problem(cs, rng, false);
            EXPECT_LT(relative_error(run(cs, p), p.expected), tolerance(cs))
                << name_of(cs) << " under " << emu::schedule_name(schedule);
        }
    }
}

// Every combination of epilogue options, output type and operand on one shape past the block's
// M edge and the narrow tile's N (M = 2 * 9 * 9 = 162, N = 72: the wide tile, partly filled).
TEST(EmuWgmmaConv, EveryEpilogueCombination) {
    CONVKIT_SEEDED_RNG(rng);
    for (IgemmOperand operand : {kBF, kF16, kTF32})
        for (IgemmOutput output : {kToBF, kToF16, kToF32})
            for (int options = 0; options < 8; ++options) {
                if (operand == kTF32 && output != kToF32) continue;  // float32 tensors write float32
                const Case cs{shape(2, 2, 8, 72, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1}),
                              kLarge,
                              operand,
                              output,
                              (options & 1) != 0,
                              (options & 2) != 0,
                              (options & 4) != 0};
                const Problem p = make_problem(cs, rng, false);
                EXPECT_LT(relative_error(run(cs, p), p.expected), tolerance(cs)) << name_of(cs);
            }
}

// Every output with every epilogue option, on both rings, straight from the GEMM and through
// split-K, with y and the residual `misalign` elements into their buffers (run_with).
void expect_misaligned_outputs_match(std::size_t misalign) {
    CONVKIT_SEEDED_RNG(rng);
    int i = 0;
    for (Case cs : every_output_with_every_option(shape(2, 2, 64, 72, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1}), 2)) {
        cs.producer_warpgroup = i++ / 2 % 2 == 0;  // each ring split and not
        const Problem p = make_problem(cs, rng, false);
        const std::vector<double> y =
            cs.direction == Direction::Forward ? run(cs, p, misalign) : run_backward_data(cs, p, misalign);
        EXPECT_LT(relative_error(y, p.expected), tolerance(cs)) << name_of(cs);
    }
}

// The epilogue writes 16 bytes of a row at a time, staged through shared memory, where every
// tensor it touches is aligned to that (both rings), else each thread's pairs of adjacent channels with one access (4
// bytes of two 16-bit values, 8 of two floats) where they are aligned to a pair; a y or residual one element off that
// goes a value at a time to the same result (a pair or pack there faults in the emulator, as on a GPU).
TEST(EmuWgmmaConv, OutputsOffAPairsAlignmentAreWrittenOneValueAtATime) {
    expect_misaligned_outputs_match(1);
}

// Two elements off: off a 16-byte pack, on a pair, so written in pairs from the D fragment
// (split-K's slice, aligned, is still staged).
TEST(EmuWgmmaConv, OutputsOffSixteenBytesAreWrittenInPairs) {
    expect_misaligned_outputs_match(2);
}

// tf32 operands are rounded to nearest, ties away from zero (cvt.rna), in shared memory before
// the tensor cores read them, in both operands: one is 1 + 2^-11 everywhere (a tie between 1 and
// 1 + 2^-10), the other 1. Rounded, each product is 1 + 2^-10 and every sum (at most 36 x 12
// terms) exact in float; truncation, which the tensor cores do themselves, or ties to even would
// give 1 a product. A partial last k tile, both tiles.
TEST(EmuWgmmaConv, Tf32OperandsAreRoundedToNearestTiesAway) {
    CONVKIT_SEEDED_RNG(rng);
    const double tie = 1 + std::ldexp(1.0, -11), rounded = 1 + std::ldexp(1.0, -10);
    // On the plain ring, and on the producer ring with both tiles by bulk copies (32 channels a
    // group: x by im2col, the 1x1's by tiled boxes), whose threads round whole stages.
    const Case plain{
        shape(2, 2, 12, 136, 1, {6, 7}, {3, 3}, {2, 1}, {1, 1}), kLarge, kTF32, kToF32, false, false, false};
    std::vector<Case> cases = {plain, plain, plain, plain};
    cases[1].shape = shape(2, 1, 36, 40, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1});
    cases[2].shape = shape(2, 1, 32, 40, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1});
    cases[3].shape = shape(2, 2, 64, 136, 1, {6, 5}, {1, 1});
    cases[2].producer_warpgroup = cases[3].producer_warpgroup = true;
    for (const Case& cs : cases) {
        for (std::size_t tied : {std::size_t{0}, std::size_t{1}}) {  // x, w
            std::array<double, 3> stored{1, 1, 1}, as_read{1, 1, 1};
            stored[tied] = tie;
            as_read[tied] = rounded;
            const Problem p = make_problem(cs, rng, false, &stored);
            const std::vector<double> expected = make_problem(cs, rng, false, &as_read).expected;
            EXPECT_EQ(differing(run(cs, p), expected), 0u) << name_of(cs) << ", the tie in " << (tied ? "w" : "x");
        }
    }
}

void expect_refused(const IgemmConvShape& s, IgemmOperand operand, const std::string& reason) {
    EXPECT_NE(kernels::conv_wgmma_unsupported_reason(s, operand).find(reason), std::string::npos)
        << s.to_string() << ": " << kernels::conv_wgmma_unsupported_reason(s, operand);
    const std::vector<std::uint16_t> data(4096);
    std::vector<float> y(4096);
    try {
        kernels::conv_wgmma_forward(s, operand, IgemmOutput::Float32, {}, data.data(), data.data(), {}, y.data(),
                                    nullptr, Stream{});
        ADD_FAILURE() << "not refused: " << s.to_string();
    } catch (const NotSupported& e) {
        EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
    }
}

// ---- split-K (forward and backward-data) --------------------------------------------------

Case split_forward(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, bool bias, bool residual,
                   bool relu, int splits) {
    return {s, kLarge, operand, output, bias, residual, relu, Direction::Forward, splits};
}

// Splits named, not the default's: ranges of k tiles dealt evenly, unevenly (a partial last
// range, a partial last tile), and past the tiles (empty ranges, whose slices are zeros); the
// wide tile with groups, tf32, 3-D; backward-data's uniform phases (each block's slice rows
// after the phases before its own), unequal phases split alike, phases no tap reaches (k = 0:
// every range empty, the adder writes the epilogue of 0). Slices NaN-poisoned.
const std::vector<Case>& split_sweep() {
    static const std::vector<Case> cases = {
        // 1152 = 18 k tiles in 3 ranges of 6; 864 = 13.5 in 4 of 4, 4, 4, 2 (the last tile partial).
        split_forward(shape(2, 1, 128, 16, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}), kBF, kToBF, true, true, true, 3),
        split_forward(shape(2, 1, 96, 24, 1, {3, 3}, {3, 3}, {1, 1}, {1, 1}), kF16, kToF16, true, false, false, 4),
        // One k tile in 3 ranges: two empty.
        split_forward(shape(2, 2, 64, 72, 1, {7, 7}, {1, 1}), kBF, kToF32, false, true, true, 3),
        // Groups of 64 -> 136 (two wide column tiles a group), 9 k tiles in 2 ranges.
        split_forward(shape(2, 1, 128, 272, 2, {6, 6}, {3, 3}, {1, 1}, {1, 1}), kBF, kToBF, true, true, true, 2),
        // tf32: 36 k tiles of 32 in 5 ranges (8 each, the last 4); 3-D, 3.4 k tiles in 2.
        split_forward(shape(2, 1, 128, 24, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}), kTF32, kToF32, true, false, false, 5),
        split_forward(shape(3, 1, 8, 16, 1, {4, 5, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}), kBF, kToF16, false, false,
                      true, 2),
        // Backward-data: 4x4/2 (4 uniform phases in one launch, 4 k tiles each) in 2; 3x3/2
        // (phases of 5, 3, 3 and 2 k tiles) in 3; 1x1/2 (3 phases of no tap) in 2; tf32 groups.
        backward_data(shape(2, 2, 64, 32, 1, {16, 16}, {4, 4}, {2, 2}, {1, 1}), kF16, kToF32, true, true, true, 2),
        backward_data(shape(2, 2, 24, 72, 1, {17, 17}, {3, 3}, {2, 2}, {1, 1}), kBF, kToBF, true, false, true, 3),
        backward_data(shape(2, 2, 64, 128, 1, {7, 8}, {1, 1}, {2, 2}), kF16, kToF16, true, true, false, 2),
        backward_data(shape(2, 2, 48, 24, 2, {9, 9}, {3, 3}, {2, 2}, {1, 1}), kTF32, kToF32, true, true, false, 2),
    };
    return cases;
}

class WgmmaSplitSweep : public ::testing::TestWithParam<Case> {};

TEST_P(WgmmaSplitSweep, MatchesTheDefinition) {
    expect_matches_the_definition(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Emu, WgmmaSplitSweep, ::testing::ValuesIn(split_sweep()), case_test_name);
INSTANTIATE_TEST_SUITE_P(EmuProducer, WgmmaSplitSweep, ::testing::ValuesIn(on_the_producer_ring(split_sweep())),
                         case_test_name);

// The slices are added in order 0..S-1 by one kernel: with small integers every partial sum is
// exact, so the split result equals the definition bit for bit.
TEST(EmuWgmmaConv, SplitSmallIntegersBitForBit) {
    expect_small_integers_bit_for_bit(split_sweep());
}

// The default split: none where the output tiles fill half a wave (one 128x128 block an SM, two
// 128x64), else about a wave's blocks, each range at least 8 k tiles; per launch for
// backward-data; the workspace the largest launch's slices; a split named overrides it.
// The producer copies the weight's tile with one bulk tensor copy a stage where a map describes
// it: 16-bit forward (any depth: the last tile's k past the end is outside the map), and
// backward-data with whole k tiles of dy channels a tap; tf32 (rounded by the threads that copy
// it) and 24 channels a tap (a tile straddling taps) keep cp.async, and so does the ring without
// a producer. The same for A where the GEMM's rows are the source's own rows through one tap (a
// tiled copy), and in the forward where a group's channels are whole k tiles (an im2col copy).
TEST(EmuWgmmaConv, TheProducerUsesTheBulkCopyWhereAMapDescribesTheOperand) {
    const kernels::WgmmaSchedule producer{std::nullopt, true};
    auto bulk = [](const kernels::WgmmaPlan& plan) {
        std::vector<bool> each;
        for (const kernels::WgmmaLaunchPlan& l : plan.launches) each.push_back(l.weight_by_bulk_copy);
        return each;
    };
    const IgemmConvShape forward = shape(2, 2, 24, 40, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1});  // k = 216
    EXPECT_EQ(bulk(kernels::conv_wgmma_forward_plan(forward, kBF, producer)), std::vector<bool>{true});
    EXPECT_EQ(bulk(kernels::conv_wgmma_forward_plan(forward, kF16, producer)), std::vector<bool>{true});
    EXPECT_EQ(bulk(kernels::conv_wgmma_forward_plan(forward, kTF32, producer)), std::vector<bool>{false});
    EXPECT_EQ(bulk(kernels::conv_wgmma_forward_plan(forward, kBF)), std::vector<bool>{false});
    // 3x3/2 with 64 dy channels a group: 4 launches (phases of 1, 2, 2 and 4 taps), each by bulk copy.
    EXPECT_EQ(bulk(kernels::conv_wgmma_backward_data_plan(backward_data_sweep()[15].shape, kBF, producer)),
              (std::vector<bool>{true, true, true, true}));
    EXPECT_EQ(bulk(kernels::conv_wgmma_backward_data_plan(backward_data_sweep()[6].shape, kBF, producer)),
              (std::vector<bool>{false, false, false, false}));
    // A too where the GEMM's rows are the source's rows: 1x1, stride 1, no padding.
    auto bulk_a = [](const kernels::WgmmaPlan& plan) {
        std::vector<bool> each;
        for (const kernels::WgmmaLaunchPlan& l : plan.launches) each.push_back(l.activations_by_bulk_copy);
        return each;
    };
    const IgemmConvShape pointwise = shape(2, 2, 64, 72, 1, {7, 7}, {1, 1}, {1, 1}, {0, 0});
    EXPECT_EQ(bulk_a(kernels::conv_wgmma_forward_plan(pointwise, kBF, producer)), std::vector<bool>{true});
    // tf32 too, where both tiles are copies (the producer's threads then round whole stages).
    EXPECT_EQ(bulk_a(kernels::conv_wgmma_forward_plan(pointwise, kTF32, producer)), std::vector<bool>{true});
    EXPECT_EQ(bulk(kernels::conv_wgmma_forward_plan(pointwise, kTF32, producer)), std::vector<bool>{true});
    EXPECT_EQ(bulk_a(kernels::conv_wgmma_forward_plan(pointwise, kBF)), std::vector<bool>{false});
    EXPECT_EQ(bulk_a(kernels::conv_wgmma_forward_plan(forward, kBF, producer)),
              std::vector<bool>{false});  // 24 channels: a k tile would straddle taps
    // The forward's other convolutions with 64 channels a group: an im2col copy a tile (1x1/2, a
    // padded 1x1, 3x3/2 with dilation 2); not past the map's corners or offsets, nor for 96
    // channels, nor tf32.
    auto forward_a = [&](const IgemmConvShape& s, IgemmOperand operand) -> bool {
        const std::vector<bool> each = bulk_a(kernels::conv_wgmma_forward_plan(s, operand, producer));
        return each.size() == 1 && each[0];
    };
    EXPECT_TRUE(forward_a(shape(2, 2, 64, 72, 1, {7, 7}, {1, 1}, {2, 2}, {0, 0}), kBF));
    EXPECT_TRUE(forward_a(shape(2, 2, 64, 72, 1, {7, 7}, {1, 1}, {1, 1}, {1, 1}), kF16));
    EXPECT_TRUE(forward_a(shape(2, 2, 128, 80, 2, {9, 9}, {3, 3}, {2, 2}, {2, 2}, {2, 2}), kBF));
    // The map's rank is the convolution's: 2-D corners reach -128..127 (padding 17 is fine, 130
    // is not); 3-D ones -16..15 and offsets 30 (dilation 16 on a 3-tap kernel reaches 32).
    EXPECT_TRUE(forward_a(shape(2, 2, 64, 72, 1, {7, 7}, {3, 3}, {1, 1}, {17, 17}), kBF));
    EXPECT_FALSE(forward_a(shape(2, 1, 64, 72, 1, {3, 3}, {3, 3}, {1, 1}, {130, 130}), kBF));
    EXPECT_TRUE(forward_a(shape(3, 1, 64, 16, 1, {5, 5, 5}, {3, 3, 3}, {1, 1, 1}, {15, 15, 15}, {15, 15, 15}), kBF));
    EXPECT_FALSE(forward_a(shape(3, 1, 64, 16, 1, {5, 5, 5}, {3, 3, 3}, {1, 1, 1}, {16, 16, 16}, {16, 16, 16}), kBF));
    EXPECT_FALSE(forward_a(shape(2, 2, 96, 72, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kBF));
    EXPECT_TRUE(forward_a(shape(2, 2, 64, 72, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kTF32));
    // tf32 with 48 channels: a k tile of 32 straddles taps, so A is gathered, and B, which the
    // gathering threads would not round, is gathered too.
    EXPECT_FALSE(forward_a(shape(2, 2, 48, 72, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kTF32));
    EXPECT_EQ(
        bulk(kernels::conv_wgmma_forward_plan(shape(2, 2, 48, 72, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kTF32, producer)),
        std::vector<bool>{false});
    const kernels::WgmmaPlan pointwise_back =
        kernels::conv_wgmma_backward_data_plan(backward_data_sweep()[17].shape, kBF, producer);
    EXPECT_EQ(bulk_a(pointwise_back), std::vector<bool>{true});
    EXPECT_EQ(bulk(pointwise_back), std::vector<bool>{false});
    // 3x3/2 pad 1 on 17 x 17: the even phase reads dy (9 x 9) at its own 9 x 9 positions through
    // its one tap; the phases of 2 and 4 taps gather.
    EXPECT_EQ(bulk_a(kernels::conv_wgmma_backward_data_plan(backward_data_sweep()[6].shape, kBF, producer)),
              (std::vector<bool>{true, false, false, false}));
}

TEST(EmuWgmmaConv, WgmmaPlans) {
    // ResNet-50 layer4 3x3 512 -> 512 at batch 32: M = 32 x 49 = 1568 (13 tiles) x 4 column tiles
    // = 52 blocks, under half of 132: 3 splits (72 k tiles allow 9; tf32's 144 the same 3).
    const IgemmConvShape layer4 = shape(2, 32, 512, 512, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1});
    const kernels::WgmmaPlan forward = kernels::conv_wgmma_forward_plan(layer4, kBF);
    ASSERT_EQ(forward.launches.size(), 1u);
    EXPECT_EQ(forward.launches[0].blocks, 52);
    EXPECT_EQ(forward.launches[0].splits, 3);
    EXPECT_EQ(forward.blocks(), 156);
    EXPECT_EQ(forward.workspace_bytes(), std::size_t{3} * 1568 * 512 * 4);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer4, kTF32).launches[0].splits, 3);
    // layer3 3x3 256 -> 256 at 14 x 14: 49 x 2 = 98 blocks, more than half a wave: none; named: 2.
    const IgemmConvShape layer3 = shape(2, 32, 256, 256, 1, {14, 14}, {3, 3}, {1, 1}, {1, 1});
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer3, kBF).launches[0].splits, 1);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer3, kBF).workspace_bytes(), 0u);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer3, kBF, {2}).launches[0].splits, 2);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer3, kBF, {2}).workspace_bytes(), std::size_t{2} * 6272 * 256 * 4);
    // The narrow tile: one block of 128x64 (a wave of 264): 36 k tiles allow 4 ranges.
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(shape(2, 2, 256, 64, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kBF)
                  .launches[0]
                  .splits,
              4);
    // layer4's first 3x3/2 256 -> 512 from 14 x 14, backward-data: dx's 4 phases of 32 x 7 x 7 =
    // 1568 rows (13 tiles) x 256 columns (2 tiles) = 26 blocks each, under half a wave (6 wanted),
    // of 1, 2, 2 and 4 taps (pad 1: even positions take tap 1, odd ones taps 0 and 2): 8, 16, 16
    // and 32 k tiles of 512 channels a tap, so 1, 2, 2 and 4 splits.
    const kernels::WgmmaPlan strided =
        kernels::conv_wgmma_backward_data_plan(shape(2, 32, 256, 512, 1, {14, 14}, {3, 3}, {2, 2}, {1, 1}), kBF);
    std::vector<int> splits;
    for (const kernels::WgmmaLaunchPlan& l : strided.launches) {
        EXPECT_EQ(l.blocks, 26);
        splits.push_back(l.splits);
    }
    EXPECT_EQ(splits, (std::vector<int>{1, 2, 2, 4}));
    EXPECT_EQ(strided.workspace_bytes(), std::size_t{4} * 1568 * 256 * 4);
    // A split outside 1..65535 / groups, or more than one without a workspace: InvalidArgument
    // naming the bytes wanted.
    const IgemmConvShape small = shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}, {1, 1}, {1, 1});
    const std::vector<std::uint16_t> data(4096);
    std::vector<std::uint16_t> y(4096);
    EXPECT_THROW(
        kernels::conv_wgmma_forward(small, kBF, kToBF, {0}, data.data(), data.data(), {}, y.data(), nullptr, Stream{}),
        InvalidArgument);
    try {
        kernels::conv_wgmma_backward_data(small, kBF, kToBF, {2}, data.data(), data.data(), {}, y.data(), nullptr,
                                          Stream{});
        ADD_FAILURE() << "a split without a workspace ran";
    } catch (const InvalidArgument& e) {
        // 2 slices of dx's 1 x 8 x 8 rows x 16 channels.
        EXPECT_NE(std::string(e.what()).find("2 splits need a workspace of " +
                                             std::to_string(2 * 64 * 16 * sizeof(float)) + " bytes"),
                  std::string::npos)
            << e.what();
    }
}

std::vector<double> run_pass(const Case& cs, const Problem& p) {
    switch (cs.direction) {
        case Direction::Forward:
            return run(cs, p);
        case Direction::BackwardData:
            return run_backward_data(cs, p);
        case Direction::BackwardFilter:
            break;
    }
    return run_backward_filter(cs, p);
}

// Channel counts off the 16-byte vector (8 16-bit values, 4 tf32) are refused with the reason;
// the supported shapes' reasons are empty; the emulator build runs the kernel.
TEST(EmuWgmmaConv, RefusalsAndAvailability) {
    EXPECT_TRUE(kernels::conv_wgmma_built());
    EXPECT_EQ(kernels::conv_wgmma_unsupported_reason(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}), kBF), "");
    EXPECT_EQ(kernels::conv_wgmma_unsupported_reason(shape(2, 1, 12, 20, 1, {8, 8}, {3, 3}), kTF32), "");
    expect_refused(shape(2, 1, 12, 16, 1, {8, 8}, {3, 3}), kBF, "input channels per group 12 not a multiple of 8");
    expect_refused(shape(2, 1, 16, 20, 1, {8, 8}, {3, 3}), kF16, "output channels per group 20 not a multiple of 8");
    expect_refused(shape(2, 1, 6, 16, 1, {8, 8}, {3, 3}), kTF32, "input channels per group 6 not a multiple of 4");
    // Null pointers, and tf32 operands (float32 tensors) with a 16-bit output, are InvalidArgument.
    EXPECT_THROW(kernels::conv_wgmma_forward(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}), kBF, kToF32, {}, nullptr, nullptr,
                                             {}, nullptr, nullptr, Stream{}),
                 InvalidArgument);
    {
        const std::vector<float> data(4096);
        std::vector<std::uint16_t> y(4096);
        EXPECT_THROW(kernels::conv_wgmma_forward(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}), kTF32, kToBF, {}, data.data(),
                                                 data.data(), {}, y.data(), nullptr, Stream{}),
                     InvalidArgument);
    }
    // The tiles: 128 columns past 64 output channels a group, 64 up to it; the shared memory 4
    // stages of 16 KiB of A and 16 or 8 KiB of B, and an atom's alignment slack.
    const IgemmConvShape layer1 = shape(2, 32, 64, 64, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1});
    const IgemmConvShape layer2 = shape(2, 32, 128, 128, 1, {28, 28}, {3, 3}, {1, 1}, {1, 1});
    EXPECT_EQ(kernels::conv_wgmma_tile_columns(layer1), 64);
    EXPECT_EQ(kernels::conv_wgmma_tile_columns(layer2), 128);
    EXPECT_EQ(kernels::conv_wgmma_tile_columns(shape(2, 1, 16, 144, 2, {8, 8}, {3, 3})), 128);  // 72 a group
    EXPECT_EQ(kernels::conv_wgmma_shared_bytes(layer1), std::size_t{4 * 24 * 1024 + 1024});
    EXPECT_EQ(kernels::conv_wgmma_shared_bytes(layer2), std::size_t{4 * 32 * 1024 + 1024});
    // ResNet-50's 3x3 layers at batch 32: 784 x 1 blocks, 9 k tiles (18 in tf32, 32 deep); 196 x
    // 1, 18 k tiles (36); 2 warpgroups x 4 k steps (k16, or k8 in tf32) a k tile; enough blocks
    // for half a wave, so no split.
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer1, kBF).blocks(), 784);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer1, kBF).wgmma_instructions(), 784 * 9 * 8);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer1, kTF32).wgmma_instructions(), 784 * 18 * 8);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer2, kBF).blocks(), 196);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer2, kF16).wgmma_instructions(), 196 * 18 * 8);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer2, kTF32).wgmma_instructions(), 196 * 36 * 8);
    EXPECT_EQ(kernels::conv_wgmma_forward_plan(layer2, kBF).workspace_bytes(), 0u);
    EXPECT_TRUE(kernels::conv_wgmma_forward_plan(shape(2, 1, 12, 16, 1, {8, 8}, {3, 3}), kBF).launches.empty());
}

}  // namespace convkit::wgmma_test
