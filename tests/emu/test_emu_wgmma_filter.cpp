// Backward-filter of the warpgroup-MMA convolution (kernels/conv_wgmma_filter.cu, sm_90a: MN-major
// tiles, both orientations, split-K; on the producer ring both operands by bulk tensor copies)
// executed on the CPU by the emulator, against the float64 definition of tests/emu/igemm_problem.h;
// its ring and backward-data's under the run-to-block and random schedules; the plan and its
// refusals.
#include <gtest/gtest.h>

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

std::vector<double> run_backward_filter(const Case& cs, const Problem& p) {
    const std::size_t bytes = kernels::conv_wgmma_backward_filter_workspace_bytes(cs.shape, cs.splits);
    std::vector<float> slices(bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
    return run_with(cs, p, [&](const IgemmEpilogue& epilogue, void* dw) {
        kernels::conv_wgmma_backward_filter(cs.shape, cs.operand, cs.output, {cs.splits, cs.producer_warpgroup},
                                            p.first.data(), p.second.data(), epilogue.residual, dw,
                                            slices.empty() ? nullptr : slices.data(), Stream{});
    });
}

namespace {
Case backward_filter(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, bool residual, int splits) {
    return {s, kLarge, operand, output, false, residual, false, Direction::BackwardFilter, splits};
}
}  // namespace

// The GEMM: M = K/g output channels, N = taps x C/g, k = N x output positions (64 a k tile), or
// transposed where K/g <= 64 < taps x C/g. Both orientations, the wide and narrow tiles, M and N
// at and past the tiles' edges, positions past a k tile and through the ring, split-K 2 and 3
// (a split with fewer tiles), groups, strides, dilation, padding, 1-D and 3-D, both operands.
const std::vector<Case>& backward_filter_sweep() {
    static const std::vector<Case> cases = {
        // Normal, wide: K/g = 128, N = 9 x 16 = 144 (two column tiles); 2 x 8 x 8 = 128 positions.
        backward_filter(shape(2, 2, 16, 128, 1, {8, 8}, {3, 3}, {1, 1}, {1, 1}), kBF, kToF32, false, 1),
        // Transposed: K/g = 64, N = 144 rows of D^T (two row tiles) on the 64-column tile.
        backward_filter(shape(2, 2, 16, 64, 1, {9, 7}, {3, 3}, {1, 1}, {1, 1}), kF16, kToF16, true, 1),
        // Normal, narrow: K/g = 136 (M past 128), 1x1 N = 64; both at most 64: 48 x 32, 1x1.
        backward_filter(shape(2, 2, 64, 136, 1, {6, 6}, {1, 1}), kBF, kToBF, false, 1),
        backward_filter(shape(2, 1, 32, 48, 1, {9, 9}, {1, 1}), kF16, kToF32, true, 1),
        // Long positions through the ring (2 x 24 x 24 = 1152: 18 k tiles), split 2 and 3.
        backward_filter(shape(2, 2, 8, 32, 1, {24, 24}, {3, 3}, {1, 1}, {1, 1}), kBF, kToF32, false, 2),
        backward_filter(shape(2, 2, 24, 72, 1, {20, 23}, {3, 3}, {1, 1}, {1, 1}), kF16, kToBF, true, 3),
        // Groups (2 of 16 -> 48, 4 of 8 -> 8), stride 2, dilation, padding past the reach.
        backward_filter(shape(2, 2, 32, 96, 2, {9, 9}, {3, 3}, {2, 2}, {1, 1}), kBF, kToF32, true, 1),
        backward_filter(shape(2, 1, 32, 32, 4, {10, 10}, {3, 3}, {1, 1}, {2, 2}, {2, 2}), kF16, kToF16, false, 2),
        // 1-D (a long kernel), 3-D strided and dilated.
        backward_filter(shape(1, 2, 16, 64, 1, {150}, {7}, {2}, {3}), kBF, kToBF, false, 1),
        backward_filter(shape(3, 2, 8, 16, 1, {5, 6, 7}, {2, 3, 1}, {2, 1, 2}, {1, 0, 0}, {1, 2, 1}), kF16, kToF32,
                        true, 1),
        // 64 input channels a group, where the producer copies both operands by bulk copies (x by
        // im2col, 64 positions at one tap): normal wide 3x3 (N = 576) with positions past a k tile
        // (2 x 9 x 9 = 162); transposed 3x3/2 dilated; 2 groups of 64 -> 48 (dy's 64-channel boxes
        // reach the next group's channels, which land in dropped columns); 1-D dilated, 136
        // output channels (M past the tile, the second box past K: zeros), long positions split 3
        // ways; 3-D strided, transposed; a 1x1 on the narrow tile.
        backward_filter(shape(2, 2, 64, 128, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1}), kBF, kToF32, false, 1),
        backward_filter(shape(2, 2, 64, 64, 1, {11, 9}, {3, 3}, {2, 2}, {2, 1}, {2, 1}), kF16, kToF16, true, 1),
        backward_filter(shape(2, 2, 128, 96, 2, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kBF, kToBF, false, 1),
        backward_filter(shape(1, 2, 64, 136, 1, {300}, {5}, {1}, {4}, {2}), kF16, kToF32, true, 3),
        backward_filter(shape(3, 1, 64, 32, 1, {5, 6, 7}, {3, 3, 3}, {2, 1, 2}, {1, 1, 1}), kBF, kToF32, false, 1),
        backward_filter(shape(2, 2, 64, 64, 1, {6, 6}, {1, 1}), kBF, kToBF, false, 2),
    };
    return cases;
}

class WgmmaBackwardFilterSweep : public ::testing::TestWithParam<Case> {};

TEST_P(WgmmaBackwardFilterSweep, MatchesTheDefinition) {
    expect_matches_the_definition(GetParam());
}

namespace {
// The sweep's cases the producer ring takes (a group's input channels whole blocks of 64, both
// operands by bulk copies), on it.
std::vector<Case> producer_backward_filter_sweep() {
    std::vector<Case> cases;
    for (const Case& c : backward_filter_sweep())
        if (c.shape.in_channels / c.shape.groups % 64 == 0) cases.push_back(c);
    return on_the_producer_ring(cases);
}
}  // namespace

INSTANTIATE_TEST_SUITE_P(Emu, WgmmaBackwardFilterSweep, ::testing::ValuesIn(backward_filter_sweep()), case_test_name);
INSTANTIATE_TEST_SUITE_P(EmuProducer, WgmmaBackwardFilterSweep, ::testing::ValuesIn(producer_backward_filter_sweep()),
                         case_test_name);

TEST(EmuWgmmaConv, BackwardFilterSmallIntegersBitForBit) {
    expect_small_integers_bit_for_bit(backward_filter_sweep());
    expect_small_integers_bit_for_bit(producer_backward_filter_sweep());
}

// The producer ring takes exactly the sweep's 7 cases of 64-channel groups, each by bulk copies;
// it refuses the others with the reason, and its launcher throws it.
TEST(EmuWgmmaConv, TheProducerRingTakesBackwardFiltersOfWholeChannelBlocks) {
    const kernels::WgmmaSchedule producer{std::nullopt, true};
    std::size_t taken = 0;
    for (const Case& c : backward_filter_sweep()) {
        const bool whole = c.shape.in_channels / c.shape.groups % 64 == 0;
        EXPECT_EQ(kernels::conv_wgmma_backward_filter_plan(c.shape, c.operand, producer).bulk_copies, whole)
            << name_of(c);
        const std::string reason = kernels::conv_wgmma_backward_filter_unsupported_reason(c.shape, c.operand, producer);
        EXPECT_EQ(reason.find("whole blocks of 64") != std::string::npos, !whole) << name_of(c) << ": " << reason;
        taken += whole ? 1 : 0;
    }
    EXPECT_EQ(taken, 7u);
    EXPECT_EQ(producer_backward_filter_sweep().size(), 7u);
    const IgemmConvShape narrow_groups = backward_filter_sweep()[0].shape;  // 16 channels
    const std::vector<std::uint16_t> data(8192);
    std::vector<float> dw(8192);
    EXPECT_THROW(kernels::conv_wgmma_backward_filter(narrow_groups, kBF, kToF32, producer, data.data(), data.data(),
                                                     nullptr, dw.data(), nullptr, Stream{}),
                 NotSupported);
}

// The rings of backward-data (its phases' gathers) and backward-filter (MN-major tiles, split-K)
// under the schedules that catch a missing barrier (RingUnderRunToBlockAndRandomSchedules): a
// uniform launch, long K and tf32 of backward-data; the wide tile, a 2-way split of 18 k tiles and
// a transposed 3-way split of backward-filter.
TEST(EmuWgmmaConv, BackwardRingsUnderRunToBlockAndRandomSchedules) {
    if (emu::schedule_from_environment() == emu::Schedule::Reverse) GTEST_SKIP() << "runs once, under forward";
    CONVKIT_SEEDED_RNG(rng);
    for (emu::Schedule schedule : {emu::Schedule::RunToBlock, emu::Schedule::Random}) {
        const ScheduleScope scope(schedule);
        const bool random = schedule == emu::Schedule::Random;  // the slower one: fewer cases
        for (const std::size_t i : random ? std::vector<std::size_t>{4} : std::vector<std::size_t>{4, 10, 13}) {
            const Case& cs = backward_data_sweep()[i];
            const Problem p = make_problem(cs, rng, false);
            EXPECT_LT(relative_error(run_pass(cs, p), p.expected), tolerance(cs))
                << name_of(cs) << " under " << emu::schedule_name(schedule);
        }
        for (const std::size_t i : random ? std::vector<std::size_t>{4} : std::vector<std::size_t>{0, 4, 5}) {
            const Case& cs = backward_filter_sweep()[i];
            const Problem p = make_problem(cs, rng, false);
            EXPECT_LT(relative_error(run_pass(cs, p), p.expected), tolerance(cs))
                << name_of(cs) << " under " << emu::schedule_name(schedule);
        }
    }
}

namespace {
void expect_plan(const kernels::WgmmaFilterPlan& plan, bool transposed, int tile_columns, int blocks, int splits) {
    EXPECT_EQ(plan.transposed, transposed);
    EXPECT_EQ(plan.tile_columns, tile_columns);
    EXPECT_EQ(plan.blocks, blocks);
    EXPECT_EQ(plan.splits, splits);
}
}  // namespace

// The plan: the orientation, the tile, the blocks and the default split; tf32 refused with the
// reason (MN-major tiles take 16-bit operands only), splits without a workspace refused.
TEST(EmuWgmmaConv, BackwardFilterPlanAndRefusals) {
    // ResNet-50 layer1 3x3 64 -> 64 at batch 32: transposed (M = 576 rows, N = 64), 5 blocks of
    // 128x64; 100,352 positions = 1,568 k tiles; a wave of 264 blocks: 53 splits.
    const IgemmConvShape layer1 = shape(2, 32, 64, 64, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1});
    expect_plan(kernels::conv_wgmma_backward_filter_plan(layer1), true, 64, 5, 53);
    // layer3 3x3 256 -> 256 at 14 x 14: normal, 2 x 18 blocks of 128x128, 6,272 positions (98
    // k tiles): a wave of 132 blocks wants 4 splits.
    expect_plan(kernels::conv_wgmma_backward_filter_plan(shape(2, 32, 256, 256, 1, {14, 14}, {3, 3}, {1, 1}, {1, 1})),
                false, 128, 36, 4);
    // Enough blocks: no split (a 1x1 2048 -> 512 at 7 x 7, 4 x 16 blocks of 128x128: 64 < 66,
    // so 3 splits; 4096 -> 512: 128 blocks, half a wave, none).
    EXPECT_EQ(kernels::conv_wgmma_backward_filter_plan(shape(2, 32, 2048, 512, 1, {7, 7}, {1, 1})).splits, 3);
    EXPECT_EQ(kernels::conv_wgmma_backward_filter_plan(shape(2, 32, 4096, 512, 1, {7, 7}, {1, 1})).splits, 1);
    // The producer's bulk copies of both operands: 16-bit with 64 input channels a group (ResNet's
    // layers), not 32, not past the im2col offsets' width (3-D: 30), not without the producer.
    const kernels::WgmmaSchedule producer{std::nullopt, true};
    EXPECT_TRUE(kernels::conv_wgmma_backward_filter_plan(layer1, kBF, producer).bulk_copies);
    EXPECT_EQ(kernels::conv_wgmma_backward_filter_plan(layer1, kBF, producer).splits, 53);
    EXPECT_FALSE(kernels::conv_wgmma_backward_filter_plan(layer1, kBF).bulk_copies);
    EXPECT_FALSE(
        kernels::conv_wgmma_backward_filter_plan(shape(2, 2, 32, 64, 1, {8, 8}, {3, 3}), kBF, producer).bulk_copies);
    EXPECT_FALSE(
        kernels::conv_wgmma_backward_filter_plan(
            shape(3, 1, 64, 16, 1, {5, 5, 5}, {3, 3, 3}, {1, 1, 1}, {16, 16, 16}, {16, 16, 16}), kF16, producer)
            .bulk_copies);
    EXPECT_TRUE(kernels::conv_wgmma_backward_filter_plan(
                    shape(3, 1, 64, 16, 1, {5, 5, 5}, {3, 3, 3}, {1, 1, 1}, {15, 15, 15}, {15, 15, 15}), kF16, producer)
                    .bulk_copies);
    EXPECT_NE(kernels::conv_wgmma_backward_filter_unsupported_reason(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}), kTF32)
                  .find("bf16 and f16 operands only"),
              std::string::npos);
    EXPECT_EQ(kernels::conv_wgmma_backward_filter_plan(shape(2, 1, 12, 16, 1, {8, 8}, {3, 3})).blocks, 0);
    std::vector<std::uint16_t> data(4096);
    EXPECT_THROW(kernels::conv_wgmma_backward_filter(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}), kTF32, kToF32, {1},
                                                     data.data(), data.data(), nullptr, data.data(), nullptr, Stream{}),
                 NotSupported);
    EXPECT_THROW(kernels::conv_wgmma_backward_filter(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}), kBF, kToF32, {2},
                                                     data.data(), data.data(), nullptr, data.data(), nullptr, Stream{}),
                 InvalidArgument);
}

}  // namespace convkit::wgmma_test
