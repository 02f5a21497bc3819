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
// where a group has at most 64 channels written (y's forward, dx's backward-data). k advances one 128-byte row at a
// time (64 16-bit values, or 32 tf32 for float32 tensors: m64nNk8, 4 chunks of 4 channels) through a 4-stage cp.async
// ring; each stage holds A (128 rows) and B (128 or 64 rows) K-major in the 128-byte-swizzled layout the wgmma
// descriptors describe (kernels/wgmma_descriptor.h): row r at r * 128 bytes of its 1024-byte-aligned tile, its 16-byte
// chunk c stored at chunk c ^ (r % 8).
//
// The ring (kernels/conv_wgmma_ring.cuh, no mbarriers): per k tile, every thread waits for its
// own cp.async group of that tile, rounds its chunks to tf32 in place for float32 tensors (the
// tensor cores would truncate them), fences them for the async proxy, a barrier; each warpgroup
// then issues 4 wgmmas (32 bytes of k each) as one commit group and waits until at most that
// group is in flight, while the threads copy the tile two ahead. cuda.wgmma.producer runs the
// same tiles on the producer ring (a third warpgroup copies, mbarriers hand the stages over), and
// copies B there (and A, for a 1x1 convolution of stride 1, and in the forward by im2col) with the
// bulk tensor copy where a tensor map describes it (weight_map_spec, activation_map_spec,
// activation_im2col_spec, copy_tiles); where both are, one producer thread copies and hands over
// every stage (the AllBulk tiles).
#include "kernels/conv_wgmma.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "convkit/error.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_igemm_gather.cuh"
#include "kernels/conv_igemm_phases.cuh"
#include "kernels/conv_igemm_support.cuh"
#include "kernels/conv_wgmma_ring.cuh"
#include "kernels/launch.cuh"
#include "kernels/ptx.cuh"
#include "kernels/tensor_map.h"
#include "kernels/wgmma_descriptor.h"

CONVKIT_KERNELS_BEGIN

namespace {
using namespace igemm;

using wgmma_ring::WgmmaAllBulkNarrowTile;
using wgmma_ring::WgmmaAllBulkWideTile;
using wgmma_ring::WgmmaNarrowTile;
using wgmma_ring::WgmmaProducerNarrowTile;
using wgmma_ring::WgmmaProducerWideTile;
using wgmma_ring::WgmmaTileConfig;
using wgmma_ring::WgmmaWideTile;

// The tile a GEMM of `columns` columns (output channels per group) runs with.
constexpr bool narrow(std::int64_t columns) {
    return columns <= WgmmaNarrowTile::kBlockN;
}

// A k tile's depth: a 128-byte row of 64 16-bit values or 32 tf32 (float32 bits), 8 or 4 a chunk.
template <IgemmOperand Operand>
constexpr int k_per_tile() {
    static_assert(wgmma_ring::row_depth(Operand) == WgmmaWideTile::kChunks * OperandFormat<Operand>::kPerChunk);
    return static_cast<int>(wgmma_ring::row_depth(Operand));
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

// The operands the producer copies with the bulk tensor copy (cuda.wgmma.producer, 16-bit): each
// one's tensor map and rank, rank 0 where the producer's threads copy it with cp.async
// (activation_map_spec, weight_map_spec). A `const __grid_constant__` kernel parameter: the copy
// reads the maps where the launch put them.
struct BulkOperands {
    tma::TensorMap a_map, b_map;
    int a_rank, b_rank;
    bool a_im2col;  // a_map an im2col map of the forward's x (activation_im2col_spec), else a tiled one
};

// Issues this thread's cp.async copies of A's k tile `kt` into `stage` (the gathered rows of x,
// or of dy for backward-data).
template <class Tile, IgemmOperand Operand>
__device__ inline void load_a_tile(const IgemmParams& p, const ARows<Tile>& rows, int kt, unsigned char* stage) {
    using Element = typename OperandFormat<Operand>::Element;
    const int chunk = static_cast<int>(threadIdx.x) % Tile::kChunks;
    const int k = kt * k_per_tile<Operand>() + chunk * OperandFormat<Operand>::kPerChunk;
    gather_a_chunks<Tile, Element>(p, rows, k, [&](int row, const Element* source, int bytes) {
        ptx::cp_async<16>(stage + swizzled_128(row, chunk), source, bytes);
    });
}

// Issues this thread's cp.async copies of B's k tile `kt` into `stage` (rows j of the weight,
// k-contiguous per 16-byte chunk).
template <class Tile, Pass P, IgemmOperand Operand>
__device__ inline void load_b_tile(const IgemmParams& p, int block_n, int group, int kt, unsigned char* stage) {
    using Element = typename OperandFormat<Operand>::Element;
    const int chunk = static_cast<int>(threadIdx.x) % Tile::kChunks;
    const int first_row = static_cast<int>(threadIdx.x) / Tile::kChunks;
    const int k = kt * k_per_tile<Operand>() + chunk * OperandFormat<Operand>::kPerChunk;
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

// One thread's bulk copies of k tile `kt` into `stage`, after one arrival on `full` that covers
// their bytes (the phase completes once they land and the 128 hand-overs are in). A: the box at
// (k, group, block_m) of the source seen as rows (rows past the GEMM's M, k past its depth: zeros),
// or in the forward the im2col walk from the block's first output position (its window's corner)
// with the tile's tap times the dilation as offsets and its 64 channels of the group.
// B: the box at (k, block_n, group) of the forward's weight map, or at (k's channel, its reversed
// filter tap, block_n, group) of backward-data's (a k tile lies inside one tap there); rows past
// the group's columns and k past its depth are outside the map: zeros, as load_b_tile's.
template <class Tile, Pass P, IgemmOperand Operand>
__device__ inline void copy_tiles(const IgemmParams& p, const BulkOperands& bulk, int block_m, int block_n, int group,
                                  int kt, unsigned char* stage, std::uint64_t* full) {
    const int k = kt * k_per_tile<Operand>();
    // An all-bulk tile expects its whole stage: were a rank ever 0 there, its stage would never
    // complete (a deadlock the emulator names), not reach the tensor cores unwritten.
    ptx::mbarrier_arrive_expect_tx(
        full, static_cast<unsigned>(Tile::kAllBulk ? Tile::kStageBytes
                                                   : (bulk.a_rank > 0 ? Tile::kTileBytesA : 0) +
                                                         (bulk.b_rank > 0 ? Tile::kTileBytesB : 0)));
    if (bulk.a_rank > 0 && !bulk.a_im2col) {
        const int at[3] = {k, group, block_m};
        ptx::bulk_tensor_load(stage, bulk.a_map, at, full);
    }
    if constexpr (P == Pass::Forward) {
        if (bulk.a_im2col) {  // the block's first output position, read at the tile's tap
            const int u = p.source_group.divide(k);
            const Coordinates tap = split_tap(p, u), row = split_row(p, block_m);
            const int corner[3] = {p.row_start_w + row.w * p.row_step_w, p.row_start_h + row.h * p.row_step_h,
                                   p.row_start_d + row.d * p.row_step_d};
            const int offsets[3] = {tap.w * p.tap_reach_w, tap.h * p.tap_reach_h, tap.d * p.tap_reach_d};
            wgmma_ring::bulk_im2col_load(stage, bulk.a_map, bulk.a_rank,
                                         group * p.source_group.divisor() + k - u * p.source_group.divisor(), corner,
                                         row.n, offsets, full);
        }
    }
    if (bulk.b_rank == 0) return;
    if constexpr (P == Pass::Forward) {
        const int at[3] = {k, block_n, group};
        ptx::bulk_tensor_load(stage + Tile::kTileBytesA, bulk.b_map, at, full);
    } else {
        const int u = p.source_group.divide(k);
        const int at[4] = {k - u * p.source_group.divisor(), p.filter_taps - 1 - phase_filter_tap(p, split_tap(p, u)),
                           block_n, group};
        ptx::bulk_tensor_load(stage + Tile::kTileBytesA, bulk.b_map, at, full);
    }
}

// tf32: rounds the chunks this thread copied into `stage` (load_a_tile's and load_b_tile's rows and chunk) to
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

// grid: x over M tiles (of each phase in turn: IgemmParams::phases), y over N tiles of a group,
// z over groups x splits (split-K: each block multiplies its split's range of k tiles).
template <class Tile, Pass P, IgemmOperand Operand, IgemmOutput Output>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kBlocksPerSm)
    conv_wgmma_kernel(IgemmParams p, const __grid_constant__ BulkOperands bulk) {
    unsigned char* shared = wgmma_ring::aligned_shared<Tile>();
    const BlockTile tile = take_block_tile<P>(p, (p.gemm_m + Tile::kBlockM - 1) / Tile::kBlockM);
    const int block_m = tile.tile_m * Tile::kBlockM;
    const int block_n = static_cast<int>(blockIdx.y) * Tile::kBlockN;
    const int group = static_cast<int>(blockIdx.z) / p.splits, split = static_cast<int>(blockIdx.z) % p.splits;
    const int warpgroup = wgmma_ring::multiplying_warpgroup<Tile>();  // -1: the producer

    ARows<Tile> rows;  // the rows A's gather reads (none where every tile comes by bulk copies)
    if constexpr (!Tile::kAllBulk) find_a_rows<Tile>(p, block_m, group, rows);
    float acc[Tile::kBlockN / 2];
    CONVKIT_UNROLL
    for (int i = 0; i < Tile::kBlockN / 2; ++i) acc[i] = 0.0f;

    // Stage 0's descriptors; stage s is s * kStageBytes further (the start address field only).
    const std::uint64_t a0 =
        tile_descriptor(shared + (warpgroup > 0 ? warpgroup : 0) * Tile::kWarpgroupM * Tile::kRowBytes);
    const std::uint64_t b0 = tile_descriptor(shared + Tile::kTileBytesA);
    auto stage_of = [&](int kt) { return shared + kt % Tile::kStages * Tile::kStageBytes; };
    const SplitRange range =
        split_range(split, p.tiles_per_split, (p.gemm_k + k_per_tile<Operand>() - 1) / k_per_tile<Operand>());
    // The stage's full barrier is the producer ring's (null in run_ring's, where every copy is a cp.async).
    auto load = [&](int kt, std::uint64_t* full) {
        const int k_tile = range.first + kt;
        if constexpr (!Tile::kAllBulk) {
            if (bulk.a_rank == 0) load_a_tile<Tile, Operand>(p, rows, k_tile, stage_of(kt));
            if (bulk.b_rank == 0) load_b_tile<Tile, P, Operand>(p, block_n, group, k_tile, stage_of(kt));
        }
        if ((bulk.a_rank | bulk.b_rank) != 0 && threadIdx.x == 0)
            copy_tiles<Tile, P, Operand>(p, bulk, block_m, block_n, group, k_tile, stage_of(kt), full);
    };
    auto landed = [&](int step) {
        if constexpr (OperandFormat<Operand>::kTf32) {
            if constexpr (Tile::kAllBulk) {
                wgmma_ring::round_stage_share_to_tf32<Tile>(stage_of(step));
            } else {
                round_own_chunks_to_tf32<Tile>(stage_of(step));
            }
        }
    };
    auto multiply = [&](int step) {
        const auto offset = static_cast<std::uint32_t>(step % Tile::kStages * Tile::kStageBytes);
        wgmma_ring::multiply_steps<Operand, Tile::kBlockN, false, Tile::kMmaSteps>(
            wgmma::advance_descriptor(a0, offset), wgmma::advance_descriptor(b0, offset), 32, acc);
    };
    if constexpr (Tile::kProducer) {
        auto* barriers = reinterpret_cast<std::uint64_t*>(shared + Tile::kStages * Tile::kStageBytes);
        constexpr bool kRoundsLanded = Tile::kAllBulk && OperandFormat<Operand>::kTf32;
        wgmma_ring::run_producer_ring<Tile::kStages, Tile::kAllBulk, kRoundsLanded>(
            range.count, acc, barriers, (bulk.a_rank | bulk.b_rank) != 0 ? 1u : 0u, load, landed, multiply);
        if (warpgroup < 0) return;  // the producer holds no results
    } else {
        wgmma_ring::run_ring<Tile::kStages>(
            range.count, acc, [&](int kt) { load(kt, nullptr); }, landed, multiply);
    }

    // Row m of the block's tile: to this split's slice at the GEMM's own row (after the rows of
    // the phases before this one), or through the epilogue to its place in y, or in dx (the
    // phase's position of row m). Staged through the ring's shared memory where 16-byte packs
    // fit, else straight from the warpgroup's D fragment.
    const bool to_slice = p.splits > 1;
    float* const slice =
        to_slice ? p.slices + split * static_cast<std::int64_t>(p.phases) * p.gemm_m * p.out_channels : nullptr;
    const ResultWriter<Output> write{p.epilogue, slice, p.out_channels, p.out_group, group};
    auto row_of = [&](int m) -> std::int64_t {
        if (m >= p.gemm_m) return -1;
        return to_slice ? static_cast<std::int64_t>(tile.phase) * p.gemm_m + m : written_row<P>(p, m);
    };
    const int first_row = warpgroup * Tile::kWarpgroupM;  // of this warpgroup's piece in the tile
    if (write.packs) {
        auto pairs = [&](auto&& f) {
            wgmma_ring::for_each_d_pair<Tile::kBlockN>(
                acc, [&](int row) -> std::int64_t { return first_row + row; },
                [&](std::int64_t row, int column, float v0, float v1) { f(static_cast<int>(row), column, v0, v1); });
        };
        // The multiplying warpgroups only: the producer's has returned, so they meet at a named
        // barrier of their own (ids past 0 are used nowhere else in the kernel).
        constexpr int kResultThreads = 128 * Tile::kWarpgroups;
        auto sync = [] {
            if constexpr (Tile::kProducer) {
                ptx::named_barrier_sync(1, kResultThreads);
            } else {
                __syncthreads();
            }
        };
        write_staged<StagedTile<Tile::kBlockM, Tile::kBlockN, std::size_t{Tile::kStages} * Tile::kStageBytes>>(
            shared, write, block_n, pairs, [&](int tile_row) { return row_of(block_m + tile_row); },
            static_cast<int>(threadIdx.x) - (Tile::kThreads - kResultThreads), kResultThreads, sync);
        return;
    }
    wgmma_ring::for_each_d_pair<Tile::kBlockN>(
        acc, [&](int row) { return row_of(block_m + first_row + row); },
        [&](std::int64_t row, int column, float v0, float v1) { write(row, block_n + column, v0, v1); });
}

// Blocks of a launch of p: phases x M tiles, N tiles of a group, groups x splits.
template <class Tile>
dim3 grid_of(const IgemmParams& p, std::int64_t groups) {
    return dim3(static_cast<unsigned>(p.phases * ((p.gemm_m + Tile::kBlockM - 1) / Tile::kBlockM)),
                static_cast<unsigned>((p.out_group + Tile::kBlockN - 1) / Tile::kBlockN),
                static_cast<unsigned>(groups * p.splits));
}

// The weight's tensor map for the producer's bulk copies of B (copy_tiles), boxes of a k tile by
// `tile_columns` rows; nullopt where B goes by cp.async: backward-data whose channels per group
// are not whole k tiles (a tile would straddle two taps), and a map the driver would refuse (a
// phase of no taps). Forward: the KRSC weight as (k, out channel, group); backward-data: the
// transposed weight as (source channel, reversed tap, out channel, group).
template <Pass P>
std::optional<tma::TiledTensorMapSpec> weight_map_spec(const IgemmParams& p, std::int64_t groups, IgemmOperand operand,
                                                       int tile_columns) {
    const std::uint32_t depth = wgmma_ring::row_depth(operand);
    tma::TiledTensorMapSpec s;
    s.global = p.w;
    s.type = wgmma_ring::map_element_type(operand);
    const std::uint64_t kElement = tma::element_bytes(s.type);
    s.swizzle = wgmma::Swizzle::Bytes128;
    const auto columns = static_cast<std::uint64_t>(p.out_group), all_groups = static_cast<std::uint64_t>(groups);
    const auto box_rows = static_cast<std::uint32_t>(tile_columns);
    if constexpr (P == Pass::Forward) {
        const auto k = static_cast<std::uint64_t>(p.gemm_k);
        s.rank = 3;
        s.dims = {k, columns, all_groups};
        s.strides = {0, k * kElement, columns * k * kElement};
        s.box = {depth, box_rows, 1};
    } else {
        const auto channels = static_cast<std::uint64_t>(p.source_group.divisor());
        const auto taps = static_cast<std::uint64_t>(p.filter_taps);
        if (channels % depth != 0) return std::nullopt;
        s.rank = 4;
        s.dims = {channels, taps, columns, all_groups};
        s.strides = {0, channels * kElement, taps * channels * kElement, columns * taps * channels * kElement};
        s.box = {depth, 1, box_rows, 1};
    }
    if (!tma::tiled_tensor_map_problem(s).empty()) return std::nullopt;
    return s;
}

// The source's tensor map for the producer's bulk copies of A (copy_tiles), boxes of a k tile by
// the block's rows, where the GEMM's rows are the source's own rows: one tap, stride 1, no offset,
// the rows' dims the source's. That is a 1x1 convolution with stride 1 and no padding, forward or
// backward-data (ResNet's bottleneck 1x1s), and a strided backward-data's phase that reads dy at
// its own positions through one tap (the even phase of a 1x1/2, or of a 3x3/2 with padding 1 on
// an odd input). A is then the source seen as (channel in group, group, row); nullopt elsewhere
// (the gather picks rows and taps the copy engine's tile mode cannot).
std::optional<tma::TiledTensorMapSpec> activation_map_spec(const IgemmParams& p, std::int64_t groups,
                                                           IgemmOperand operand) {
    const int channels = p.source_group.divisor();
    const bool rows_are_source_rows = p.phases == 1 && p.gemm_k == channels && p.row_step_d == 1 && p.row_step_h == 1 &&
                                      p.row_step_w == 1 && p.row_start_d == 0 && p.row_start_h == 0 &&
                                      p.row_start_w == 0 && p.rows_d.divisor() == p.source_d &&
                                      p.rows_h.divisor() == p.source_h && p.rows_w.divisor() == p.source_w;
    if (!rows_are_source_rows) return std::nullopt;
    tma::TiledTensorMapSpec s;
    s.global = p.source;
    s.type = wgmma_ring::map_element_type(operand);
    const std::uint64_t kElement = tma::element_bytes(s.type);
    s.swizzle = wgmma::Swizzle::Bytes128;
    s.rank = 3;
    s.dims = {static_cast<std::uint64_t>(channels), static_cast<std::uint64_t>(groups),
              static_cast<std::uint64_t>(p.gemm_m)};
    s.strides = {0, channels * kElement, static_cast<std::uint64_t>(p.source_channels) * kElement};
    s.box = {wgmma_ring::row_depth(operand), 1, WgmmaWideTile::kBlockM};
    if (!tma::tiled_tensor_map_problem(s).empty()) return std::nullopt;
    return s;
}

// x's im2col map for the producer's bulk copies of A in the forward (copy_tiles): one copy a k
// tile, the block's 128 output positions (the GEMM's rows in order, on into the next image) at
// the tile's tap (wgmma_ring::im2col_walk_spec). Where a group's channels are whole k tiles (64,
// or 32 tf32: no tile straddles two taps), the corners fit the rank's range and every tap's offset
// its width; nullopt elsewhere.
std::optional<tma::Im2colTensorMapSpec> activation_im2col_spec(const IgemmParams& p, IgemmOperand operand) {
    if (p.phases != 1) return std::nullopt;
    wgmma_ring::Im2colWalk w;
    w.source = p.source;
    w.operand = operand;
    w.channels = p.source_channels;
    w.group_channels = p.source_group.divisor();
    const int kernel_w = p.gathered_taps_w.divisor(), kernel_h = p.gathered_taps_h.divisor();
    w.size = {p.source_w, p.source_h, p.source_d};
    w.kernel = {kernel_w, kernel_h, w.group_channels > 0 ? p.gemm_k / (w.group_channels * kernel_h * kernel_w) : 1};
    w.padding = {-p.row_start_w, -p.row_start_h, -p.row_start_d};
    w.dilation = {p.tap_reach_w, p.tap_reach_h, p.tap_reach_d};
    w.stride = {p.row_step_w, p.row_step_h, p.row_step_d};
    w.images = static_cast<std::uint64_t>(p.gemm_m) /
               (static_cast<std::uint64_t>(p.rows_d.divisor()) * p.rows_h.divisor() * p.rows_w.divisor());
    w.pixels = WgmmaWideTile::kBlockM;
    return wgmma_ring::im2col_walk_spec(w);
}

// The maps of a producer launch's bulk copies (none: its threads copy with cp.async): A tiled
// where the GEMM's rows are the source's, else in the forward by im2col where that fits; B tiled.
// Chosen once, by plan_launch, for the plan and the launch alike.
struct BulkCopies {
    std::optional<tma::TiledTensorMapSpec> a_tiled;
    std::optional<tma::Im2colTensorMapSpec> a_im2col;
    std::optional<tma::TiledTensorMapSpec> b;

    // Both tiles of every stage: the producer's threads copy nothing (the AllBulk tiles).
    bool all() const { return (a_tiled || a_im2col) && b; }
};

// tf32 takes them only where both tiles come by copies (the producer's threads then round whole
// stages once they land, produce_bulk_and_round); with one tile gathered, the threads round only
// the chunks they copied themselves, so a copied tile would reach the tensor cores unrounded.
template <Pass P>
BulkCopies bulk_copies(const IgemmParams& p, std::int64_t groups, IgemmOperand operand, int tile_columns) {
    BulkCopies copies;
    copies.a_tiled = activation_map_spec(p, groups, operand);
    if (P == Pass::Forward && !copies.a_tiled) copies.a_im2col = activation_im2col_spec(p, operand);
    copies.b = weight_map_spec<P>(p, groups, operand, tile_columns);
    if (operand == IgemmOperand::TensorFloat32 && !copies.all()) return {};
    return copies;
}

// The kernel parameter of `copies`: their maps encoded (the driver's, or the emulator's).
BulkOperands encoded(const BulkCopies& copies) {
    BulkOperands bulk{};
    bulk.a_rank = bulk.b_rank = 0;
    bulk.a_im2col = copies.a_im2col.has_value();
    if (copies.a_tiled) {
        bulk.a_map = encode_tiled_tensor_map("conv_wgmma", *copies.a_tiled);
        bulk.a_rank = copies.a_tiled->rank;
    } else if (copies.a_im2col) {
        bulk.a_map = encode_im2col_tensor_map("conv_wgmma", *copies.a_im2col);
        bulk.a_rank = copies.a_im2col->rank;
    }
    if (copies.b) {
        bulk.b_map = encode_tiled_tensor_map("conv_wgmma", *copies.b);
        bulk.b_rank = copies.b->rank;
    }
    return bulk;
}

// The GEMM kernel, then (split-K) the adder of its slices, which runs the epilogue. A tile without
// a producer has no bulk copies (its ring waits on no mbarrier): plan_launch chooses none for it.
template <class Tile, Pass P, IgemmOperand Operand, IgemmOutput Output>
void launch_pass(const IgemmParams& p, int groups, const BulkCopies& copies, cudaStream_t stream) {
    const LaunchShape shape{grid_of<Tile>(p, groups), dim3(Tile::kThreads), Tile::kSharedBytes, true};
    launch<conv_wgmma_kernel<Tile, P, Operand, Output>>(shape, stream, p,
                                                        encoded(Tile::kProducer ? copies : BulkCopies{}));
    if (p.splits > 1) {
        add_split_slices<Output>(p.slices, p.splits, p.phases * p.gemm_m, p.out_channels, WrittenRow<P>{p}, p.epilogue,
                                 stream);
    }
}

// The launch of p on the tile its GEMM's columns (channels written per group) take, with or
// without the producer warpgroup, whose threads copy nothing where every tile comes by bulk copies
// (but round tf32 stages once they land).
template <Pass P>
void dispatch_tile(const IgemmParams& p, int groups, bool producer, const BulkCopies& copies, IgemmOperand operand,
                   IgemmOutput output, cudaStream_t stream) {
    with_operand_and_output(operand, output, [&](auto op, auto out) {
        // The narrow or the wide tile of one ring.
        auto on = [&]<class Narrow, class Wide>(Narrow, Wide) {
            constexpr IgemmOperand kOperand = decltype(op)::value;
            constexpr IgemmOutput kOutput = decltype(out)::value;
            if (narrow(p.out_group)) return launch_pass<Narrow, P, kOperand, kOutput>(p, groups, copies, stream);
            launch_pass<Wide, P, kOperand, kOutput>(p, groups, copies, stream);
        };
        if (producer && copies.all()) return on(WgmmaAllBulkNarrowTile{}, WgmmaAllBulkWideTile{});
        if (producer) return on(WgmmaProducerNarrowTile{}, WgmmaProducerWideTile{});
        on(WgmmaNarrowTile{}, WgmmaWideTile{});
    });
}

// The k tiles of a GEMM of depth k: 64 16-bit values or 32 tf32 each.
std::int64_t k_tiles_of_depth(std::int64_t k, IgemmOperand operand) {
    const std::int64_t depth = wgmma_ring::row_depth(operand);
    return (k + depth - 1) / depth;
}

std::int64_t columns(const IgemmConvShape& s) {
    return s.out_channels / std::max<std::int64_t>(s.groups, 1);
}

// One GEMM launch: its params and its plan, the split the caller names or the default one. What
// conv_wgmma_*_plan report is what the launchers run: both come from here.
struct Launch {
    IgemmParams params;
    WgmmaLaunchPlan plan;
    BulkCopies copies;  // the producer's (none without one)
};

template <Pass P>
Launch plan_launch(const IgemmParams& p, std::int64_t groups, IgemmOperand operand, const WgmmaSchedule& schedule) {
    Launch l{p, {}, {}};
    l.plan.m = p.gemm_m;
    l.plan.n = p.out_group;
    l.plan.k = p.gemm_k;
    l.plan.phases = p.phases;
    l.plan.tile_columns = narrow(p.out_group) ? WgmmaNarrowTile::kBlockN : WgmmaWideTile::kBlockN;
    l.plan.blocks = p.phases * ((p.gemm_m + WgmmaWideTile::kBlockM - 1) / WgmmaWideTile::kBlockM) *
                    ((p.out_group + l.plan.tile_columns - 1) / l.plan.tile_columns) * groups;
    const std::int64_t k_tiles = k_tiles_of_depth(p.gemm_k, operand);
    l.plan.producer_warpgroup = schedule.producer_warpgroup;
    if (schedule.producer_warpgroup) l.copies = bulk_copies<P>(p, groups, operand, l.plan.tile_columns);
    l.plan.weight_by_bulk_copy = l.copies.b.has_value();
    l.plan.activations_by_bulk_copy = l.copies.a_tiled.has_value() || l.copies.a_im2col.has_value();
    l.plan.splits = schedule.splits.value_or(
        default_splits_for_wave(wgmma_ring::wave_blocks(l.plan.tile_columns), l.plan.blocks, k_tiles, groups));
    l.plan.wgmma_instructions = l.plan.blocks * k_tiles * WgmmaWideTile::kWarpgroups * WgmmaWideTile::kMmaSteps;
    l.params.splits = l.plan.splits;
    l.params.tiles_per_split = tiles_per_split(k_tiles, l.plan.splits);
    return l;
}

std::vector<Launch> forward_launches(const IgemmConvShape& s, IgemmOperand operand, const WgmmaSchedule& schedule,
                                     const void* x, const void* w, const IgemmEpilogue& epilogue, void* y) {
    return {plan_launch<Pass::Forward>(forward_params(s, dims3(s), x, w, epilogue, y), s.groups, operand, schedule)};
}

std::vector<Launch> backward_data_launches(const IgemmConvShape& s, IgemmOperand operand, const WgmmaSchedule& schedule,
                                           const void* dy, const void* w, const IgemmEpilogue& epilogue, void* dx) {
    std::vector<Launch> launches;
    for (const BackwardDataGemm& gemm : backward_data_gemms(s, dy, w, epilogue, dx))
        launches.push_back(plan_launch<Pass::BackwardData>(gemm.params, s.groups, operand, schedule));
    return launches;
}

WgmmaPlan plan_of(const IgemmConvShape& s, const std::vector<Launch>& launches) {
    return plan_of_launches<WgmmaPlan>(s.groups, launches);
}

// Checks the launcher's call, every launch's split and the workspace, then runs the launches in
// order on `stream` (they share the workspace: each adds its slices before the next starts).
template <Pass P>
void run_launches(const char* op, const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output,
                  std::vector<Launch> launches, void* workspace, Stream stream) {
    const std::size_t workspace_bytes = plan_of(s, launches).workspace_bytes();
    for (const Launch& l : launches) check_splits(op, l.plan.splits, s.groups, workspace, workspace_bytes);
    for (Launch& l : launches) {
        l.params.slices = static_cast<float*>(workspace);
        dispatch_tile<P>(l.params, i32(s.groups), l.plan.producer_warpgroup, l.copies, operand, output,
                         detail::to_cuda(stream));
    }
}
}  // namespace

std::size_t WgmmaPlan::workspace_bytes() const {
    return largest_split_slice_bytes(groups, launches);
}

std::int64_t WgmmaPlan::blocks() const {
    std::int64_t sum = 0;
    for (const WgmmaLaunchPlan& l : launches) sum += l.blocks * l.splits;
    return sum;
}

std::int64_t WgmmaPlan::wgmma_instructions() const {
    std::int64_t sum = 0;
    for (const WgmmaLaunchPlan& l : launches) sum += l.wgmma_instructions;
    return sum;
}

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

WgmmaPlan conv_wgmma_forward_plan(const IgemmConvShape& s, IgemmOperand operand, const WgmmaSchedule& schedule) {
    if (!conv_wgmma_unsupported_reason(s, operand).empty()) return {};
    return plan_of(s, forward_launches(s, operand, schedule, nullptr, nullptr, {}, nullptr));
}

WgmmaPlan conv_wgmma_backward_data_plan(const IgemmConvShape& s, IgemmOperand operand, const WgmmaSchedule& schedule) {
    if (!conv_wgmma_unsupported_reason(s, operand).empty()) return {};
    return plan_of(s, backward_data_launches(s, operand, schedule, nullptr, nullptr, {}, nullptr));
}

void conv_wgmma_forward(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output,
                        const WgmmaSchedule& schedule, const void* x, const void* w, const IgemmEpilogue& epilogue,
                        void* y, void* workspace, Stream stream) {
    const char* op = "conv_wgmma_forward";
    wgmma_ring::check_launch(op, conv_wgmma_unsupported_reason(s, operand), s, operand, output, x, w, y, "x", "w", "y");
    run_launches<Pass::Forward>(op, s, operand, output, forward_launches(s, operand, schedule, x, w, epilogue, y),
                                workspace, stream);
}

void conv_wgmma_backward_data(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output,
                              const WgmmaSchedule& schedule, const void* dy, const void* w,
                              const IgemmEpilogue& epilogue, void* dx, void* workspace, Stream stream) {
    const char* op = "conv_wgmma_backward_data";
    wgmma_ring::check_launch(op, conv_wgmma_unsupported_reason(s, operand), s, operand, output, dy, w, dx, "dy", "w",
                             "dx");
    run_launches<Pass::BackwardData>(
        op, s, operand, output, backward_data_launches(s, operand, schedule, dy, w, epilogue, dx), workspace, stream);
}

CONVKIT_KERNELS_END
