#pragma once
// Launchers of the tensor-core implicit-GEMM convolution: forward and backward-data (which is
// also the forward of transposed convolution) in kernels/conv_igemm.cu, backward-filter in
// kernels/conv_igemm_filter.cu. Standalone:
// a plain geometry struct and raw device pointers, so that the variant registry (issue #13)
// can wrap them later without this file knowing about problems or backends. Plain C++: host
// code calls them without CUDA headers.
//
// Layouts, all contiguous:
//   x  [N, D, H, W, C]            channels-last input (NWC / NHWC / NDHWC by rank)
//   w  [K, kD, kH, kW, C/groups]  filter, KRSC-style: one row of taps x channels per output channel
//   y  [N, oD, oH, oW, K]         channels-last output; residual (optional) the same shape
//   bias [K] float32 (optional)
// Forward as a GEMM per group: M = N * output positions, N = K / groups, K = taps * C / groups,
// the GEMM's k index running over (tap, channel) with the channel fastest. Backward-data:
// M = N * input positions, N = C / groups, K = taps * K / groups, run per phase of the stride
// (sub-pixel, below): one GEMM per phase over only the taps that reach its positions.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "convkit/device.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

struct IgemmConvShape {
    int rank = 2;  // spatial dims: 1, 2 or 3; the first `rank` entries of each array are used
    std::int64_t batch = 1;
    std::int64_t in_channels = 0, out_channels = 0, groups = 1;
    std::array<std::int64_t, 3> input{1, 1, 1};
    std::array<std::int64_t, 3> kernel{1, 1, 1};
    std::array<std::int64_t, 3> stride{1, 1, 1};
    std::array<std::int64_t, 3> padding{0, 0, 0};  // zeros, the same before and after
    std::array<std::int64_t, 3> dilation{1, 1, 1};

    // (input + 2 padding - dilation (kernel - 1) - 1) / stride + 1 per used dim.
    std::array<std::int64_t, 3> output() const;
    // "n2 c16 k24 g1 in 9x9 k3x3 s1x1 p1x1 d1x1": names a test case or a benchmark row.
    std::string to_string() const;
};

// x and w: 16-bit bits, or float32 run as tf32 (each operand rounded to nearest, ties away, to
// 10 mantissa bits on its way to the tensor cores; accumulation in float32; float32 output only).
enum class IgemmOperand { BFloat16, Float16, TensorFloat32 };
enum class IgemmOutput { BFloat16, Float16, Float32 };  // y and residual
// Block tiles: Large 128x128 (4 warps of 64x64, 4-stage pipeline, 64 KiB of shared memory)
// for big problems; Narrow 128x64 (4 warps of 64x32, 4 stages, 48 KiB) for big problems of at
// most 64 columns, Slim 128x32 (4 warps of 32x32, 4 stages, 40 KiB) of at most 32; Small 64x64
// (4 warps of 32x32, 3 stages, 24 KiB) when the large tile would leave the GPU's SMs without
// enough blocks.
enum class IgemmTile { Large, Small, Narrow, Slim };

// Fused after the GEMM, per output element: v = acc + bias[k] + residual; then max(v, 0) if relu;
// then converted to the output type (round to nearest even).
struct IgemmEpilogue {
    const float* bias = nullptr;     // [K] or null
    const void* residual = nullptr;  // like y (same dtype) or null
    bool relu = false;
};

// Why this path cannot run `shape` with `operand` (empty when it can): channels per group (in and
// out) a multiple of what a 16-byte cp.async vector holds (8 16-bit values, 4 tf32), so that a
// vector never straddles two taps or two groups; rank 1-3; GEMM sizes and grid within 32-bit
// indices and the grid's limits.
std::string conv_igemm_unsupported_reason(const IgemmConvShape& shape, IgemmOperand operand);

// Dynamic shared memory a launch with `tile` uses (the launcher opts in above 48 KiB).
std::size_t conv_igemm_shared_bytes(IgemmTile tile);

// Large when the Large tile gives at least 2 blocks per SM on a 132-SM H100 (Narrow when the GEMM
// has at most 64 columns, Slim at most 32), else Small (the forward's GEMM; backward-data chooses per phase,
// conv_igemm_backward_data_plan).
IgemmTile conv_igemm_default_tile(const IgemmConvShape& shape);

// How the launches of a pass cut their GEMMs into blocks: the block tile, and into how many
// ranges the GEMM's k is split (split-K: each range's blocks write float partial sums to a slice of
// the workspace, and a second kernel adds the slices in order and runs the epilogue, so the
// result is deterministic for a given split). Each left empty is chosen per launch from that
// launch's GEMM: the tile as conv_igemm_default_tile; the splits 1 where the output tiles fill
// half a wave of a 132-SM H100 (2 large or 4 small blocks per SM) or more, else enough to fill
// the wave, each split at least 8 k tiles long, at most 64 (ResNet-50's 7x7 layers split 18 ways
// at batch 1, 3 at batch 32; its 56x56 layers never).
struct IgemmSchedule {
    std::optional<IgemmTile> tile;
    std::optional<int> splits;
};

// One GEMM launch of a pass: the phase of the stride (backward-data: its first dx position per
// used dim, in the shape's order; all 0 for the forward and at stride 1), the GEMM per group
// (m = N * the positions, n = output channels per group, k = the taps * input channels per group;
// 0 for a backward-data phase no tap reaches), its tile and split, and the mma.sync instructions
// its blocks issue (tiles padded to whole blocks and k tiles).
struct IgemmLaunchPlan {
    std::array<std::int64_t, 3> phase{0, 0, 0};
    std::int64_t m = 0, n = 0, k = 0;
    // Backward-data phases this launch runs, each the GEMM m x n x k: all of them (`phase` the
    // first, 0) where every phase has the same positions and taps per dim (a 2x2/2 or 4x4/2
    // up-convolution over an input a multiple of the stride), one a launch otherwise.
    std::int64_t phases = 1;
    IgemmTile tile = IgemmTile::Small;
    int splits = 1;
    std::int64_t mma_instructions = 0;
};

struct IgemmPlan {
    std::int64_t groups = 1;
    std::vector<IgemmLaunchPlan> launches;
    std::int64_t multiply_adds() const;  // groups * sum of phases * m * n * k: the GEMMs' own work
    std::int64_t mma_instructions() const;
    // The split slices' float32 workspace: splits * phases * m * n * groups * 4 bytes for the
    // largest split launch (launches run one after another and reuse it); 0 when none splits.
    std::size_t workspace_bytes() const;
};

// The one launch conv_igemm_forward runs (empty for a refused shape).
IgemmPlan conv_igemm_forward_plan(const IgemmConvShape& shape, IgemmOperand operand, IgemmSchedule schedule);

// The launches conv_igemm_backward_data runs, in order: the phases of the stride (position mod
// stride per dim) that have positions, each over only the taps that reach it
// (kernels/conv_phase.h), all in one launch where they are the same GEMM (IgemmLaunchPlan::phases),
// else one launch per phase; stride 1 is the one phase 0. Tests read it.
IgemmPlan conv_igemm_backward_data_plan(const IgemmConvShape& shape, IgemmOperand operand, IgemmSchedule schedule);

// y = epilogue(conv(x, w)), as conv_igemm_forward_plan(shape, operand, schedule) plans it, with
// `workspace` of the plan's workspace_bytes() (null when 0). Throws NotSupported with
// conv_igemm_unsupported_reason() when the shape is refused, InvalidArgument for null x, w or y,
// for x or w not 16-byte aligned, for splits outside 1..65535/groups, or for a split without a
// workspace. Needs a device of compute capability 8.0 or later (mma.sync bf16/f16/tf32, cp.async).
// A tf32 operand needs a float32 output (InvalidArgument otherwise).
void conv_igemm_forward(const IgemmConvShape& shape, IgemmOperand operand, IgemmOutput output, IgemmSchedule schedule,
                        const void* x, const void* w, const IgemmEpilogue& epilogue, void* y, void* workspace,
                        Stream stream);

// dx = epilogue(conv^T(dy, w)) for the convolution `shape` describes: dy [N, oD, oH, oW, K],
// dx (and residual) [N, D, H, W, C], bias [C] (the transposed convolution's bias). Input
// positions no output reads (past the last window, or a phase no tap reaches) get 0 before the
// epilogue. Launches as conv_igemm_backward_data_plan(shape, operand, schedule) lists them, one
// after another on `stream`. Workspace, refusals and requirements as conv_igemm_forward. A
// residual of dx itself accumulates into it (each element is read and written by one thread).
void conv_igemm_backward_data(const IgemmConvShape& shape, IgemmOperand operand, IgemmOutput output,
                              IgemmSchedule schedule, const void* dy, const void* w, const IgemmEpilogue& epilogue,
                              void* dx, void* workspace, Stream stream);

// dw = conv's filter gradient from dy [N, oD, oH, oW, K] and x [N, D, H, W, C], into dw
// [K, kD, kH, kW, C/groups] of `output`'s type (+ residual, like dw, when not null: dw += ...
// with residual = dw). The GEMM's k (N * output positions) is split over `splits` blocks per
// output tile; with splits > 1 each writes float partial sums to its slice of `workspace`
// (conv_igemm_backward_filter_workspace_bytes) and a second kernel adds the slices in a fixed
// order: the result is deterministic, bit for bit, for a given splits. Refusals as forward;
// InvalidArgument for null pointers, dy or x not 16-byte aligned, splits outside
// 1..65535/groups, a missing workspace, or the Narrow or Slim tile (Large and Small only).
void conv_igemm_backward_filter(const IgemmConvShape& shape, IgemmOperand operand, IgemmOutput output, IgemmTile tile,
                                int splits, const void* dy, const void* x, const void* residual, void* dw,
                                void* workspace, Stream stream);
std::size_t conv_igemm_backward_filter_workspace_bytes(const IgemmConvShape& shape, IgemmOperand operand, int splits);
// Backward-filter's tile from its own GEMM (M = output channels per group, N = taps x input
// channels per group, k = N x output positions): Large where M and N fill a 128x128 tile and its
// blocks, split-K'd as the default splits them (k tiles of 32 positions), reach half a wave (132);
// else Small. ResNet's 64-channel layers (half a large tile's rows idle) and short reductions
// (batch 1 at 7x7) take the small tile, its wider layers at batch 32 the large one, split to fill
// the GPU.
IgemmTile conv_igemm_backward_filter_default_tile(const IgemmConvShape& shape);

// Splits as IgemmSchedule's default (a wave of `tile`'s blocks on a 132-SM H100 where the output
// tiles fill less than half of it), each split at least 8 k tiles long (32 positions a tile for
// 16-bit operands, 16 for tf32), at most 64 (1 for refused shapes).
int conv_igemm_backward_filter_default_splits(const IgemmConvShape& shape, IgemmOperand operand, IgemmTile tile);

CONVKIT_KERNELS_END
