// Implicit-GEMM convolution on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a), forward and
// backward-data (kernels/conv_wgmma.h). The GEMMs are the mma.sync kernels' (kernels/conv_igemm.cu),
// per group D[M x Ng] = A[M x Kg] * B[Kg x Ng], A gathered by the same cp.async code
// (kernels/conv_igemm_gather.cuh: 16-byte chunks of 8 channels, zero-filled in the padding) from
// x, or from dy for one phase of the stride's dx positions (kernels/conv_igemm_phases.cuh:
// sub-pixel, only the taps that reach the phase; uniform phases in one launch); B the weight's
// rows, k-contiguous: the KRSC weight forward, for backward-data the transposed one with its taps
// reversed (wgmma reads K-major B for every operand type; b_row_offset). What changes is who
// multiplies: instead of 4 warps each
// loading its fragments with ldmatrix and issuing m16n8k16 per 16 x 8 piece, each of 2
// warpgroups issues wgmma.m64n128k16 straight from shared memory, 64 rows x 128 columns per
// instruction: no fragment loads, one instruction per 16-deep k step per warpgroup.
//
// Block: 256 threads (2 warpgroups), a 128 (M) x 128 (N) tile, warpgroup g the rows 64g..64g+63
// and all 128 columns (64 float accumulators a thread); 128 x 64 (m64n64k16, 32 accumulators)
// where a group has at most 64 output channels. k advances one 128-byte row at a time (64 16-bit
// values, or 32 tf32 for float32 tensors: m64nNk8, 4 chunks of 4 channels) through a 4-stage
// cp.async ring; each stage holds A (128 rows) and B (128 or 64 rows) K-major in the
// 128-byte-swizzled layout the wgmma descriptors describe (kernels/wgmma_descriptor.h): row r at
// r * 128 bytes of its 1024-byte-aligned tile, its 16-byte chunk c stored at chunk c ^ (r % 8).
//
// No mbarriers (the emulator has none): per k tile, every thread waits for its own cp.async
// group of that tile, rounds its chunks to tf32 in place for float32 tensors (the tensor cores
// would truncate them), makes the written bytes visible to the async proxy that wgmma reads through
// (fence.proxy.async: PTX ISA "Memory Consistency Model" > proxies; wgmma's operands are read
// through the async proxy, cp.async writes through the generic one), then __syncthreads() makes
// every thread's chunks visible to both warpgroups. Each warpgroup then issues 4 wgmmas (32
// bytes of k each), commits them as one group and waits until at most one group (this tile's) is still in
// flight: the tile before it is finished. The ring's prefetch distance is Stages - 2 (not - 1):
// the tile refilled at step s is s - 2's, which both warpgroups finished before the barrier of
// step s (each waited for it at the end of step s - 1). So the tensor cores run tile s while the
// threads issue tile s + 2's copies and reach the next barrier. (The emulator faults any operand
// byte changed before the wait that covers its mma.)
#include "kernels/conv_wgmma.h"

#include <algorithm>
#include <string>
#include <vector>

#include "convkit/error.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_igemm_gather.cuh"
#include "kernels/conv_igemm_phases.cuh"
#include "kernels/conv_igemm_support.cuh"
#include "kernels/launch.cuh"
#include "kernels/ptx.cuh"
#include "kernels/wgmma_descriptor.h"

CONVKIT_KERNELS_BEGIN

namespace {
using namespace igemm;

// The block's shape and what the A gather (ARows, find_a_rows, gather_a_chunks) reads from it.
// The static check (tests/scripts/check-igemm-kernels) reads BlockM, BlockN and Stages from the
// kernel's name.
template <int BlockM, int BlockN, int Stages>
struct WgmmaTileConfig {
    static constexpr int kBlockM = BlockM, kBlockN = BlockN, kStages = Stages;
    static constexpr int kWarpgroupM = 64;                    // wgmma's M
    static constexpr int kWarpgroups = BlockM / kWarpgroupM;  // each all BlockN columns
    static constexpr int kThreads = 128 * kWarpgroups;
    static constexpr int kRowBytes = 128;           // a k tile: one 128-byte swizzled row
    static constexpr int kChunks = kRowBytes / 16;  // 16-byte cp.async chunks a row
    static constexpr int kRowsPerPass = kThreads / kChunks;
    static constexpr int kPassesA = BlockM / kRowsPerPass, kPassesB = BlockN / kRowsPerPass;
    static constexpr int kMmaSteps = kRowBytes / 32;  // k16 (16-bit) or k8 (tf32) steps of 32 bytes a tile
    static constexpr int kAtomBytes = 1024;           // 8 rows x 128 bytes: the swizzle's repeat
    static constexpr int kTileBytesA = BlockM * kRowBytes, kTileBytesB = BlockN * kRowBytes;
    static constexpr int kStageBytes = kTileBytesA + kTileBytesB;
    static constexpr int kPrefetch = Stages - 2;  // k tiles in flight ahead of the one multiplied
    // The stages, and an atom's slack to start them on a 1024-byte boundary of the shared window.
    static constexpr std::size_t kSharedBytes = std::size_t{kStageBytes} * Stages + kAtomBytes;
    static_assert(BlockN == 64 || BlockN == 128, "wgmma_mma_async has device code for N = 64 and 128");
    static_assert(BlockM % kWarpgroupM == 0 && BlockM % kRowsPerPass == 0 && BlockN % kRowsPerPass == 0);
    static_assert(Stages >= 3, "one tile multiplied, one finishing in the tensor cores, one or more loading");
    static_assert(kSharedBytes <= kMaxOptInDynamicSharedBytes, "a block's shared memory within sm_90's 227 KiB");
};
// 128 x 128 for more than 64 output channels a group; 128 x 64 (m64n64k16) up to 64, where the
// wide tile would multiply zero columns half the time (ResNet's 64-channel layers).
using WgmmaWideTile = WgmmaTileConfig<128, 128, 4>;
using WgmmaNarrowTile = WgmmaTileConfig<128, 64, 4>;

// The tile a GEMM of `columns` columns (output channels per group) runs with.
constexpr bool narrow(std::int64_t columns) {
    return columns <= WgmmaNarrowTile::kBlockN;
}

template <IgemmOperand Operand>
constexpr ptx::WgmmaOperands wgmma_operands() {
    return Operand == IgemmOperand::BFloat16  ? ptx::WgmmaOperands::BFloat16
           : Operand == IgemmOperand::Float16 ? ptx::WgmmaOperands::Float16
                                              : ptx::WgmmaOperands::TensorFloat32;
}

// A k tile's depth: a 128-byte row of 64 16-bit values or 32 tf32 (float32 bits), 8 or 4 a chunk.
template <IgemmOperand Operand>
constexpr int k_per_tile() {
    return WgmmaWideTile::kChunks * OperandFormat<Operand>::kPerChunk;
}

// Byte offset of 16-byte chunk `chunk` of row `row` in a tile staged for a 128-byte-swizzle
// descriptor: rows 128 bytes apart, chunk c at c ^ (row % 8) (the address bits 4-6 XORed with bits
// 7-9 of a tile starting on a 1024-byte boundary, kernels/wgmma_descriptor.h).
__device__ inline int swizzled_128(int row, int chunk) {
    return row * 128 + ((chunk ^ (row & 7)) << 4);
}

// Where row j of B (column j of the GEMM, in `group`) holds k: forward, w[j, tap, c] of the KRSC
// weight, k = (tap, c) contiguous; backward-data, w[kout, tap(u), j] for k = (u, kout), read from
// the weight kernels::backward_data_conv_weight writes, w'[j, taps - 1 - tap, kout]: each row's
// kout contiguous per tap, the taps reversed (phase_filter_tap: the phase's taps).
template <Pass P>
__device__ inline std::int64_t b_row_offset(const IgemmParams& p, int group, int j, int k) {
    if constexpr (P == Pass::Forward) {
        return static_cast<std::int64_t>(group * p.out_group + j) * p.gemm_k + k;
    } else {
        const int source_group = p.source_group.divisor();
        const int u = p.source_group.divide(k), kout = k - u * source_group;
        const int reversed_tap = p.filter_taps - 1 - phase_filter_tap(p, split_tap(p, u));
        return (static_cast<std::int64_t>(group * p.out_group + j) * p.filter_taps + reversed_tap) * source_group +
               kout;
    }
}

// Issues the cp.async copies of k tile `kt` into `stage`: A (the gathered rows of x, or of dy for
// backward-data), then B (rows j of the weight, k-contiguous per 16-byte chunk).
template <class Tile, Pass P, IgemmOperand Operand>
__device__ inline void load_stage(const IgemmParams& p, const ARows<Tile>& rows, int block_n, int group, int kt,
                                  unsigned char* stage) {
    using Element = typename OperandFormat<Operand>::Element;
    const int chunk = static_cast<int>(threadIdx.x) % Tile::kChunks;
    const int first_row = static_cast<int>(threadIdx.x) / Tile::kChunks;
    const int k = kt * k_per_tile<Operand>() + chunk * OperandFormat<Operand>::kPerChunk;
    gather_a_chunks<Tile, Element>(p, rows, k, [&](int row, const Element* source, int bytes) {
        ptx::cp_async<16>(stage + swizzled_128(row, chunk), source, bytes);
    });
    const auto* w = static_cast<const Element*>(p.w);
    unsigned char* b_tile = stage + Tile::kTileBytesA;
    CONVKIT_UNROLL
    for (int pass = 0; pass < Tile::kPassesB; ++pass) {
        const int row = first_row + pass * Tile::kRowsPerPass;
        const int j = block_n + row;
        const bool inside = k < p.gemm_k && j < p.out_group;
        const Element* source = inside ? w + b_row_offset<P>(p, group, j, k) : w;
        ptx::cp_async<16>(b_tile + swizzled_128(row, chunk), source, inside ? 16 : 0);
    }
}

// tf32: rounds the chunks this thread copied into `stage` (load_stage's rows and chunk) to
// nearest, once its copies have landed and before the tensor cores read them: they would
// truncate the 13 low mantissa bits, biasing every product towards zero (by 2^-12 of it on
// average; mma.sync's fragments are rounded in registers instead, round_operands): kPassesA +
// kPassesB chunks a thread, 8 of 16 bytes each for the wide tile.
template <class Tile>
__device__ inline void round_own_chunks_to_tf32(unsigned char* stage) {
    const int chunk = static_cast<int>(threadIdx.x) % Tile::kChunks;
    const int first_row = static_cast<int>(threadIdx.x) / Tile::kChunks;
    CONVKIT_UNROLL
    for (int pass = 0; pass < Tile::kPassesA; ++pass)
        ptx::round_shared_chunk_to_tf32(stage + swizzled_128(first_row + pass * Tile::kRowsPerPass, chunk));
    CONVKIT_UNROLL
    for (int pass = 0; pass < Tile::kPassesB; ++pass)
        ptx::round_shared_chunk_to_tf32(stage + Tile::kTileBytesA +
                                        swizzled_128(first_row + pass * Tile::kRowsPerPass, chunk));
}

// The descriptor of a K-major 128-byte-swizzled tile at `tile` (1024-byte aligned): SBO the next 8
// rows (one atom), LBO unused for swizzled K-major tiles (16, as CUTLASS sets it).
__device__ inline std::uint64_t tile_descriptor(const unsigned char* tile) {
    return ptx::wgmma_descriptor(tile, 16, 1024, wgmma::Swizzle::Bytes128);
}

// acc += this warpgroup's 64 rows of A(stage) x B(stage), one commit group of kMmaSteps
// m64nNk16 (the descriptors moved 32 bytes along k per step).
template <class Tile, IgemmOperand Operand>
__device__ inline void multiply_stage(std::uint64_t a_descriptor, std::uint64_t b_descriptor,
                                      float (&acc)[Tile::kBlockN / 2]) {
    ptx::wgmma_fence(acc);
    CONVKIT_UNROLL
    for (int kk = 0; kk < Tile::kMmaSteps; ++kk) {
        const auto step = static_cast<std::uint32_t>(kk * 32);
        ptx::wgmma_mma_async<wgmma_operands<Operand>(), Tile::kBlockN>(
            acc, wgmma::advance_descriptor(a_descriptor, step), wgmma::advance_descriptor(b_descriptor, step), true);
    }
    ptx::wgmma_commit_group();
}

// grid: x over M tiles (of each phase in turn: IgemmParams::phases), y over N tiles of a group,
// z over groups.
template <class Tile, Pass P, IgemmOperand Operand, IgemmOutput Output>
__global__ void __launch_bounds__(Tile::kThreads) conv_wgmma_kernel(IgemmParams p) {
    unsigned char* raw = dynamic_shared_memory<unsigned char>();
    unsigned char* shared = raw + (Tile::kAtomBytes - ptx::shared_address(raw) % Tile::kAtomBytes) % Tile::kAtomBytes;
    const int block_m = take_block_tile<P>(p, (p.gemm_m + Tile::kBlockM - 1) / Tile::kBlockM).tile_m * Tile::kBlockM;
    const int block_n = static_cast<int>(blockIdx.y) * Tile::kBlockN;
    const int group = static_cast<int>(blockIdx.z);
    const int warpgroup = static_cast<int>(threadIdx.x) / 128, t = static_cast<int>(threadIdx.x) % 128;

    ARows<Tile> rows;
    find_a_rows<Tile>(p, block_m, group, rows);
    float acc[Tile::kBlockN / 2];
    CONVKIT_UNROLL
    for (int i = 0; i < Tile::kBlockN / 2; ++i) acc[i] = 0.0f;

    // Stage 0's descriptors; stage s is s * kStageBytes further (the start address field only).
    const std::uint64_t a0 = tile_descriptor(shared + warpgroup * Tile::kWarpgroupM * Tile::kRowBytes);
    const std::uint64_t b0 = tile_descriptor(shared + Tile::kTileBytesA);
    const int count = (p.gemm_k + k_per_tile<Operand>() - 1) / k_per_tile<Operand>();
    auto stage_of = [&](int kt) { return shared + kt % Tile::kStages * Tile::kStageBytes; };
    auto load = [&](int kt) { load_stage<Tile, P, Operand>(p, rows, block_n, group, kt, stage_of(kt)); };
    CONVKIT_UNROLL
    for (int s = 0; s < Tile::kPrefetch; ++s) {
        if (s < count) load(s);
        ptx::cp_async_commit_group();
    }
    for (int step = 0; step < count; ++step) {
        // Every step commits one group (empty past the end): all but kPrefetch - 1 done means
        // this step's tile has landed, for this thread's copies.
        ptx::cp_async_wait_group<Tile::kPrefetch - 1>();
        if constexpr (OperandFormat<Operand>::kTf32) round_own_chunks_to_tf32<Tile>(stage_of(step));
        ptx::fence_proxy_async_shared();
        // Every thread's copies of this tile are in and visible to the async proxy; both
        // warpgroups have finished tile step - 2 (their wait below in step - 1), whose stage the
        // copies below refill.
        __syncthreads();
        if (step + Tile::kPrefetch < count) load(step + Tile::kPrefetch);
        ptx::cp_async_commit_group();
        const auto offset = static_cast<std::uint32_t>(step % Tile::kStages * Tile::kStageBytes);
        multiply_stage<Tile, Operand>(wgmma::advance_descriptor(a0, offset), wgmma::advance_descriptor(b0, offset),
                                      acc);
        ptx::wgmma_wait_group<1>(acc);
    }
    ptx::wgmma_wait_group<0>(acc);
    ptx::cp_async_wait_group<0>();  // only empty groups remain; no copy outlives the block

    // The D fragment (kernels/ptx.cuh): register i = 4j + 2 half + r of thread t at row
    // 16 (t / 32) + (t % 32) / 4 + 8 half, column 8 j + 2 (t % 4) + r of the warpgroup's 64 x N;
    // row m written at its place in y, or in dx (the phase's position of row m).
    CONVKIT_UNROLL
    for (int half = 0; half < 2; ++half) {
        const int m = block_m + warpgroup * Tile::kWarpgroupM + 16 * (t / 32) + t % 32 / 4 + 8 * half;
        if (m >= p.gemm_m) continue;
        const std::int64_t row = written_row<P>(p, m);
        CONVKIT_UNROLL
        for (int j = 0; j < Tile::kBlockN / 8; ++j) {
            CONVKIT_UNROLL
            for (int r = 0; r < 2; ++r) {
                const int col = block_n + 8 * j + 2 * (t % 4) + r;
                if (col >= p.out_group) continue;
                const int channel = group * p.out_group + col;
                finish_output<Output>(p.epilogue, row * p.out_channels + channel, channel, acc[4 * j + 2 * half + r]);
            }
        }
    }
}

// Blocks of a launch of p: phases x M tiles, N tiles of a group, groups.
template <class Tile>
dim3 grid_of(const IgemmParams& p, std::int64_t groups) {
    return dim3(static_cast<unsigned>(p.phases * ((p.gemm_m + Tile::kBlockM - 1) / Tile::kBlockM)),
                static_cast<unsigned>((p.out_group + Tile::kBlockN - 1) / Tile::kBlockN),
                static_cast<unsigned>(groups));
}

template <class Tile, Pass P, IgemmOperand Operand, IgemmOutput Output>
void launch_pass(const IgemmParams& p, int groups, cudaStream_t stream) {
    const LaunchShape shape{grid_of<Tile>(p, groups), dim3(Tile::kThreads), Tile::kSharedBytes, true};
    launch<conv_wgmma_kernel<Tile, P, Operand, Output>>(shape, stream, p);
}

template <class Tile, Pass P, IgemmOperand Operand>
void dispatch_output(const IgemmParams& p, int groups, IgemmOutput output, cudaStream_t stream) {
    switch (output) {
        case IgemmOutput::BFloat16:
            return launch_pass<Tile, P, Operand, IgemmOutput::BFloat16>(p, groups, stream);
        case IgemmOutput::Float16:
            return launch_pass<Tile, P, Operand, IgemmOutput::Float16>(p, groups, stream);
        case IgemmOutput::Float32:
            return launch_pass<Tile, P, Operand, IgemmOutput::Float32>(p, groups, stream);
    }
}

// tf32 operands come from float32 tensors and write float32 (check_call refuses other outputs).
template <class Tile, Pass P>
void dispatch_operand(const IgemmParams& p, int groups, IgemmOperand operand, IgemmOutput output, cudaStream_t stream) {
    switch (operand) {
        case IgemmOperand::BFloat16:
            return dispatch_output<Tile, P, IgemmOperand::BFloat16>(p, groups, output, stream);
        case IgemmOperand::Float16:
            return dispatch_output<Tile, P, IgemmOperand::Float16>(p, groups, output, stream);
        case IgemmOperand::TensorFloat32:
            return launch_pass<Tile, P, IgemmOperand::TensorFloat32, IgemmOutput::Float32>(p, groups, stream);
    }
}

// The launch of p on the tile its GEMM's columns (channels written per group) take.
template <Pass P>
void dispatch_tile(const IgemmParams& p, int groups, IgemmOperand operand, IgemmOutput output, cudaStream_t stream) {
    if (narrow(p.out_group)) return dispatch_operand<WgmmaNarrowTile, P>(p, groups, operand, output, stream);
    dispatch_operand<WgmmaWideTile, P>(p, groups, operand, output, stream);
}

std::int64_t k_tiles(const IgemmConvShape& s, IgemmOperand operand) {
    const auto d = dims3(s);
    const std::int64_t k = d.kernel[0] * d.kernel[1] * d.kernel[2] * (s.in_channels / s.groups);
    const std::int64_t depth = operand == IgemmOperand::TensorFloat32 ? k_per_tile<IgemmOperand::TensorFloat32>()
                                                                      : k_per_tile<IgemmOperand::BFloat16>();
    return (k + depth - 1) / depth;
}

std::int64_t columns(const IgemmConvShape& s) {
    return s.out_channels / std::max<std::int64_t>(s.groups, 1);
}

// The checks of both launchers: shape and operand supported, pointers, output type, this build.
void check_launch(const char* op, const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, const void* a,
                  const void* w, const void* out, const char* a_name, const char* out_name) {
    if (const std::string why = conv_wgmma_unsupported_reason(s, operand); !why.empty())
        throw NotSupported(std::string(op) + " (" + s.to_string() + "): " + why);
    check_call(op, s, operand, output, a, w, out, a_name, "w", out_name);
    if (!conv_wgmma_built())
        throw NotSupported(std::string(op) + ": this build has no sm_90a code (CMAKE_CUDA_ARCHITECTURES without 90)");
}

// Blocks of a launch of p on the tile its columns take.
std::int64_t blocks_of(const IgemmParams& p, std::int64_t groups) {
    const dim3 grid = narrow(p.out_group) ? grid_of<WgmmaNarrowTile>(p, groups) : grid_of<WgmmaWideTile>(p, groups);
    return std::int64_t{grid.x} * grid.y * grid.z;
}
}  // namespace

std::string conv_wgmma_unsupported_reason(const IgemmConvShape& s, IgemmOperand operand) {
    return conv_igemm_unsupported_reason(s, operand);
}

bool conv_wgmma_built() {
#if defined(CONVKIT_CPU_EMULATION) || defined(CONVKIT_WGMMA_SM90A)
    return true;
#else
    return false;
#endif
}

std::size_t conv_wgmma_shared_bytes(const IgemmConvShape& s) {
    return narrow(columns(s)) ? WgmmaNarrowTile::kSharedBytes : WgmmaWideTile::kSharedBytes;
}

int conv_wgmma_tile_columns(const IgemmConvShape& s) {
    return narrow(columns(s)) ? WgmmaNarrowTile::kBlockN : WgmmaWideTile::kBlockN;
}

std::int64_t conv_wgmma_forward_blocks(const IgemmConvShape& s) {
    return blocks_of(forward_params(s, dims3(s), nullptr, nullptr, {}, nullptr), s.groups);
}

std::int64_t conv_wgmma_forward_instructions(const IgemmConvShape& s, IgemmOperand operand) {
    return conv_wgmma_forward_blocks(s) * k_tiles(s, operand) * WgmmaWideTile::kWarpgroups * WgmmaWideTile::kMmaSteps;
}

std::vector<std::int64_t> conv_wgmma_backward_data_blocks(const IgemmConvShape& s) {
    std::vector<std::int64_t> blocks;
    if (!conv_wgmma_unsupported_reason(s, IgemmOperand::BFloat16).empty()) return blocks;
    for (const BackwardDataGemm& gemm : backward_data_gemms(s, nullptr, nullptr, {}, nullptr))
        blocks.push_back(blocks_of(gemm.params, s.groups));
    return blocks;
}

void conv_wgmma_forward(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, const void* x, const void* w,
                        const IgemmEpilogue& epilogue, void* y, Stream stream) {
    check_launch("conv_wgmma_forward", s, operand, output, x, w, y, "x", "y");
    dispatch_tile<Pass::Forward>(forward_params(s, dims3(s), x, w, epilogue, y), i32(s.groups), operand, output,
                                 detail::to_cuda(stream));
}

void conv_wgmma_backward_data(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, const void* dy,
                              const void* w, const IgemmEpilogue& epilogue, void* dx, Stream stream) {
    check_launch("conv_wgmma_backward_data", s, operand, output, dy, w, dx, "dy", "dx");
    for (const BackwardDataGemm& gemm : backward_data_gemms(s, dy, w, epilogue, dx))
        dispatch_tile<Pass::BackwardData>(gemm.params, i32(s.groups), operand, output, detail::to_cuda(stream));
}

CONVKIT_KERNELS_END
