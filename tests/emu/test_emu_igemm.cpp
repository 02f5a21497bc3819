// The tensor-core implicit-GEMM convolution (kernels/conv_igemm.cu: forward and backward-data;
// kernels/conv_igemm_filter.cu: backward-filter) executed on the CPU by the emulator, against a
// float64 loop straight from the definition (tests/emu/igemm_problem.h: channels-last x, KRSC w):
// a sweep over rank 1-3, tile edges, strides, dilations, groups, batch 1, channel counts off the
// tile, every operand type (bf16, f16, and float32 as tf32), every output type, every tile and
// several split-K counts; small integers bit for bit; every epilogue option, the staged, paired
// and one-value-at-a-time output paths, a residual that is the output. The splits, plans,
// refusals and roundings: tests/emu/test_emu_igemm_plans.cpp. Both are compiled a second time
// into test_cuda (tests/test_cuda_igemm.cpp, label gpu): the same cases on a CUDA device, a GPU or
// the emulated one (tests/emu/igemm_launch.h).
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

// Tile edges: the small tile is 64 x 64, the large 128 x 128, the narrow 128 x 64, the slim
// 128 x 32 (GEMM rows M = N * output positions, columns = output channels per group); k runs 32
// at a time through 3 or 4 stages.
const std::vector<Case>& forward_sweep() {
    static const std::vector<Case> cases = {
        // 2-D, M = 64 exactly one small tile; then M = 65 just past it.
        {shape(2, 1, 16, 16, 1, {8, 8}, {3, 3}, {1, 1}, {1, 1}), kSmall, kBF, kToF32, false, false, false},
        {shape(2, 1, 16, 24, 1, {5, 13}, {3, 3}, {1, 1}, {1, 1}), kSmall, kF16, kToF16, true, false, false},
        // M = 128 one large tile; 136 output channels, 8 past the large tile's 128 columns.
        {shape(2, 2, 32, 136, 1, {8, 8}, {3, 3}, {1, 1}, {1, 1}), kLarge, kBF, kToBF, true, true, true},
        // 1-D, M = 129 just past the 128-row tiles; 8 channels: K = 24 < one k tile.
        {shape(1, 1, 8, 8, 1, {129}, {3}, {1}, {1}), kNarrow, kF16, kToF32, false, false, true},
        // The slim tile one past its edges: M = 129, 40 columns (8 past its 32).
        {shape(1, 1, 16, 40, 1, {129}, {3}, {1}, {1}), kSlim, kBF, kToBF, true, true, true},
        // Strides, dilations, both.
        {shape(2, 2, 24, 16, 1, {9, 9}, {3, 3}, {2, 2}, {1, 1}), kSmall, kBF, kToBF, true, true, false},
        {shape(2, 1, 16, 16, 1, {10, 10}, {3, 3}, {1, 1}, {2, 2}, {2, 2}), kSlim, kF16, kToBF, false, false, true},
        {shape(2, 1, 8, 8, 1, {11, 12}, {3, 2}, {2, 3}, {2, 1}, {2, 3}), kNarrow, kBF, kToF16, true, false, true},
        // Groups: 2 of 16 -> 24, 4 of 8 -> 8 (cp.async vectors exactly one group wide), 3 of 8 -> 72.
        {shape(2, 2, 32, 48, 2, {6, 6}, {3, 3}, {1, 1}, {1, 1}), kSmall, kBF, kToF32, true, false, false},
        {shape(2, 1, 32, 32, 4, {7, 7}, {3, 3}, {1, 1}, {1, 1}), kLarge, kF16, kToF16, false, true, false},
        {shape(2, 2, 24, 216, 3, {5, 5}, {3, 3}, {2, 2}, {1, 1}), kSmall, kF16, kToF32, true, false, true},
        // 3-D: K = 27 taps x 8 channels; strided and dilated with an odd-shaped kernel.
        {shape(3, 1, 8, 16, 1, {4, 5, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}), kSmall, kBF, kToBF, true, false, true},
        {shape(3, 2, 16, 8, 1, {5, 6, 7}, {2, 3, 1}, {2, 1, 2}, {1, 0, 0}, {1, 2, 1}), kNarrow, kF16, kToF32, false,
         true, false},
        {shape(3, 1, 16, 32, 2, {3, 4, 4}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}), kSmall, kBF, kToF16, false, false, false},
        // 1-D strided, dilated, every epilogue option at once.
        {shape(1, 3, 40, 56, 1, {50}, {5}, {3}, {4}, {2}), kSmall, kBF, kToF16, true, true, true},
        // 1x1 (ResNet's bottleneck ends), a 1x5 kernel with asymmetric stride.
        {shape(2, 2, 64, 72, 1, {7, 7}, {1, 1}), kLarge, kBF, kToBF, true, true, true},
        {shape(2, 1, 16, 32, 1, {6, 11}, {1, 5}, {1, 2}, {0, 2}), kSmall, kF16, kToF16, true, false, false},
        // Long K (1152 = 36 k tiles through the ring), output 4 positions.
        {shape(2, 1, 128, 16, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}), kSmall, kBF, kToF32, false, false, false},
        {shape(2, 1, 96, 24, 1, {3, 3}, {3, 3}, {1, 1}, {1, 1}), kNarrow, kF16, kToF32, true, false, false},
        // Padding wider than the kernel's reach in places, and a kernel as large as the input.
        {shape(2, 1, 16, 16, 1, {3, 3}, {3, 3}, {1, 1}, {2, 2}), kSmall, kBF, kToBF, false, true, false},
        {shape(2, 4, 24, 16, 1, {5, 5}, {5, 5}), kLarge, kF16, kToF16, true, true, true},
    };
    return cases;
}

// Float32 operands as tf32: channels per group a multiple of 4 (a 16-byte vector), k tiles of 16
// (so K = 36 is 2 full tiles and a partial one), the same tile edges, strides, dilations, groups,
// ranks and batch 1 as the 16-bit sweep; each geometry forward, backward-data and backward-filter
// (split 1, 2, 3 or 5 ways), tiles alternating.
const std::vector<Case>& tf32_sweep() {
    static const std::vector<Case> cases = [] {
        const std::vector<Case> geometries = {
            // M = 64 exactly one small tile; M = 65 just past it with 4 channels (K = 36).
            {shape(2, 1, 12, 20, 1, {8, 8}, {3, 3}, {1, 1}, {1, 1}), kSmall, kTF32, kToF32, true, false, false},
            {shape(2, 1, 4, 4, 1, {5, 13}, {3, 3}, {1, 1}, {1, 1}), kSmall, kTF32, kToF32, false, false, true},
            // M = 128 one large tile; 132 output channels, 4 past the large tile's columns.
            {shape(2, 2, 16, 132, 1, {8, 8}, {3, 3}, {1, 1}, {1, 1}), kLarge, kTF32, kToF32, true, true, true},
            // 1-D, M = 129 just past the 128-row tiles; K = 12 < one k tile.
            {shape(1, 1, 4, 4, 1, {129}, {3}, {1}, {1}), kNarrow, kTF32, kToF32, false, true, false},
            // The slim tile one past its edges: M = 129, 36 columns (4 past its 32).
            {shape(1, 1, 8, 36, 1, {129}, {3}, {1}, {1}), kSlim, kTF32, kToF32, true, false, true},
            // Strides; strides and dilations with an odd-shaped kernel.
            {shape(2, 2, 12, 8, 1, {9, 9}, {3, 3}, {2, 2}, {1, 1}), kSmall, kTF32, kToF32, true, true, false},
            {shape(2, 1, 8, 12, 1, {11, 12}, {3, 2}, {2, 3}, {2, 1}, {2, 3}), kLarge, kTF32, kToF32, false, false,
             true},
            // Groups: 2 of 4 -> 4 (a vector exactly one group wide), 3 of 4 -> 12.
            {shape(2, 2, 8, 8, 2, {6, 6}, {3, 3}, {1, 1}, {1, 1}), kSmall, kTF32, kToF32, true, false, false},
            {shape(2, 1, 12, 36, 3, {5, 5}, {3, 3}, {2, 2}, {1, 1}), kLarge, kTF32, kToF32, false, true, true},
            // 3-D: K = 27 taps x 4 channels; strided and dilated with an odd-shaped kernel.
            {shape(3, 1, 4, 8, 1, {4, 5, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}), kSmall, kTF32, kToF32, true, false,
             true},
            {shape(3, 2, 8, 4, 1, {5, 6, 7}, {2, 3, 1}, {2, 1, 2}, {1, 0, 0}, {1, 2, 1}), kNarrow, kTF32, kToF32, false,
             true, false},
            // 1x1 (ResNet's bottleneck ends), 72 columns: 8 past the narrow tile's 64; long K
            // (1152 = 72 k tiles through the ring).
            {shape(2, 2, 64, 72, 1, {7, 7}, {1, 1}), kNarrow, kTF32, kToF32, true, true, true},
            {shape(2, 1, 128, 16, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}), kSmall, kTF32, kToF32, false, false, false},
            // Batch 1, 1-D strided and dilated, every epilogue option; a kernel as large as the input.
            {shape(1, 1, 20, 28, 1, {50}, {5}, {3}, {4}, {2}), kSmall, kTF32, kToF32, true, true, true},
            {shape(2, 4, 12, 8, 1, {5, 5}, {5, 5}), kLarge, kTF32, kToF32, true, true, true},
        };
        std::vector<Case> all = geometries;
        int i = 0;
        for (Case c : geometries) {
            c.direction = Direction::BackwardData;
            c.tile = std::array{kLarge, kSmall, kNarrow, kSlim}[static_cast<std::size_t>(i % 4)];
            all.push_back(c);
            c.direction = Direction::BackwardFilter;
            c.bias = c.relu = false;
            c.residual = i % 3 == 1;
            c.splits = std::array{1, 2, 3, 5}[static_cast<std::size_t>(i % 4)];
            c.tile = i % 4 == 1 || i % 4 == 2 ? kLarge : kSmall;
            all.push_back(c);
            ++i;
        }
        return all;
    }();
    return cases;
}

// Strided backward-data, run per phase of the stride (kernels/conv_phase.h): strides 2-3, mixed
// per dim; kernels smaller than the stride (phases no tap reaches: the epilogue of 0), equal to it
// (one tap a phase, U-Net's up-convolutions) and larger (DCGAN's 4x4/s2); dilation sharing a
// factor with the stride (only some phases reached); padding; groups; rank 1-3; batch 1; phases
// whose rows fall just past the 64 and 128 tile edges; every epilogue option; bf16, f16 and tf32.
const std::vector<Case>& strided_backward_data_sweep() {
    static const std::vector<Case> cases = [] {
        std::vector<Case> all = {
            // 4x4/s2/p1 (DCGAN): 2x2 taps a phase; 1x1/s2 (ResNet's downsample): three phases of four
            // without a tap.
            {shape(2, 1, 16, 16, 1, {8, 8}, {4, 4}, {2, 2}, {1, 1}), kSmall, kBF, kToBF, true, false, true},
            {shape(2, 1, 16, 8, 1, {7, 7}, {1, 1}, {2, 2}), kLarge, kF16, kToF32, true, true, true},
            // kernel == stride, padding 0 (U-Net): a plain GEMM a phase; 3-D 2x2x2/s2 (3D U-Net).
            {shape(2, 2, 8, 16, 1, {6, 10}, {2, 2}, {2, 2}), kLarge, kF16, kToF16, false, true, false},
            {shape(3, 1, 8, 8, 1, {4, 4, 6}, {2, 2, 2}, {2, 2, 2}), kSmall, kBF, kToF32, true, false, false},
            // Kernel 2 under stride 3 (a third of the phases without taps per dim), every epilogue option.
            {shape(2, 1, 8, 16, 1, {7, 8}, {2, 2}, {3, 3}), kSmall, kBF, kToF32, true, true, true},
            // Mixed strides, kernels, padding and dilation: dilation 2 at stride 2 reaches only the
            // phases with phase + padding even; groups of 16 -> 8.
            {shape(2, 1, 32, 16, 2, {9, 11}, {3, 5}, {2, 3}, {1, 2}, {2, 1}), kLarge, kF16, kToBF, false, false, true},
            {shape(2, 2, 16, 24, 1, {8, 9}, {3, 3}, {2, 2}, {1, 1}, {2, 2}), kSmall, kBF, kToF16, true, false, false},
            // 1-D: batch 1, 130 positions at stride 2 (65 a phase, just past the small tile); 3-D
            // mixed stride with padding and a dilation of 3 at stride 3 (gcd 3: one phase of three).
            {shape(1, 1, 8, 16, 1, {130}, {3}, {2}, {1}), kSmall, kF16, kToF16, true, true, false},
            {shape(3, 1, 16, 8, 1, {4, 5, 7}, {3, 2, 3}, {2, 1, 3}, {1, 0, 2}, {1, 1, 3}), kLarge, kBF, kToBF, true,
             true, true},
            // tf32 (k tiles of 16): 4x4/s2 with 4 taps x 12 channels = 3 k tiles a phase; batch 1,
            // 258 positions at stride 2 (129 a phase, just past the large tile); stride (3, 2) with a
            // kernel under the stride in one dim and dilation 2 in the other, groups of 4.
            {shape(2, 2, 4, 12, 1, {6, 6}, {4, 4}, {2, 2}, {1, 1}), kSmall, kTF32, kToF32, false, true, true},
            {shape(1, 1, 4, 8, 1, {258}, {4}, {2}, {1}), kLarge, kTF32, kToF32, true, false, false},
            {shape(2, 1, 8, 8, 2, {7, 8}, {2, 3}, {3, 2}, {0, 1}, {1, 2}), kSmall, kTF32, kToF32, true, true, false},
        };
        for (Case& c : all) c.direction = Direction::BackwardData;
        return all;
    }();
    return cases;
}

// Split-K in the forward and backward-data passes: k tiles dealt out to 2-7 ranges, some splits
// with fewer tiles than the others, some with none at all (7 splits of 3 tiles), across tile edges,
// groups, ranks 1-3, strided backward-data phases (one a tap, none a tap), bf16, f16 and tf32, and
// every epilogue option, which the kernel adding the slices runs.
const std::vector<Case>& split_sweep() {
    static const std::vector<Case> cases = [] {
        std::vector<Case> all = {
            // Forward. K = 1152 (36 tiles of 32, 72 of 16) in 3 and 4 ranges.
            {shape(2, 1, 128, 16, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}), kSmall, kBF, kToF32, true, false, true},
            {shape(2, 1, 128, 16, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}), kLarge, kTF32, kToF32, true, true, true},
            // K = 864 (27 tiles) in 5 ranges of 6 and a last of 3; M = 18 off every tile.
            {shape(2, 1, 96, 24, 1, {3, 3}, {3, 3}, {1, 1}, {1, 1}), kLarge, kF16, kToF16, false, true, false},
            // Groups (2 of 16 -> 24): 5 tiles in 2 ranges; M = 72 past the small tile.
            {shape(2, 2, 32, 48, 2, {6, 6}, {3, 3}, {1, 1}, {1, 1}), kSmall, kBF, kToBF, true, false, false},
            // 3-D, K = 96 (3 tiles) in 7 ranges: four of them empty, their slices zeros.
            {shape(3, 2, 16, 8, 1, {5, 6, 7}, {2, 3, 1}, {2, 1, 2}, {1, 0, 0}, {1, 2, 1}), kLarge, kF16, kToF32, false,
             true, false},
            // 1-D strided and dilated, K = 200 (7 tiles), every epilogue option.
            {shape(1, 3, 40, 56, 1, {50}, {5}, {3}, {4}, {2}), kSmall, kBF, kToF16, true, true, true},
            // The narrow tile split (the default never splits it: it is chosen only where its
            // blocks fill the GPU): M = 162 past the tile's 128 rows, N = 40 within its 64
            // columns, K = 576 (18 tiles of 32) in 4 ranges: three of 5 and a last of 3.
            {shape(2, 2, 64, 40, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1}, {1, 1}), kNarrow, kBF, kToBF, true, true, true},
        };
        const std::vector<int> forward_splits = {3, 4, 5, 2, 7, 2, 4};
        for (std::size_t i = 0; i < all.size(); ++i) all[i].splits = forward_splits[i];
        std::vector<Case> backward = {
            // Dense, K = 9 taps x 128 = 36 tiles in 4 ranges.
            {shape(2, 1, 16, 128, 1, {4, 4}, {3, 3}, {1, 1}, {1, 1}), kLarge, kF16, kToBF, false, true, false},
            // 4x4/s2: 2 tiles a phase in 2 ranges; kernel 2 under stride 3: phases of one tap (1
            // tile) and of none (0) in 3 ranges; tf32; groups with dilation and mixed strides.
            {shape(2, 1, 16, 16, 1, {8, 8}, {4, 4}, {2, 2}, {1, 1}), kSmall, kBF, kToBF, true, false, true},
            {shape(2, 1, 8, 16, 1, {7, 8}, {2, 2}, {3, 3}), kSmall, kBF, kToF32, true, true, true},
            {shape(2, 2, 4, 12, 1, {6, 6}, {4, 4}, {2, 2}, {1, 1}), kSmall, kTF32, kToF32, false, true, true},
            {shape(2, 1, 32, 16, 2, {9, 11}, {3, 5}, {2, 3}, {1, 2}, {2, 1}), kLarge, kF16, kToBF, false, false, true},
            // The narrow tile split, tf32, through 4 phases of a 2x2 stride: K = 4 taps x 48 = 12
            // tiles of 16 a phase in 3 ranges; N = 12 input channels, 32 rows a phase.
            {shape(2, 2, 12, 48, 1, {8, 8}, {4, 4}, {2, 2}, {1, 1}), kNarrow, kTF32, kToF32, true, true, false},
        };
        const std::vector<int> backward_splits = {4, 2, 3, 2, 3, 3};
        for (std::size_t i = 0; i < backward.size(); ++i) {
            backward[i].direction = Direction::BackwardData;
            backward[i].splits = backward_splits[i];
            all.push_back(backward[i]);
        }
        return all;
    }();
    return cases;
}

// The same geometries through backward-data (as dx = conv^T(dy, w); the tile edges now fall on
// M = N * input positions and on input channels per group), with the operand and output types
// rotated so that each geometry meets a different combination than forward.
const std::vector<Case>& sweep() {
    static const std::vector<Case> cases = [] {
        std::vector<Case> all = forward_sweep();
        int i = 0;
        for (Case c : forward_sweep()) {
            c.direction = Direction::BackwardData;
            c.operand = i % 2 == 0 ? kF16 : kBF;
            c.output = i % 3 == 0 ? kToF32 : i % 3 == 1 ? kToBF : kToF16;
            c.tile = std::array{kSmall, kSlim, kLarge, kNarrow}[static_cast<std::size_t>(i % 4)];
            all.push_back(c);
            ++i;
        }
        // And through backward-filter (GEMM rows: output channels per group; columns: taps x
        // input channels per group; k: N x output positions, split 1, 2, 3 or 5 ways).
        i = 0;
        for (Case c : forward_sweep()) {
            c.direction = Direction::BackwardFilter;
            c.bias = c.relu = false;
            c.residual = i % 3 == 1;
            c.splits = std::array{1, 2, 3, 5}[static_cast<std::size_t>(i % 4)];
            c.operand = i % 2 == 0 ? kBF : kF16;
            c.output = i % 3 == 0 ? kToBF : i % 3 == 1 ? kToF32 : kToF16;
            c.tile = i % 4 == 1 || i % 4 == 2 ? kLarge : kSmall;
            all.push_back(c);
            ++i;
        }
        // Float32 as tf32 (float32 output) through all three passes.
        for (const Case& c : tf32_sweep()) all.push_back(c);
        for (const Case& c : strided_backward_data_sweep()) all.push_back(c);
        for (const Case& c : split_sweep()) all.push_back(c);
        return all;
    }();
    return cases;
}

#ifdef CONVKIT_IGEMM_ON_DEVICE
class IgemmSweep : public testing::WithCuda<::testing::TestWithParam<Case>> {};
#else
class IgemmSweep : public ::testing::TestWithParam<Case> {};
#endif

TEST_P(IgemmSweep, MatchesTheDefinition) {
    const Case& cs = GetParam();
#ifdef CONVKIT_IGEMM_ON_DEVICE
    // On the emulated device the kernels are test_emu's Emu/IgemmSweep run in the same emulator;
    // what is new here is the device memory around them, which a quarter of the cases (chosen by
    // name, the same quarter every run) covers at a quarter of the time under CI's sanitizers.
    if (cuda_is_emulated() && std::hash<std::string>{}(name_of(cs)) % 4 != 0) {
        GTEST_SKIP() << "the emulated device runs a quarter of the sweep; test_emu runs all of it";
    }
#endif
    CONVKIT_SEEDED_RNG(rng);
    const Problem p = make_problem(cs, rng, false);
    EXPECT_LT(relative_error(run(cs, p), p.expected), tolerance(cs)) << name_of(cs);
}

#ifdef CONVKIT_IGEMM_ON_DEVICE
INSTANTIATE_TEST_SUITE_P(Cuda, IgemmSweep, ::testing::ValuesIn(sweep()), case_test_name);
#else
INSTANTIATE_TEST_SUITE_P(Emu, IgemmSweep, ::testing::ValuesIn(sweep()), case_test_name);
#endif

// Small integers: every product and sum is exact in float, so the float output must equal the
// definition bit for bit on every case of the sweep, with either tile. (On the emulated device it
// would rerun EmuIgemm's run in the same emulator, at ASan's pace in CI: left to test_emu there.)
IGEMM_TEST(SmallIntegersBitForBitOnTheSweep) {
#ifdef CONVKIT_IGEMM_ON_DEVICE
    CONVKIT_SKIP_ON_EMULATED_DEVICE(
        "test_emu's EmuIgemm.SmallIntegersBitForBitOnTheSweep runs it in the same emulator");
#endif
    CONVKIT_SEEDED_RNG(rng);
    for (Case cs : sweep()) {
        cs.output = kToF32;
        for (IgemmTile tile : {kSmall, kLarge, kNarrow, kSlim}) {
            const bool square = tile == kSmall || tile == kLarge;
            if (!square && cs.direction == Direction::BackwardFilter) continue;  // square tiles only
            cs.tile = tile;
            const Problem p = make_problem(cs, rng, true);
            const std::vector<double> y = run(cs, p);
            EXPECT_EQ(differing(y, p.expected), 0u) << name_of(cs);
        }
    }
}

// Every combination of epilogue options, output type and operand on one shape past both tile
// edges in M (M = 2 * 9 * 9 = 162), in both passes.
IGEMM_TEST(EveryEpilogueCombination) {
    CONVKIT_SEEDED_RNG(rng);
    for (Direction direction : {Direction::Forward, Direction::BackwardData})
        for (IgemmOperand operand : {kBF, kF16, kTF32})
            for (IgemmOutput output : {kToBF, kToF16, kToF32})
                for (int options = 0; options < 8; ++options) {
                    if (operand == kTF32 && output != kToF32) continue;  // tf32 writes float32 only
                    const Case cs{shape(2, 2, 8, 16, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1}),
                                  std::array{kSmall, kLarge, kNarrow, kSlim}[options % 4],
                                  operand,
                                  output,
                                  (options & 1) != 0,
                                  (options & 2) != 0,
                                  (options & 4) != 0,
                                  direction};
                    const Problem p = make_problem(cs, rng, false);
                    EXPECT_LT(relative_error(run(cs, p), p.expected), tolerance(cs)) << name_of(cs);
                }
}

// Every output with every epilogue option, straight from the GEMM and through split-K's adder,
// each tile in turn, with y and the residual `misalign` elements into their buffers.
void expect_misaligned_outputs_match(std::size_t misalign) {
    CONVKIT_SEEDED_RNG(rng);
    int i = 0;
    for (Case cs : every_output_with_every_option(shape(2, 2, 16, 24, 1, {9, 9}, {3, 3}, {1, 1}, {1, 1}), 3)) {
        cs.tile = std::array{kSmall, kLarge, kNarrow, kSlim}[static_cast<std::size_t>(i++ / 2 % 4)];  // split and not
        const Problem p = make_problem(cs, rng, false);
        EXPECT_LT(relative_error(run(cs, p, misalign), p.expected), tolerance(cs)) << name_of(cs);
    }
}

// The epilogue writes 16 bytes of a row at a time (8 16-bit values, 4 floats), staged through
// shared memory, where every tensor it touches is aligned to that and a group's channels are a
// multiple of it; else a thread's pairs of adjacent channels from the accumulators, one access
// each (a 4-byte store of two 16-bit values, an 8-byte one of two floats) where they are aligned
// to a pair. A y or residual one element off a pair (a view into a larger buffer) goes a value at
// a time, to the same result (a pair or pack written there faults: the emulator checks the
// alignment of every pack, as a GPU does).
IGEMM_TEST(OutputsOffAPairsAlignmentAreWrittenOneValueAtATime) {
    expect_misaligned_outputs_match(1);
}

// Two elements off (4 bytes of a 16-bit output, 8 of a float32 one): off a 16-byte pack, on a
// pair, so written in pairs straight from the accumulators (split-K's slice, aligned, is staged).
IGEMM_TEST(OutputsOffSixteenBytesAreWrittenInPairs) {
    expect_misaligned_outputs_match(2);
}

#ifndef CONVKIT_IGEMM_ON_DEVICE
// Where pairs fit: an even group of channels and every tensor touched aligned to a pair; the
// slice alone decides under split-K. (Were pairs_fit always false, every result test would
// still pass: this one would not.)
TEST(EmuIgemm, PairsFitEvenGroupsOfPairAlignedTensors) {
    alignas(16) std::uint16_t y[8] = {};
    alignas(16) float bias[8] = {}, slice[8] = {};
    const kernels::igemm::EpilogueOperands aligned{y, bias, y, 0};
    EXPECT_TRUE(kernels::igemm::pairs_fit<IgemmOutput::BFloat16>(aligned, nullptr, 24));
    EXPECT_FALSE(kernels::igemm::pairs_fit<IgemmOutput::BFloat16>(aligned, nullptr, 3));  // odd groups' channels are odd
    EXPECT_FALSE(kernels::igemm::pairs_fit<IgemmOutput::BFloat16>({y + 1, bias, nullptr, 0}, nullptr, 24));
    EXPECT_FALSE(kernels::igemm::pairs_fit<IgemmOutput::BFloat16>({y, bias, y + 1, 0}, nullptr, 24));
    EXPECT_FALSE(kernels::igemm::pairs_fit<IgemmOutput::BFloat16>({y, bias + 1, nullptr, 0}, nullptr, 24));
    EXPECT_TRUE(kernels::igemm::pairs_fit<IgemmOutput::BFloat16>({y, nullptr, nullptr, 0}, nullptr, 24));
    // A float32 output needs 8-byte pairs: y 4 bytes in is off them.
    EXPECT_FALSE(kernels::igemm::pairs_fit<IgemmOutput::Float32>({slice + 1, nullptr, nullptr, 0}, nullptr, 24));
    // Split-K: the slice, not y, is written.
    EXPECT_TRUE(kernels::igemm::pairs_fit<IgemmOutput::BFloat16>({y + 1, bias + 1, nullptr, 0}, slice, 24));
    EXPECT_FALSE(kernels::igemm::pairs_fit<IgemmOutput::BFloat16>(aligned, slice + 1, 24));
}

// Where the staged epilogue's 16-byte packs fit (ResultWriter::packs): a group's channels a
// multiple of the pack (8 16-bit values, 4 floats; 4 floats of split-K's slice), y and the
// residual 16-byte aligned, the bias to the 16 bytes it is read in. (Were packs always false,
// every result test would pass through the pairs: this one would not.)
TEST(EmuIgemm, PacksFitGroupsOfWholePacksOfSixteenByteAlignedTensors) {
    using kernels::igemm::EpilogueOperands;
    using kernels::igemm::ResultWriter;
    alignas(16) std::uint16_t y[16] = {};
    alignas(16) float bias[16] = {}, slice[16] = {};
    auto packs = [](IgemmOutput output, const EpilogueOperands& e, float* s, int out_group) {
        if (output == IgemmOutput::Float32)
            return ResultWriter<IgemmOutput::Float32>{e, s, out_group, out_group, 0}.packs;
        return ResultWriter<IgemmOutput::BFloat16>{e, s, out_group, out_group, 0}.packs;
    };
    const EpilogueOperands aligned{y, bias, y, 0};
    EXPECT_TRUE(packs(IgemmOutput::BFloat16, aligned, nullptr, 24));
    EXPECT_FALSE(packs(IgemmOutput::BFloat16, aligned, nullptr, 12));                    // pairs, not packs of 8
    EXPECT_FALSE(packs(IgemmOutput::BFloat16, {y + 4, bias, nullptr, 0}, nullptr, 24));  // 8 bytes in
    EXPECT_FALSE(packs(IgemmOutput::BFloat16, {y, bias, y + 2, 0}, nullptr, 24));
    EXPECT_FALSE(packs(IgemmOutput::BFloat16, {y, bias + 2, nullptr, 0}, nullptr, 24));
    EXPECT_TRUE(packs(IgemmOutput::BFloat16, {y, bias + 4, nullptr, 0}, nullptr, 24));  // read 16 bytes at a time
    // Four floats a pack: 12 channels fit a float32 output, not a 16-bit one.
    EXPECT_TRUE(packs(IgemmOutput::Float32, {bias, bias, bias, 0}, nullptr, 12));
    EXPECT_FALSE(packs(IgemmOutput::Float32, {bias + 2, bias, nullptr, 0}, nullptr, 12));
    // Split-K: the slice, 4 floats a pack, not y, is written.
    EXPECT_TRUE(packs(IgemmOutput::BFloat16, {y + 1, bias + 1, nullptr, 0}, slice, 12));
    EXPECT_FALSE(packs(IgemmOutput::BFloat16, aligned, slice + 2, 24));
    EXPECT_FALSE(packs(IgemmOutput::BFloat16, aligned, slice, 6));
}
#endif

// A residual that is the output itself accumulates into it (dx += conv^T(dy, w), as a gradient
// summed over uses is): each element is read and written by the same thread.
IGEMM_TEST(ResidualInPlaceAccumulates) {
    CONVKIT_SEEDED_RNG(rng);
    for (Direction direction : {Direction::Forward, Direction::BackwardData, Direction::BackwardFilter}) {
        const bool filter = direction == Direction::BackwardFilter;
        const Case cs{shape(2, 2, 16, 24, 1, {7, 6}, {3, 3}, {2, 1}, {1, 1}),
                      kSmall,
                      kBF,
                      kToF32,
                      !filter,
                      true,
                      false,
                      direction,
                      filter ? 3 : 1};
        const Problem p = make_problem(cs, rng, true);
        std::vector<float> y(p.residual.begin(), p.residual.end());
        launch(cs, p, IgemmEpilogue{filter ? nullptr : p.bias.data(), y.data(), false}, y.data());
        for (std::size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], p.expected[i]) << name_of(cs) << " at " << i;
    }
}
}  // namespace
}  // namespace convkit
