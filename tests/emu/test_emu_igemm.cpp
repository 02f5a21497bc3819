// The tensor-core implicit-GEMM convolution (kernels/conv_igemm.cu: forward and backward-data;
// kernels/conv_igemm_filter.cu: backward-filter) executed on the CPU by the emulator, against a
// float64 loop straight from the definition written here (channels-last x, KRSC w): a sweep
// over rank 1-3, tile edges, strides, dilations, groups, batch 1, channel counts off the tile,
// every epilogue option, every operand type (bf16, f16, and float32 as tf32), every output
// type, both tiles and several split-K counts; small integers bit for bit; tf32 rounding (to
// nearest, ties away) in every pass; split-K determinism; refusals with their reasons; the cvt
// emulations. Compiled a second time into test_cuda (CONVKIT_IGEMM_ON_DEVICE, label gpu): the
// same cases on a CUDA device, a GPU or the emulated one, each buffer mirrored into device
// memory around the launch.
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
#include "igemm_problem.h"
#include "kernels/conv_igemm.h"
#include "test_util.h"
#include "tolerances.h"
#ifdef CONVKIT_IGEMM_ON_DEVICE
#include <map>
#include <memory>

#include "cuda/cuda_memory.h"
#else
#include "emu/device_api.h"  // CUDA's device names, as the CPU build of the kernels sees them
#include "emu/ptx_emulation.h"
#include "kernels/conv_igemm_support.cuh"
#endif

namespace convkit {
namespace {

using kernels::IgemmConvShape;
using kernels::IgemmEpilogue;
using kernels::IgemmOperand;
using kernels::IgemmOutput;
using kernels::IgemmTile;
using namespace igemm_test;

#ifdef CONVKIT_IGEMM_ON_DEVICE
// Device copies of host buffers for one launch, one per host buffer (so an in-place residual
// stays in place), and the output copied back. A copy starts at the host buffer's offset from a
// 16-byte boundary, so a buffer off a vector's alignment on the host (run_with's misalign) is off
// it on the device too.
class DeviceMirror {
public:
    template <typename T>
    T* operator()(T* host, std::size_t bytes) {
        if (host == nullptr) return nullptr;
        Block& block = blocks_[host];
        if (!block.device) {
            const std::size_t shift = reinterpret_cast<std::uintptr_t>(host) % 16;
            block = {detail::allocate_cuda(std::max<std::size_t>(bytes + shift, 1), 0), bytes, shift};
            detail::copy_bytes(block.at(), Device::cuda(0), host, Device::host(), bytes);
        }
        return static_cast<T*>(block.at());
    }
    void copy_back(void* host) const {
        const Block& block = blocks_.at(host);
        detail::copy_bytes(host, Device::host(), block.at(), Device::cuda(0), block.bytes);
    }

private:
    struct Block {
        std::shared_ptr<void> device;
        std::size_t bytes = 0, shift = 0;
        void* at() const { return static_cast<char*>(device.get()) + shift; }
    };
    std::map<const void*, Block> blocks_;
};
#else
// Host memory as it is: the kernels run in the emulator.
struct DeviceMirror {
    template <typename T>
    T* operator()(T* host, std::size_t) const {
        return host;
    }
    void copy_back(void*) const {}
};
#endif

// The launcher of the case's direction (backward-filter with a NaN-poisoned workspace).
void launch(const Case& cs, const Problem& p, IgemmEpilogue epilogue, void* y) {
    DeviceMirror on_device;
    const std::size_t y_bytes =
        static_cast<std::size_t>(p.outputs) * (cs.output == IgemmOutput::Float32 ? sizeof(float) : 2);
    const void* first = on_device(p.first.data(), p.first.bytes());
    const void* second = on_device(p.second.data(), p.second.bytes());
    epilogue.bias = on_device(epilogue.bias, p.bias.size() * sizeof(float));
    epilogue.residual = on_device(epilogue.residual, y_bytes);
    void* const y_host = y;
    y = on_device(y, y_bytes);
#ifdef CONVKIT_IGEMM_ON_DEVICE
    const Stream stream = current_stream(0);
#else
    const Stream stream{};
#endif
    const kernels::IgemmSchedule schedule{cs.tile, cs.splits};
    const std::size_t workspace_bytes =
        cs.direction == Direction::Forward
            ? kernels::conv_igemm_forward_plan(cs.shape, cs.operand, schedule).workspace_bytes()
        : cs.direction == Direction::BackwardData
            ? kernels::conv_igemm_backward_data_plan(cs.shape, cs.operand, schedule).workspace_bytes()
            : kernels::conv_igemm_backward_filter_workspace_bytes(cs.shape, cs.operand, cs.splits);
    std::vector<float> slices(workspace_bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
    void* workspace = slices.empty() ? nullptr : on_device(slices.data(), workspace_bytes);
    if (cs.direction == Direction::Forward) {
        kernels::conv_igemm_forward(cs.shape, cs.operand, cs.output, schedule, first, second, epilogue, y, workspace,
                                    stream);
    } else if (cs.direction == Direction::BackwardData) {
        kernels::conv_igemm_backward_data(cs.shape, cs.operand, cs.output, schedule, first, second, epilogue, y,
                                          workspace, stream);
    } else {
        kernels::conv_igemm_backward_filter(cs.shape, cs.operand, cs.output, cs.tile, cs.splits, first, second,
                                            epilogue.residual, y, workspace, stream);
    }
    on_device.copy_back(y_host);
}

// Runs the case's launcher into a NaN-poisoned buffer and returns its output as doubles (y and
// the residual `misalign` elements into their buffers: run_with).
std::vector<double> run(const Case& cs, const Problem& p, std::size_t misalign = 0) {
    return run_with(
        cs, p, [&](const IgemmEpilogue& epilogue, void* y) { launch(cs, p, epilogue, y); }, misalign);
}

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
class CudaIgemm : public testing::WithCuda<> {};
#define IGEMM_TEST(name) TEST_F(CudaIgemm, name)
#else
class IgemmSweep : public ::testing::TestWithParam<Case> {};
#define IGEMM_TEST(name) TEST(EmuIgemm, name)
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
