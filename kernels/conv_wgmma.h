#pragma once
// Launchers of the warpgroup-MMA (wgmma, sm_90a) implicit-GEMM convolution, forward and
// backward-data (kernels/conv_wgmma.cu), backward-filter (kernels/conv_wgmma_filter.cu). The same layouts, geometry and
// fused epilogue as the mma.sync kernels (kernels/conv_igemm.h: x, y, dy and dx channels-last, bias float32, residual
// like the output, ReLU), except backward-data's weight (below): bf16 or f16 operands with
// float32 accumulation and bf16/f16/f32 outputs, or tf32 operands (float32 tensors, rounded to
// nearest in shared memory) with a float32 output. Plain C++: host code calls it without CUDA
// headers.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "convkit/device.h"
#include "kernels/conv_igemm.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// Why conv_wgmma_forward and conv_wgmma_backward_data cannot run `shape` (the convolution's, for
// both) with `operand` (empty when they can): those of
// conv_igemm_unsupported_reason (channels per group a multiple of 8, or 4 for tf32, 32-bit GEMM sizes).
std::string conv_wgmma_unsupported_reason(const IgemmConvShape& shape, IgemmOperand operand);

// Whether this build holds the kernel's sm_90a code (nvcc builds with 90 in
// CMAKE_CUDA_ARCHITECTURES, which the tensor-core files get as 90a), or runs it in the CPU
// emulator; elsewhere its wgmma instructions are __trap() and it must not be launched.
bool conv_wgmma_built();

// The forward's block tile columns for `shape`: 128, or 64 where a group has at most 64 output
// channels (forward only: backward-data's tile goes by the input channels a group).
int conv_wgmma_tile_columns(const IgemmConvShape& shape);

// Dynamic shared memory of a forward launch of `shape` (4 stages of 128 x 128-byte A and N x 128-byte B
// rows, whatever the operand, and 1 KiB of alignment slack; the launcher opts in above 48 KiB).
std::size_t conv_wgmma_shared_bytes(const IgemmConvShape& shape);

// One launch of conv_wgmma_forward or conv_wgmma_backward_data: its GEMM per group (m = N x the
// positions written, n = channels written per group, k = taps x channels read per group; 0 for a
// backward-data phase no tap reaches), the phases it runs (backward-data's uniform phases in one
// launch, else 1), its tile's columns (128, or 64 up to 64), its output tiles x groups (`blocks`;
// the grid has `splits` times as many), the split of its k tiles (k tiles of 64 16-bit values or
// 32 tf32; split-K as cuda.igemm's, every slice one block's float32 partial sums, added in order
// by a second kernel that runs the epilogue) and the wgmma instructions its blocks issue
// (m64nNk16, or m64nNk8 for tf32; 8 a k tile).
struct WgmmaLaunchPlan {
    std::int64_t m = 0, n = 0, k = 0, phases = 1;
    int tile_columns = 0;
    bool producer_warpgroup = false;  // WgmmaSchedule's
    // The producer copies B (the weight's tile) with one bulk tensor copy a stage (TMA) instead of
    // cp.async: forward, and backward-data with whole k tiles of channels a tap; tf32 only where A
    // is a bulk copy too (its threads then round whole stages once they land).
    bool weight_by_bulk_copy = false;
    // And A (the source's tile) too: where the GEMM's rows are the source's rows through one tap
    // (16-bit operands of a 1x1 convolution with stride 1 and no padding, forward or backward-data,
    // and backward-data phases that read dy at their own positions, the even phase of a 1x1/2), as
    // a tiled copy; and in the forward where a group's channels are whole k tiles (64, 32 tf32) and
    // the corners fit an im2col map, as one im2col copy of the block's 128 positions at the tile's
    // tap.
    // With both, the producer's threads copy nothing: one thread issues a stage's two copies after
    // its one arrival, which with the bytes completes the stage (all 4 stages in flight, not 2);
    // for tf32 the copies complete a landed barrier, and the 128 threads round the stage to
    // nearest before they hand it over.
    bool activations_by_bulk_copy = false;
    std::int64_t blocks = 0;
    int splits = 1;
    std::int64_t wgmma_instructions = 0;
};

// How the launchers run a pass: the split of every launch (the default plan's where empty), and
// the ring. Without a producer warpgroup (cuda.wgmma), the block's 256 threads each copy their
// chunks of a k tile with cp.async, wait for them and meet at a __syncthreads before both
// warpgroups multiply. With one (cuda.wgmma.producer), a third warpgroup of 128 threads does all
// the copying, Stages - 2 tiles of copies in flight, and hands each stage to the two multiplying
// warpgroups on an mbarrier (and they hand it back on another): no block-wide barrier in the
// loop, and the multiplying threads issue no copies (they still find the tile's rows at the
// start, as every thread does). Where a tensor map describes the weight's tiles (the forward,
// and backward-data with whole k tiles of channels a tap; tf32 only with A's too), one producer thread
// copies each B tile with the bulk tensor copy (TMA), which completes on the same full barrier
// (WgmmaLaunchPlan::weight_by_bulk_copy); the producer's threads gather only A, and where A is a
// bulk copy too (activations_by_bulk_copy: 1x1 stride 1, and the forward with 64 channels a group)
// not even that: a kernel of its own then has one producer thread copy and hand over each stage.
struct WgmmaSchedule {
    std::optional<int> splits;
    bool producer_warpgroup = false;
};

struct WgmmaPlan {
    std::int64_t groups = 1;
    std::vector<WgmmaLaunchPlan> launches;
    // The split slices' float32 workspace: splits x phases x m x n x groups x 4 bytes for the
    // largest split launch (launches run one after another and reuse it); 0 when none splits.
    std::size_t workspace_bytes() const;
    std::int64_t blocks() const;  // every launch's grid, splits included
    std::int64_t wgmma_instructions() const;
};

// The launch conv_wgmma_forward runs (none where refused), split as `schedule` says, or by default as
// cuda.igemm splits: none from half a wave of blocks up (one 128x128 block or two 128x64 an SM
// of a 132-SM H100), else about a wave, each split at least 8 k tiles, at most 64.
WgmmaPlan conv_wgmma_forward_plan(const IgemmConvShape& shape, IgemmOperand operand,
                                  const WgmmaSchedule& schedule = {});

// The launches conv_wgmma_backward_data runs, in order: one of all the stride's phases where
// they are uniform (2x2/2, 4x4/2 on inputs a multiple of the stride: each block finds its phase),
// else one per phase with positions (kernels/conv_igemm_phases.cuh; stride 1 is one phase), each
// split as conv_wgmma_forward_plan says for its own GEMM (the schedule's split for all of them).
WgmmaPlan conv_wgmma_backward_data_plan(const IgemmConvShape& shape, IgemmOperand operand,
                                        const WgmmaSchedule& schedule = {});

// y = epilogue(conv(x, w)), as conv_wgmma_forward_plan(shape, operand, schedule) plans it, with
// `workspace` of the plan's workspace_bytes() (null when 0). Throws NotSupported with
// conv_wgmma_unsupported_reason() when the shape or operand is refused, InvalidArgument for null
// x, w or y, for x or w not 16-byte aligned (cp.async vectors), for splits outside 1..65535 /
// groups, or for a split without a workspace. Needs a device of compute capability 9.0 exactly
// and conv_wgmma_built() (a build without it throws NotSupported).
void conv_wgmma_forward(const IgemmConvShape& shape, IgemmOperand operand, IgemmOutput output,
                        const WgmmaSchedule& schedule, const void* x, const void* w, const IgemmEpilogue& epilogue,
                        void* y, void* workspace, Stream stream);

// dx = epilogue(conv^T(dy, w)) for the convolution `shape` (dy has its output's size, dx its
// input's), every dx position written, sub-pixel: per phase of the stride only the taps that
// reach it are gathered and multiplied (a phase no tap reaches gets the epilogue of 0), as
// conv_wgmma_backward_data_plan plans it, with `workspace` of the plan's workspace_bytes(). `w` is
// the weight kernels::backward_data_conv_weight writes from the convolution's [K, C/g, taps]:
// per group [C/g, taps reversed, K/g], so that B's rows (dx channels) are k-contiguous: K-major,
// the only form wgmma reads tf32 in (16-bit operands may be MN-major). Throws as
// conv_wgmma_forward.
void conv_wgmma_backward_data(const IgemmConvShape& shape, IgemmOperand operand, IgemmOutput output,
                              const WgmmaSchedule& schedule, const void* dy, const void* w,
                              const IgemmEpilogue& epilogue, void* dx, void* workspace, Stream stream);

// ---- backward-filter (kernels/conv_wgmma_filter.cu) -----------------------------------------

// Why conv_wgmma_backward_filter cannot run `shape` with `operand` (empty when it can): those of
// conv_wgmma_unsupported_reason, tf32 (its tiles are MN-major, which wgmma reads for 16-bit
// types only), and on the schedule's producer ring, operands the bulk copies cannot bring (a
// group's input channels not whole blocks of 64, x's im2col walk past the copy engine's ranges).
std::string conv_wgmma_backward_filter_unsupported_reason(const IgemmConvShape& shape, IgemmOperand operand,
                                                          const WgmmaSchedule& schedule = {});

// How a backward-filter of `shape` runs: the GEMM D = dy^T x (M = K/g, N = taps x C/g) or, where
// K/g <= 64 < taps x C/g, transposed (M = taps x C/g, N = K/g); the tile's columns (64 up to 64
// columns, else 128); its blocks (M tiles x N tiles x groups); and the default split of the
// positions (as cuda.igemm's: none from half a wave up, else about a wave's blocks, each split at
// least 8 k tiles of 64 positions), or the schedule's. With the schedule's producer warpgroup
// (cuda.wgmma.producer), bulk_copies: the producer ring, on which one producer thread copies a k
// tile's dy blocks as tiled boxes and x's as im2col copies of 64 positions at one tap (the reason
// above refuses the shapes it cannot take). All zero where refused.
struct WgmmaFilterPlan {
    bool transposed = false;
    int tile_columns = 0;
    std::int64_t blocks = 0;
    int splits = 0;
    bool bulk_copies = false;
};
WgmmaFilterPlan conv_wgmma_backward_filter_plan(const IgemmConvShape& shape,
                                                IgemmOperand operand = IgemmOperand::BFloat16,
                                                const WgmmaSchedule& schedule = {});

// The float32 slices of `splits` > 1 (0 for one): splits x dw's elements.
std::size_t conv_wgmma_backward_filter_workspace_bytes(const IgemmConvShape& shape, int splits);

// dw (KRSC, [K, taps, C/g], as cuda.igemm's) = the filter gradient from dy [N, oD, oH, oW, K]
// and x [N, D, H, W, C] (+ `residual`, like dw, or null), bf16 or f16 operands, float32
// accumulation, summed over the positions in the plan's splits (the schedule's, or the default)
// whose slices (the workspace) a second kernel adds in order; on the producer ring where the plan
// has bulk copies and the pointers allow them. Throws as conv_wgmma_forward, and InvalidArgument
// for splits outside 1..65535 / groups or more than one without a workspace.
void conv_wgmma_backward_filter(const IgemmConvShape& shape, IgemmOperand operand, IgemmOutput output,
                                const WgmmaSchedule& schedule, const void* dy, const void* x, const void* residual,
                                void* dw, void* workspace, Stream stream);

CONVKIT_KERNELS_END
