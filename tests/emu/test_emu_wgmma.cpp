// The warpgroup-MMA implicit-GEMM convolution (kernels/conv_wgmma.cu, forward, sm_90a) executed
// on the CPU by the emulator (its wgmma: src/emu/warpgroup_mma.cpp), against the float64
// definition of tests/emu/igemm_problem.h: a sweep over rank 1-3, M and N at and past the 128 x
// 128 block tile's edges (and the 128 x 64 one's up to 64 channels a group), K from under one 64-deep k tile to many
// (through the 4-stage ring, with a partial last tile), strides, dilations, padding, groups, batch 1, every epilogue
// option, bf16 and f16 operands and every output type, outputs NaN-poisoned; small integers bit for bit; refusals with
// their reasons.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "convkit/error.h"
#include "emu/emulator.h"
#include "igemm_problem.h"
#include "kernels/conv_wgmma.h"

namespace convkit {
namespace {

using namespace igemm_test;

std::vector<double> run(const Case& cs, const Problem& p) {
    return run_with(cs, p, [&](const IgemmEpilogue& epilogue, void* y) {
        kernels::conv_wgmma_forward(cs.shape, cs.operand, cs.output, p.first.data(), p.second.data(), epilogue, y,
                                    Stream{});
    });
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
    };
    return cases;
}

class WgmmaSweep : public ::testing::TestWithParam<Case> {};

TEST_P(WgmmaSweep, MatchesTheDefinition) {
    CONVKIT_SEEDED_RNG(rng);
    const Case& cs = GetParam();
    const Problem p = make_problem(cs, rng, false);
    EXPECT_LT(relative_error(run(cs, p), p.expected), tolerance(cs)) << name_of(cs);
}

INSTANTIATE_TEST_SUITE_P(Emu, WgmmaSweep, ::testing::ValuesIn(sweep()), case_test_name);

// Small integers: every product and sum is exact in float, so the float output must equal the
// definition bit for bit on every case of the sweep (each with its own operand: the sweep
// alternates bf16 and f16).
TEST(EmuWgmmaConv, SmallIntegersBitForBitOnTheSweep) {
    CONVKIT_SEEDED_RNG(rng);
    for (Case cs : sweep()) {
        cs.output = kToF32;
        const Problem p = make_problem(cs, rng, true);
        const std::vector<double> y = run(cs, p);
        EXPECT_EQ(differing(y, p.expected), 0u) << name_of(cs);
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
    struct ScheduleScope {
        explicit ScheduleScope(emu::Schedule s) { emu::set_schedule_override(s); }
        ~ScheduleScope() { emu::set_schedule_override(std::nullopt); }
    };
    CONVKIT_SEEDED_RNG(rng);
    for (emu::Schedule schedule : {emu::Schedule::RunToBlock, emu::Schedule::Random}) {
        const ScheduleScope scope(schedule);
        // Random (the slower schedule) on two of them: the wide tile's M edge and its longest K.
        const std::vector<std::size_t> cases = schedule == emu::Schedule::RunToBlock
                                                   ? std::vector<std::size_t>{2, 6, 7, 9, 22}
                                                   : std::vector<std::size_t>{2, 9};
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
    for (IgemmOperand operand : {kBF, kF16})
        for (IgemmOutput output : {kToBF, kToF16, kToF32})
            for (int options = 0; options < 8; ++options) {
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

void expect_refused(const IgemmConvShape& s, IgemmOperand operand, const std::string& reason) {
    EXPECT_NE(kernels::conv_wgmma_unsupported_reason(s, operand).find(reason), std::string::npos)
        << s.to_string() << ": " << kernels::conv_wgmma_unsupported_reason(s, operand);
    const std::vector<std::uint16_t> data(4096);
    std::vector<float> y(4096);
    try {
        kernels::conv_wgmma_forward(s, operand, IgemmOutput::Float32, data.data(), data.data(), {}, y.data(), Stream{});
        ADD_FAILURE() << "not refused: " << s.to_string();
    } catch (const NotSupported& e) {
        EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
    }
}

// tf32 and channel counts off the 16-byte vector are refused with the reason; the supported
// shape's reason is empty; the emulator build runs the kernel.
TEST(EmuWgmmaConv, RefusalsAndAvailability) {
    EXPECT_TRUE(kernels::conv_wgmma_built());
    EXPECT_EQ(kernels::conv_wgmma_unsupported_reason(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}), kBF), "");
    expect_refused(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}), kTF32, "bf16 and f16 operands only");
    expect_refused(shape(2, 1, 12, 16, 1, {8, 8}, {3, 3}), kBF, "input channels per group 12 not a multiple of 8");
    expect_refused(shape(2, 1, 16, 20, 1, {8, 8}, {3, 3}), kF16, "output channels per group 20 not a multiple of 8");
    // Null pointers and a tf32-style output mismatch are InvalidArgument.
    EXPECT_THROW(kernels::conv_wgmma_forward(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}), kBF, kToF32, nullptr, nullptr, {},
                                             nullptr, Stream{}),
                 InvalidArgument);
    // The tiles: 128 columns past 64 output channels a group, 64 up to it; the shared memory 4
    // stages of 16 KiB of A and 16 or 8 KiB of B, and an atom's alignment slack.
    const IgemmConvShape layer1 = shape(2, 32, 64, 64, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1});
    const IgemmConvShape layer2 = shape(2, 32, 128, 128, 1, {28, 28}, {3, 3}, {1, 1}, {1, 1});
    EXPECT_EQ(kernels::conv_wgmma_tile_columns(layer1), 64);
    EXPECT_EQ(kernels::conv_wgmma_tile_columns(layer2), 128);
    EXPECT_EQ(kernels::conv_wgmma_tile_columns(shape(2, 1, 16, 144, 2, {8, 8}, {3, 3})), 128);  // 72 a group
    EXPECT_EQ(kernels::conv_wgmma_shared_bytes(layer1), std::size_t{4 * 24 * 1024 + 1024});
    EXPECT_EQ(kernels::conv_wgmma_shared_bytes(layer2), std::size_t{4 * 32 * 1024 + 1024});
    // ResNet-50's 3x3 layers at batch 32: 784 x 1 blocks, 9 k tiles; 196 x 1, 18 k tiles; 2
    // warpgroups x 4 k16 steps a k tile.
    EXPECT_EQ(kernels::conv_wgmma_forward_blocks(layer1), 784);
    EXPECT_EQ(kernels::conv_wgmma_forward_instructions(layer1), 784 * 9 * 8);
    EXPECT_EQ(kernels::conv_wgmma_forward_blocks(layer2), 196);
    EXPECT_EQ(kernels::conv_wgmma_forward_instructions(layer2), 196 * 18 * 8);
}

}  // namespace
}  // namespace convkit
