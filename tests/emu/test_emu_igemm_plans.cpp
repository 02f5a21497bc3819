// The implicit-GEMM convolution's schedules and rules, executed on the CPU by the emulator (and
// on a CUDA device when compiled into test_cuda: tests/emu/igemm_launch.h): split-K's determinism,
// the default splits, the split arguments' errors, refusals with their reasons, tf32 rounding in
// every pass, shared memory and the tile choice, the backward-data plan of a strided layer, the
// cvt emulations and the swizzles' bank groups. The sweeps: tests/emu/test_emu_igemm.cpp.
#include <gtest/gtest.h>

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

#include "convkit/error.h"
#include "igemm_launch.h"
#include "igemm_problem.h"
#include "kernels/conv_igemm.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

using namespace igemm_test;

// Split-K adds the slices in a fixed order, in every pass: the same splits give the same bits on
// every run and under every schedule; other splits agree within rounding, down to more splits than
// k tiles (the extra ones write zeros). For 16-bit operands and for tf32 (k tiles of 16: twice
// as many).
IGEMM_TEST(SplitsAreDeterministic) {
    CONVKIT_SEEDED_RNG(rng);
    for (Direction direction : {Direction::Forward, Direction::BackwardData, Direction::BackwardFilter}) {
        for (IgemmOperand operand : {kBF, kTF32}) {
            const bool tf32 = operand == kTF32, filter = direction == Direction::BackwardFilter;
            // Backward-filter's k: 4 x 81 = 324 positions, 11 tiles of 32 (21 of 16). Forward's and
            // backward-data's: 9 taps x 64 channels = 576, 18 tiles (36).
            Case cs{filter ? shape(2, 4, 16, 16, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1})
                           : shape(2, 2, 64, 64, 1, {5, 5}, {3, 3}, {1, 1}, {1, 1}),
                    kSmall,
                    operand,
                    kToF32,
                    !filter,
                    false,
                    false,
                    direction,
                    4};
            const Problem p = make_problem(cs, rng, false);
            const std::vector<double> once = run(cs, p), again = run(cs, p);
            EXPECT_EQ(once, again) << name_of(cs);
            EXPECT_LT(relative_error(once, p.expected), tolerance(cs)) << name_of(cs);
            const int tiles = filter ? (tf32 ? 21 : 11) : (tf32 ? 36 : 18);
            for (int splits : {1, 2, tiles, tiles + 1}) {
                cs.splits = splits;
                EXPECT_LT(relative_error(run(cs, p), p.expected), tolerance(cs)) << name_of(cs);
            }
        }
    }
    // ResNet's last 3x3 at batch 32 on the large tile: 4 x 36 = 144 blocks, over half a wave of
    // 264: no split. 256 -> 256 channels: 2 x 18 = 36 blocks want 8 splits, 49 k tiles allow 6.
    EXPECT_EQ(kernels::conv_igemm_backward_filter_default_splits(
                  shape(2, 32, 512, 512, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kBF, kLarge),
              1);
    EXPECT_EQ(kernels::conv_igemm_backward_filter_default_splits(
                  shape(2, 32, 256, 256, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kBF, kLarge),
              6);
    // 8 k tiles a split at least (16 blocks would want 17 splits): 4 x 256 = 1024 positions give
    // 32 tiles of 32 (4 splits), 64 of 16 (8).
    const IgemmConvShape long_k = shape(1, 4, 512, 512, 1, {256}, {1});
    EXPECT_EQ(kernels::conv_igemm_backward_filter_default_splits(long_k, kBF, kLarge), 4);
    EXPECT_EQ(kernels::conv_igemm_backward_filter_default_splits(long_k, kTF32, kLarge), 8);
    std::vector<std::uint16_t> operands(4096);
    const IgemmConvShape cs = shape(2, 4, 16, 16, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1});
    EXPECT_THROW(kernels::conv_igemm_backward_filter(cs, kBF, kToF32, kSmall, 2, operands.data(), operands.data(),
                                                     nullptr, std::vector<float>(4).data(), nullptr, Stream{}),
                 InvalidArgument);  // splits without a workspace
    EXPECT_THROW(kernels::conv_igemm_backward_filter(cs, kBF, kToF32, kSmall, 0, operands.data(), operands.data(),
                                                     nullptr, std::vector<float>(4).data(), nullptr, Stream{}),
                 InvalidArgument);
    std::vector<float> out(4096);
    for (int splits : {2, 0}) {  // without a workspace; no split at all
        EXPECT_THROW(kernels::conv_igemm_forward(cs, kBF, kToF32, {kSmall, splits}, operands.data(), operands.data(),
                                                 {}, out.data(), nullptr, Stream{}),
                     InvalidArgument);
        EXPECT_THROW(kernels::conv_igemm_backward_data(cs, kBF, kToF32, {kSmall, splits}, operands.data(),
                                                       operands.data(), {}, out.data(), nullptr, Stream{}),
                     InvalidArgument);
    }
}

// The default split: only where the output tiles leave a wave of a 132-SM H100 unfilled (264
// large or 528 small blocks), to about a wave, each split at least 8 k tiles long, at most 64;
// the workspace is the largest launch's slices.
IGEMM_TEST(DefaultSplitsFillTheGpuWhereTheTilesDoNot) {
    // ResNet-50's last 3x3 (512 -> 512 at 7x7): K = 4608, 144 k tiles of 32 (288 of 16).
    const IgemmConvShape late_batch1 = shape(2, 1, 512, 512, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1});
    const kernels::IgemmPlan batch1 = kernels::conv_igemm_forward_plan(late_batch1, kBF, {});
    ASSERT_EQ(batch1.launches.size(), 1u);
    // M = 49: one row block x 8 column blocks of the small tile want 66 splits; 18 keep 8 tiles each.
    EXPECT_EQ(batch1.launches[0].tile, kSmall);
    EXPECT_EQ(batch1.launches[0].splits, 18);
    EXPECT_EQ(batch1.workspace_bytes(), std::size_t{18} * 49 * 512 * sizeof(float));
    EXPECT_EQ(kernels::conv_igemm_forward_plan(late_batch1, kTF32, {}).launches[0].splits, 36);  // 288 tiles of 16
    // Batch 8: M = 392, 7 x 8 = 56 blocks want 10 splits (of 15 tiles, the last of 9).
    IgemmConvShape late_batch8 = late_batch1;
    late_batch8.batch = 8;
    EXPECT_EQ(kernels::conv_igemm_forward_plan(late_batch8, kBF, {}).launches[0].splits, 10);
    // Batch 32: 25 x 8 = 200 blocks want 3; ResNet's first stage at batch 32 (784 narrow blocks:
    // 64 columns) none.
    IgemmConvShape late_batch32 = late_batch1;
    late_batch32.batch = 32;
    EXPECT_EQ(kernels::conv_igemm_forward_plan(late_batch32, kBF, {}).launches[0].splits, 3);
    const kernels::IgemmPlan early =
        kernels::conv_igemm_forward_plan(shape(2, 32, 64, 64, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1}), kBF, {});
    EXPECT_EQ(early.launches[0].tile, kNarrow);
    EXPECT_EQ(early.launches[0].splits, 1);
    EXPECT_EQ(early.workspace_bytes(), 0u);
    // A short reduction never splits: 64 -> 64 1x1 at batch 1 has 2 k tiles.
    EXPECT_EQ(kernels::conv_igemm_forward_plan(shape(2, 1, 64, 64, 1, {7, 7}, {1, 1}), kBF, {}).launches[0].splits, 1);
    // The variant sweep's small-batch case (tests/kernel_sweeps.h): 64 -> 64 3x3 at 5x5, 18 k tiles.
    const IgemmConvShape sweep_case = shape(2, 1, 64, 64, 1, {5, 5}, {3, 3}, {1, 1}, {1, 1});
    EXPECT_EQ(kernels::conv_igemm_forward_plan(sweep_case, kBF, {}).launches[0].splits, 2);
    EXPECT_EQ(kernels::conv_igemm_backward_data_plan(sweep_case, kBF, {}).launches[0].splits, 2);
    EXPECT_EQ(kernels::conv_igemm_forward_plan(sweep_case, kTF32, {}).launches[0].splits, 4);
    // Backward-data per phase: ResNet-50's strided 3x3 (14x14 -> 7x7) at batch 1 has phases of 1,
    // 2, 2 and 4 taps x 512 channels: 16, 32, 32 and 64 k tiles, 2, 4, 4 and 8 splits; the
    // workspace is the largest (8 splits of 49 rows x 512).
    const kernels::IgemmPlan strided =
        kernels::conv_igemm_backward_data_plan(shape(2, 1, 512, 512, 1, {14, 14}, {3, 3}, {2, 2}, {1, 1}), kBF, {});
    ASSERT_EQ(strided.launches.size(), 4u);
    const std::array<int, 4> phase_splits{2, 4, 4, 8};
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(strided.launches[i].m, 49);
        EXPECT_EQ(strided.launches[i].splits, phase_splits[i]) << "phase " << i;
    }
    EXPECT_EQ(strided.workspace_bytes(), std::size_t{8} * 49 * 512 * sizeof(float));
    // A forced split is kept, a forced tile too; a refused shape plans nothing.
    const kernels::IgemmPlan forced = kernels::conv_igemm_forward_plan(late_batch1, kBF, {kLarge, 3});
    EXPECT_EQ(forced.launches[0].tile, kLarge);
    EXPECT_EQ(forced.launches[0].splits, 3);
    EXPECT_TRUE(kernels::conv_igemm_forward_plan(shape(2, 1, 12, 16, 1, {5, 5}, {3, 3}), kBF, {}).launches.empty());
}

// Refused before any pointer is touched, with the reason in the message.
void expect_refused(const IgemmConvShape& s, const std::string& reason) {
    EXPECT_NE(kernels::conv_igemm_unsupported_reason(s, kBF).find(reason), std::string::npos) << s.to_string();
    auto expect_not_supported = [&](const char* op, const std::function<void()>& call) {
        try {
            call();
            ADD_FAILURE() << op << " did not refuse " << s.to_string();
        } catch (const NotSupported& e) {
            EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(op), std::string::npos) << e.what();
        }
    };
    expect_not_supported("conv_igemm_forward", [&] {
        kernels::conv_igemm_forward(s, kBF, kToF32, {kSmall, 1}, nullptr, nullptr, {}, nullptr, nullptr, Stream{});
    });
    expect_not_supported("conv_igemm_backward_data", [&] {
        kernels::conv_igemm_backward_data(s, kF16, kToBF, {kLarge, 1}, nullptr, nullptr, {}, nullptr, nullptr,
                                          Stream{});
    });
    expect_not_supported("conv_igemm_backward_filter", [&] {
        kernels::conv_igemm_backward_filter(s, kF16, kToF32, kSmall, 1, nullptr, nullptr, nullptr, nullptr, nullptr,
                                            Stream{});
    });
}

IGEMM_TEST(UnsupportedShapesAreRefusedWithTheReason) {
    expect_refused(shape(2, 1, 12, 16, 1, {5, 5}, {3, 3}), "input channels per group 12 not a multiple of 8");
    expect_refused(shape(2, 1, 3, 64, 1, {8, 8}, {7, 7}), "input channels per group 3 not a multiple of 8");
    expect_refused(shape(2, 1, 32, 32, 8, {5, 5}, {3, 3}), "input channels per group 4 not a multiple of 8");
    expect_refused(shape(2, 1, 16, 20, 1, {5, 5}, {3, 3}), "output channels per group 20 not a multiple of 8");
    expect_refused(shape(2, 1, 16, 16, 3, {5, 5}, {3, 3}), "not divisible by groups 3");
    expect_refused(shape(2, 1, 16, 16, 1, {2, 2}, {3, 3}), "kernel is larger than the padded input");
    IgemmConvShape rank4 = shape(2, 1, 16, 16, 1, {5, 5}, {3, 3});
    rank4.rank = 4;
    expect_refused(rank4, "rank 4");
    expect_refused(shape(2, 1 << 16, 16, 16, 1, {256, 256}, {1, 1}), "past 32-bit indices");
    // Backward-data's M (batch x input positions, 2^32 here) is past 32 bits where the forward's
    // (batch x output positions, 2^28 at stride 4) is not: refused for both passes alike.
    expect_refused(shape(2, 1 << 14, 16, 16, 1, {512, 512}, {1, 1}, {4, 4}), "M = 4294967296");
    EXPECT_EQ(kernels::conv_igemm_unsupported_reason(shape(2, 1, 16, 16, 2, {5, 5}, {3, 3}), kBF), "");
    // tf32: 4 channels to a 16-byte vector, so 12 and 4 per group run and 6 does not.
    EXPECT_EQ(kernels::conv_igemm_unsupported_reason(shape(2, 1, 12, 16, 1, {5, 5}, {3, 3}), kTF32), "");
    EXPECT_EQ(kernels::conv_igemm_unsupported_reason(shape(2, 1, 32, 32, 8, {5, 5}, {3, 3}), kTF32), "");
    EXPECT_NE(kernels::conv_igemm_unsupported_reason(shape(2, 1, 6, 16, 1, {5, 5}, {3, 3}), kTF32)
                  .find("input channels per group 6 not a multiple of 4"),
              std::string::npos);
    EXPECT_NE(kernels::conv_igemm_unsupported_reason(shape(2, 1, 16, 18, 1, {5, 5}, {3, 3}), kTF32)
                  .find("output channels per group 18 not a multiple of 4"),
              std::string::npos);
    // Operands off 16-byte alignment (a view at an odd offset) are refused, not faulted on.
    std::vector<std::uint16_t> buffer(4096);
    std::vector<float> out(4096);
    const IgemmConvShape ok = shape(2, 1, 16, 16, 1, {5, 5}, {3, 3}, {1, 1}, {1, 1});
    EXPECT_THROW(kernels::conv_igemm_forward(ok, kBF, kToF32, {kSmall, 1}, buffer.data() + 1, buffer.data(), {},
                                             out.data(), nullptr, Stream{}),
                 InvalidArgument);
    EXPECT_THROW(kernels::conv_igemm_backward_data(ok, kBF, kToF32, {kSmall, 1}, buffer.data(), buffer.data() + 4, {},
                                                   out.data(), nullptr, Stream{}),
                 InvalidArgument);
    EXPECT_THROW(kernels::conv_igemm_backward_filter(ok, kBF, kToF32, kSmall, 1, buffer.data() + 2, buffer.data(),
                                                     nullptr, out.data(), nullptr, Stream{}),
                 InvalidArgument);
    // Backward-filter's tiles are square: the narrow and slim ones are refused by name.
    try {
        kernels::conv_igemm_backward_filter(ok, kBF, kToF32, kNarrow, 1, buffer.data(), buffer.data(), nullptr,
                                            out.data(), nullptr, Stream{});
        ADD_FAILURE() << "the narrow tile ran backward-filter";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("narrow 128x64 tile runs forward and backward-data only"),
                  std::string::npos)
            << e.what();
    }
    try {
        kernels::conv_igemm_backward_filter(ok, kBF, kToF32, kSlim, 1, buffer.data(), buffer.data(), nullptr,
                                            out.data(), nullptr, Stream{});
        ADD_FAILURE() << "the slim tile ran backward-filter";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("slim 128x32 tile runs forward and backward-data only"), std::string::npos)
            << e.what();
    }
    EXPECT_THROW(kernels::conv_igemm_forward(shape(2, 1, 16, 16, 1, {5, 5}, {3, 3}), kBF, kToF32, {kSmall, 1}, nullptr,
                                             nullptr, {}, nullptr, nullptr, Stream{}),
                 InvalidArgument);
    // tf32 operands write float32 only.
    for (IgemmOutput output : {kToBF, kToF16}) {
        EXPECT_THROW(kernels::conv_igemm_forward(ok, kTF32, output, {kSmall, 1}, buffer.data(), buffer.data(), {},
                                                 out.data(), nullptr, Stream{}),
                     InvalidArgument);
        EXPECT_THROW(kernels::conv_igemm_backward_data(ok, kTF32, output, {kSmall, 1}, buffer.data(), buffer.data(), {},
                                                       out.data(), nullptr, Stream{}),
                     InvalidArgument);
        EXPECT_THROW(kernels::conv_igemm_backward_filter(ok, kTF32, output, kSmall, 1, buffer.data(), buffer.data(),
                                                         nullptr, out.data(), nullptr, Stream{}),
                     InvalidArgument);
    }
}

// tf32 operands are rounded to nearest, ties away from zero (cvt.rna), in every pass and for
// both operands: one operand is 1 + 2^-11 everywhere (a tie between 1 and 1 + 2^-10), the other
// 1. Rounded as cvt.rna does, each product is 1 + 2^-10 and every sum (at most a few hundred
// terms) is exact in float; truncation, or ties to even, would give 1 a product.
IGEMM_TEST(Tf32OperandsAreRoundedToNearestTiesAway) {
    CONVKIT_SEEDED_RNG(rng);
    const double tie = 1 + std::ldexp(1.0, -11), rounded = 1 + std::ldexp(1.0, -10);
    for (Direction direction : {Direction::Forward, Direction::BackwardData, Direction::BackwardFilter}) {
        const Case cs{shape(2, 2, 8, 12, 1, {6, 7}, {3, 3}, {2, 1}, {1, 1}),
                      direction == Direction::BackwardData ? kLarge : kSmall,
                      kTF32,
                      kToF32,
                      false,
                      false,
                      false,
                      direction,
                      direction == Direction::BackwardFilter ? 2 : 1};
        // x, w, dy: the tie in each of the two operands of the pass in turn.
        const bool filter = direction == Direction::BackwardFilter;
        const std::size_t first = direction == Direction::Forward ? 0 : 2, second = filter ? 0 : 1;
        for (std::size_t tied : {first, second}) {
            std::array<double, 3> stored{1, 1, 1}, as_read{1, 1, 1};
            stored[tied] = tie;
            as_read[tied] = rounded;
            const Problem p = make_problem(cs, rng, false, &stored);
            const std::vector<double> expected = make_problem(cs, rng, false, &as_read).expected;
            const std::vector<double> y = run(cs, p);
            EXPECT_EQ(differing(y, expected), 0u) << name_of(cs) << ", the tie in operand " << (tied == first ? 1 : 2);
        }
    }
}

// The large tile needs the opt-in above 48 KiB (its launch in the sweep passes the launch
// checks only with it); both stay within sm_90's 227 KiB. The default tile by block count.
IGEMM_TEST(SharedMemoryAndTileChoice) {
    EXPECT_EQ(kernels::conv_igemm_shared_bytes(kLarge), 4u * (128 + 128) * 32 * 2);
    EXPECT_EQ(kernels::conv_igemm_shared_bytes(kSmall), 3u * (64 + 64) * 32 * 2);
    EXPECT_GT(kernels::conv_igemm_shared_bytes(kLarge), 48u * 1024);  // kernels/launch.cuh's limits
    EXPECT_LE(kernels::conv_igemm_shared_bytes(kLarge), 227u * 1024);
    EXPECT_EQ(kernels::conv_igemm_shared_bytes(kNarrow), 4u * (128 + 64) * 32 * 2);
    EXPECT_EQ(kernels::conv_igemm_shared_bytes(kSlim), 4u * (128 + 32) * 32 * 2);
    // 32 columns or fewer on as many blocks take the slim tile, 33 the narrow one; a 3-D first
    // layer's backward-data (8 input channels, the padded 3) too.
    EXPECT_EQ(kernels::conv_igemm_default_tile(shape(2, 32, 64, 32, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1})), kSlim);
    EXPECT_EQ(kernels::conv_igemm_default_tile(shape(2, 32, 64, 8, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1})), kSlim);
    EXPECT_EQ(kernels::conv_igemm_default_tile(shape(2, 32, 64, 40, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1})), kNarrow);
    EXPECT_EQ(kernels::conv_igemm_backward_data_plan(
                  shape(3, 8, 8, 64, 1, {16, 112, 112}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}), kBF, {})
                  .launches.at(0)
                  .tile,
              kSlim);
    // ResNet's layer1 3x3 at batch 32: 784 blocks of 128 rows; 64 columns take the narrow tile,
    // 65 (two column tiles on either) and 128 the large one; layer4's 7x7 gives too few blocks.
    EXPECT_EQ(kernels::conv_igemm_default_tile(shape(2, 32, 64, 64, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1})), kNarrow);
    EXPECT_EQ(kernels::conv_igemm_default_tile(shape(2, 32, 64, 65, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1})), kLarge);
    EXPECT_EQ(kernels::conv_igemm_default_tile(shape(2, 32, 64, 128, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1})), kLarge);
    EXPECT_EQ(kernels::conv_igemm_default_tile(shape(2, 1, 512, 512, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1})), kSmall);
    EXPECT_EQ(kernels::conv_igemm_default_tile(shape(2, 1, 64, 64, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1})), kSmall);
    // Backward-data's phases choose the same way: ResNet's layer1 at batch 32 (C = 64 columns).
    for (const kernels::IgemmLaunchPlan& l :
         kernels::conv_igemm_backward_data_plan(shape(2, 32, 64, 256, 1, {56, 56}, {1, 1}), kBF, {}).launches) {
        EXPECT_EQ(l.tile, kNarrow);
        EXPECT_EQ(l.splits, 1);
    }
    // Backward-filter by its own GEMM (output channels x taps x channels, reduced over positions):
    // ResNet's layer1 3x3 at batch 32 runs its 64 x 576 filter on the small tile (half a large
    // tile's rows idle); a 2048 x 4608 weight (16 x 36 = 576 large blocks) on the large one; layer3's
    // 256 x 2304 at batch 32 too (36 large blocks, 196 k tiles: split 8 ways), but not at batch 1
    // (7 k tiles: no split, 36 blocks).
    EXPECT_EQ(
        kernels::conv_igemm_backward_filter_default_tile(shape(2, 32, 64, 64, 1, {56, 56}, {3, 3}, {1, 1}, {1, 1})),
        kSmall);
    EXPECT_EQ(
        kernels::conv_igemm_backward_filter_default_tile(shape(2, 1, 512, 2048, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1})),
        kLarge);
    EXPECT_EQ(
        kernels::conv_igemm_backward_filter_default_tile(shape(2, 32, 256, 256, 1, {14, 14}, {3, 3}, {1, 1}, {1, 1})),
        kLarge);
    EXPECT_EQ(
        kernels::conv_igemm_backward_filter_default_tile(shape(2, 1, 256, 256, 1, {14, 14}, {3, 3}, {1, 1}, {1, 1})),
        kSmall);
    // Layer4's 512 x 4608 at batch 32: 144 large blocks, past half a wave, so unsplit: still large.
    const IgemmConvShape layer4 = shape(2, 32, 512, 512, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1});
    EXPECT_EQ(kernels::conv_igemm_backward_filter_default_tile(layer4), kLarge);
    EXPECT_EQ(kernels::conv_igemm_backward_filter_default_splits(layer4, kBF, kLarge), 1);
}

// Backward-data's plan: the phases of the stride that have positions, each over only the taps
// that reach it; all in one launch where every phase has the same positions and taps per dim,
// else one launch a phase. A 4x4/s2 layer runs a quarter of the dense gather's multiply-adds and
// mma.sync instructions (two taps per dim a phase, not four); kernel == stride one tap a phase;
// a 3x3/s2 layer's phases have 1, 2, 2 and 4 taps (four launches); dilation 2 at stride 2 with
// padding 1 reaches only the odd phases, the others an empty reduction; a stride past the input
// skips the phases without positions; stride 1 is one launch.
IGEMM_TEST(BackwardDataPlanRunsOnlyThePhasesTaps) {
    // 4x4/s2/p1, 16x16 dx, 64 -> 64 channels: dense M = 2 * 256 = 512, k = 16 taps * 64.
    const IgemmConvShape dcgan = shape(2, 2, 64, 64, 1, {16, 16}, {4, 4}, {2, 2}, {1, 1});
    const kernels::IgemmPlan plan = kernels::conv_igemm_backward_data_plan(dcgan, kBF, {kSmall, 1});
    ASSERT_EQ(plan.launches.size(), 1u);
    const kernels::IgemmLaunchPlan& all = plan.launches[0];
    EXPECT_EQ(all.phases, 4);
    EXPECT_EQ(all.m, 2 * 8 * 8);
    EXPECT_EQ(all.n, 64);
    EXPECT_EQ(all.k, 4 * 64);
    EXPECT_EQ(all.tile, kSmall);
    EXPECT_EQ(all.phase, (std::array<std::int64_t, 3>{0, 0, 0}));
    const std::int64_t dense_multiply_adds = 2 * 16 * 16 * 64 * 16 * 64;
    EXPECT_EQ(plan.multiply_adds() * 4, dense_multiply_adds);
    // The dense gather on the small tile: 512 / 64 row blocks, one column block, 16 * 64 / 32
    // k tiles, 4 warps of 2 x 4 m16n8 tiles, two mma steps a k tile.
    const std::int64_t dense_mma = 512 / 64 * 1 * (16 * 64 / 32) * 4 * 2 * 4 * 2;
    EXPECT_EQ(plan.mma_instructions() * 4, dense_mma);
    // tf32: k tiles of 16, m16n8k8: the same quarter.
    EXPECT_EQ(kernels::conv_igemm_backward_data_plan(dcgan, kTF32, {kSmall, 1}).mma_instructions() * 4, dense_mma * 2);
    // Stride 1: the dense gather is the one phase.
    const kernels::IgemmPlan dense = kernels::conv_igemm_backward_data_plan(
        shape(2, 2, 64, 64, 1, {16, 16}, {4, 4}, {1, 1}, {1, 1}), kBF, {kSmall, 1});
    ASSERT_EQ(dense.launches.size(), 1u);
    EXPECT_EQ(dense.launches[0].k, 16 * 64);
    EXPECT_EQ(dense.multiply_adds(), dense_multiply_adds);
    // kernel == stride (2x2x2/s2, 3-D): one tap a phase, 8 phases in one launch.
    const kernels::IgemmPlan unet = kernels::conv_igemm_backward_data_plan(
        shape(3, 1, 16, 8, 1, {4, 4, 4}, {2, 2, 2}, {2, 2, 2}), kF16, {kLarge, 1});
    ASSERT_EQ(unet.launches.size(), 1u);
    EXPECT_EQ(unet.launches[0].phases, 8);
    EXPECT_EQ(unet.launches[0].k, 8);
    EXPECT_EQ(unet.launches[0].m, 8);
    EXPECT_EQ(unet.launches[0].tile, kLarge);
    // An odd input (9x9 under a 4x4/s2 kernel): phase 0 has 5 rows a dim, phase 1 four, so four
    // launches of their own; so does 3x3/s2 (ResNet's strided layers) on an even input, whose
    // phases have 1, 2, 2 and 4 taps.
    const kernels::IgemmPlan odd =
        kernels::conv_igemm_backward_data_plan(shape(2, 1, 16, 16, 1, {9, 9}, {4, 4}, {2, 2}, {1, 1}), kBF, {});
    ASSERT_EQ(odd.launches.size(), 4u);
    EXPECT_EQ(odd.launches[0].m, 25);
    EXPECT_EQ(odd.launches[3].m, 16);
    EXPECT_EQ(odd.launches[3].phase, (std::array<std::int64_t, 3>{1, 1, 0}));
    const kernels::IgemmPlan resnet =
        kernels::conv_igemm_backward_data_plan(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}, {2, 2}, {1, 1}), kBF, {});
    ASSERT_EQ(resnet.launches.size(), 4u);
    const std::array<std::int64_t, 4> resnet_taps{1, 2, 2, 4};
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(resnet.launches[i].phases, 1);
        EXPECT_EQ(resnet.launches[i].k, resnet_taps[i] * 16) << "phase " << i;
    }
    // Dilation 2 at stride 2, padding 1: phase + 1 must be even, so only phase 1 per dim has taps
    // (all three of the kernel's); the other three phases an empty reduction.
    const kernels::IgemmPlan dilated =
        kernels::conv_igemm_backward_data_plan(shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}, {2, 2}, {1, 1}, {2, 2}), kBF, {});
    ASSERT_EQ(dilated.launches.size(), 4u);
    for (const kernels::IgemmLaunchPlan& l : dilated.launches) {
        const bool reached = l.phase[0] == 1 && l.phase[1] == 1;
        EXPECT_EQ(l.k, reached ? 9 * 16 : 0);
        EXPECT_EQ(l.mma_instructions == 0, !reached);
    }
    // A 1-D input of 2 positions at stride 3 (output 1 position): phase 2 has no position.
    const kernels::IgemmPlan short_input =
        kernels::conv_igemm_backward_data_plan(shape(1, 1, 8, 8, 1, {2}, {1}, {3}), kBF, {});
    ASSERT_EQ(short_input.launches.size(), 2u);
    EXPECT_EQ(short_input.launches[0].k, 8);
    EXPECT_EQ(short_input.launches[1].k, 0);  // kernel 1 under stride 3: phase 1 gets no tap
    // Unforced, a launch chooses its tile from its blocks: 4 phases of 32 * 28 * 28 rows (196
    // large row blocks each) x 1 column block in one launch, 784 blocks: large (each phase alone
    // would have been under 264: small). Where the phases launch one by one each counts its own:
    // 3x3/s2 at 28x28 (phases of 32 x 14 x 14 rows, 49 large blocks each), small.
    const IgemmConvShape big = shape(2, 32, 128, 128, 1, {56, 56}, {4, 4}, {2, 2}, {1, 1});
    const kernels::IgemmPlan big_plan = kernels::conv_igemm_backward_data_plan(big, kBF, {});
    ASSERT_EQ(big_plan.launches.size(), 1u);
    EXPECT_EQ(big_plan.launches[0].tile, kLarge);
    EXPECT_EQ(big_plan.launches[0].splits, 1);
    const IgemmConvShape strided = shape(2, 32, 128, 128, 1, {28, 28}, {3, 3}, {2, 2}, {1, 1});
    for (const kernels::IgemmLaunchPlan& l : kernels::conv_igemm_backward_data_plan(strided, kBF, {}).launches)
        EXPECT_EQ(l.tile, kSmall);
    // The split slices of a launch of phases hold every phase's rows: 4 phases x 128 rows x 64
    // channels x 2 splits x 4 bytes.
    EXPECT_EQ(kernels::conv_igemm_backward_data_plan(dcgan, kBF, {kSmall, 2}).workspace_bytes(),
              std::size_t{4} * 128 * 64 * 2 * 4);
}

// The cvt emulations against values worked out from the formats (PTX ISA: cvt.rn rounds to
// nearest even; NaN stays NaN; overflow to infinity; f16 subnormals kept).
#ifndef CONVKIT_IGEMM_ON_DEVICE  // the emulator's cvt, checked directly
IGEMM_TEST(ConversionsRoundToNearestEven) {
    using emu::ptx::float_to_bfloat16;
    using emu::ptx::float_to_float16;
    EXPECT_EQ(float_to_bfloat16(1.0f), 0x3f80);
    EXPECT_EQ(float_to_bfloat16(1.0f + 0x1p-8f), 0x3f80);             // tie, to even
    EXPECT_EQ(float_to_bfloat16(1.0f + 3 * 0x1p-8f), 0x3f82);         // tie, to even (up)
    EXPECT_EQ(float_to_bfloat16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);  // past the tie
    EXPECT_EQ(float_to_bfloat16(-2.5f), 0xc020);
    EXPECT_EQ(float_to_bfloat16(3.4e38f), 0x7f80);  // overflow
    EXPECT_EQ(float_to_bfloat16(std::numeric_limits<float>::quiet_NaN()) & 0x7fc0, 0x7fc0);
    EXPECT_EQ(float_to_float16(1.0f), 0x3c00);
    EXPECT_EQ(float_to_float16(0.1f), 0x2e66);
    EXPECT_EQ(float_to_float16(-2.0f), 0xc000);
    EXPECT_EQ(float_to_float16(65504.0f), 0x7bff);
    EXPECT_EQ(float_to_float16(65519.0f), 0x7bff);
    EXPECT_EQ(float_to_float16(65520.0f), 0x7c00);         // the tie past the largest
    EXPECT_EQ(float_to_float16(1.0f + 0x1p-11f), 0x3c00);  // tie, to even
    EXPECT_EQ(float_to_float16(1.0f + 3 * 0x1p-11f), 0x3c02);
    EXPECT_EQ(float_to_float16(0x1p-14f), 0x0400);             // smallest normal
    EXPECT_EQ(float_to_float16(0x1p-24f), 0x0001);             // smallest subnormal
    EXPECT_EQ(float_to_float16(0x1p-25f), 0x0000);             // tie, to even (zero)
    EXPECT_EQ(float_to_float16(3 * 0x1p-25f), 0x0002);         // tie, to even (up)
    EXPECT_EQ(float_to_float16(0x1p-14f - 0x1p-25f), 0x0400);  // rounds up into the normals
    EXPECT_EQ(float_to_float16(-0.0f), 0x8000);
    EXPECT_EQ(float_to_float16(std::numeric_limits<float>::infinity()), 0x7c00);
    EXPECT_EQ(float_to_float16(std::numeric_limits<float>::quiet_NaN()) & 0x7e00, 0x7e00);
    for (std::uint32_t bits = 0; bits < 0x7c00; bits += 7) {  // every f16 survives the round trip
        const auto h = static_cast<std::uint16_t>(bits);
        EXPECT_EQ(float_to_float16(emu::ptx::float16_to_float(h)), h);
        EXPECT_EQ(emu::ptx::float16_to_float(h), static_cast<float>(float16_value(h)));
    }
}

// ldmatrix (.trans) reads one 16-byte chunk of 8 consecutive rows of a tile: the swizzles must put
// those 8 chunks in 8 different 16-byte bank groups of a 128-byte line (else the read is 2- to
// 8-way conflicted). The [n][k] tile's rows are 64 bytes; a [k][n] tile's 16-bit rows 64 (slim),
// 128 (narrow) or 256 bytes (large). For every tile, chunk and group of 8 rows.
template <class Tile>
void expect_conflict_free_ldmatrix_rows() {
    using Kn = kernels::igemm::KnTile<Tile, IgemmOperand::BFloat16>;
    const auto bank_group = [](int slot) { return slot * 2 / 16 % 8; };  // 16-bit slots to 16-byte groups
    for (int first = 0; first < Kn::kRows; first += 8) {
        for (int chunk = 0; chunk < Kn::kChunks; ++chunk) {
            std::array<bool, 8> kn_used{}, nk_used{};
            for (int row = first; row < first + 8; ++row) {
                kn_used[static_cast<std::size_t>(bank_group(kernels::igemm::swizzled_kn<Kn>(row, chunk)))] = true;
                if (chunk < 4)
                    nk_used[static_cast<std::size_t>(bank_group(kernels::igemm::swizzled(row, chunk)))] = true;
            }
            EXPECT_EQ(std::count(kn_used.begin(), kn_used.end(), true), 8)
                << Tile::kBlockN << " columns, [k][n] rows " << first << "+, chunk " << chunk;
            if (chunk < 4) {
                EXPECT_EQ(std::count(nk_used.begin(), nk_used.end(), true), 8) << "[n][k] rows " << first << "+";
            }
        }
    }
}

IGEMM_TEST(SwizzlesSpreadLdmatrixRowsOverEveryBankGroup) {
    expect_conflict_free_ldmatrix_rows<kernels::igemm::LargeTile>();
    expect_conflict_free_ldmatrix_rows<kernels::igemm::NarrowTile>();
    expect_conflict_free_ldmatrix_rows<kernels::igemm::SlimTile>();
    expect_conflict_free_ldmatrix_rows<kernels::igemm::SmallTile>();
}
#endif

}  // namespace
}  // namespace convkit
