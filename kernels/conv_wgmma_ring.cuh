#pragma once
// What the warpgroup-MMA convolution kernels share (kernels/conv_wgmma.cu, forward and
// backward-data; kernels/conv_wgmma_filter.cu, backward-filter): the block tiles, the cp.async ring
// that feeds the tensor cores without mbarriers, the producer ring on mbarriers (its threads'
// copies, or one thread's bulk tensor copies, rounded once landed for tf32), a stage's k steps of
// wgmma, the walk over the D fragment, and the im2col walk of the bulk copies' gathered tiles.
// Private to those files.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "convkit/error.h"
#include "kernels/conv_igemm.h"
#include "kernels/conv_igemm_support.cuh"
#include "kernels/conv_wgmma.h"
#include "kernels/kernel_support.cuh"
#include "kernels/launch.cuh"
#include "kernels/ptx.cuh"
#include "kernels/tensor_map.h"
#include "kernels/wgmma_descriptor.h"

CONVKIT_KERNELS_BEGIN
namespace wgmma_ring {

// The block's shape: BlockM x BlockN of D, 2 warpgroups of 64 rows each, a k tile of 128 bytes
// per row of A and of B (K-major: one swizzled row per M or N row, the forward's; MN-major: 64
// k-rows of BlockM or BlockN 16-bit values, backward-filter's: the same bytes), Stages of them;
// and what the forward's A gather (ARows, find_a_rows, gather_a_chunks) reads from it: the
// loaders' layout (kChunks chunks a row, kRowsPerPass rows a pass, kPassesA/B passes). With
// Producer, a third warpgroup, the block's first (threads 0-127), is the only loader and the two
// multiplying warpgroups follow it (run_producer_ring: the stages handed over on mbarriers, kept
// after the stages); without, all threads load and multiply (run_ring). With AllBulk too, both
// tiles of every stage come by bulk tensor copies that one producer thread issues, and that thread
// alone hands the stage over (the stage's full barrier then waits for one arrival and the copies'
// bytes, not for 128 threads' hand-overs of copies that are not theirs). The static check
// (tests/scripts/check-igemm-kernels) reads BlockM, BlockN, Stages, Producer and AllBulk from the
// kernel's name.
template <int BlockM, int BlockN, int Stages, bool Producer = false, bool AllBulk = false>
struct WgmmaTileConfig {
    static constexpr int kBlockM = BlockM, kBlockN = BlockN, kStages = Stages;
    static constexpr bool kProducer = Producer, kAllBulk = AllBulk;
    static_assert(Producer || !AllBulk, "only a producer warpgroup issues bulk copies");
    static constexpr int kWarpgroupM = 64;                    // wgmma's M
    static constexpr int kWarpgroups = BlockM / kWarpgroupM;  // multiplying, each all BlockN columns
    static constexpr int kProducerThreads = Producer ? 128 : 0;
    static constexpr int kThreads = 128 * kWarpgroups + kProducerThreads;
    static constexpr int kLoaders = Producer ? kProducerThreads : kThreads;  // threads 0 .. kLoaders - 1
    static constexpr int kRowBytes = 128;           // a k tile: one 128-byte swizzled row
    static constexpr int kChunks = kRowBytes / 16;  // 16-byte cp.async chunks a row
    static constexpr int kRowsPerPass = kLoaders / kChunks;
    static constexpr int kPassesA = BlockM / kRowsPerPass, kPassesB = BlockN / kRowsPerPass;
    static constexpr int kMmaSteps = kRowBytes / 32;  // k16 (16-bit) or k8 (tf32) steps of 32 bytes a tile
    static constexpr int kAtomBytes = 1024;           // 8 rows x 128 bytes: the swizzle's repeat
    static constexpr int kTileBytesA = BlockM * kRowBytes, kTileBytesB = BlockN * kRowBytes;
    static constexpr int kStageBytes = kTileBytesA + kTileBytesB;
    // The producer ring's full and empty mbarriers, 8 bytes each, after the stages; with AllBulk a
    // third set, the copies' landed barriers, which a tf32 stage is rounded on before its hand-over.
    static constexpr int kBarrierBytes = Producer ? (AllBulk ? 3 : 2) * Stages * 8 : 0;
    // The stages, the barriers, and an atom's slack to start the stages on a 1024-byte boundary of
    // the shared window.
    static constexpr std::size_t kSharedBytes = std::size_t{kStageBytes} * Stages + kBarrierBytes + kAtomBytes;
    // Blocks an SM holds by their shared memory (one 129 KiB wide block, two 97 KiB narrow ones),
    // which __launch_bounds__ asks the registers to allow too (a producer's 384 threads x 2
    // blocks: 80 registers a thread, registers being allocated 8 at a time).
    static constexpr int kBlocksPerSm = BlockN == 64 ? 2 : 1;
    static_assert(BlockN == 64 || BlockN == 128, "wgmma_mma_async has device code for N = 64 and 128");
    static_assert(BlockM % kWarpgroupM == 0 && BlockM % kRowsPerPass == 0 && BlockN % kRowsPerPass == 0);
    static_assert(kSharedBytes <= kMaxOptInDynamicSharedBytes, "a block's shared memory within sm_90's 227 KiB");
};
// 128 x 128 for GEMMs of more than 64 columns; 128 x 64 (m64n64k16) up to 64, where the wide
// tile would multiply zero columns half the time (ResNet's 64-channel layers); each also with a
// producer warpgroup (cuda.wgmma.producer).
using WgmmaWideTile = WgmmaTileConfig<128, 128, 4>;
using WgmmaNarrowTile = WgmmaTileConfig<128, 64, 4>;
using WgmmaProducerWideTile = WgmmaTileConfig<128, 128, 4, true>;
using WgmmaProducerNarrowTile = WgmmaTileConfig<128, 64, 4, true>;
using WgmmaAllBulkWideTile = WgmmaTileConfig<128, 128, 4, true, true>;
using WgmmaAllBulkNarrowTile = WgmmaTileConfig<128, 64, 4, true, true>;

// This thread's multiplying warpgroup (0 or 1: rows 64g..64g+63 of the tile), or -1 for the
// producer warpgroup.
template <class Tile>
__device__ inline int multiplying_warpgroup() {
    return static_cast<int>(threadIdx.x) / 128 - (Tile::kProducer ? 1 : 0);
}

// The blocks of a tile `tile_columns` wide that one wave of a 132-SM H100 holds: one 128x128 block
// an SM (129 KiB of shared memory), two 128x64 ones (97 KiB).
inline constexpr std::int64_t wave_blocks(int tile_columns) {
    return (tile_columns == WgmmaNarrowTile::kBlockN ? WgmmaNarrowTile::kBlocksPerSm : WgmmaWideTile::kBlocksPerSm) *
           132;
}

// The block's dynamic shared memory from its first 1024-byte boundary in the shared window (the
// swizzle reads absolute address bits; the launch asks for an atom's slack).
template <class Tile>
__device__ inline unsigned char* aligned_shared() {
    unsigned char* raw = dynamic_shared_memory<unsigned char>();
    return raw + (Tile::kAtomBytes - ptx::shared_address(raw) % Tile::kAtomBytes) % Tile::kAtomBytes;
}

template <IgemmOperand Operand>
constexpr ptx::WgmmaOperands wgmma_operands() {
    return Operand == IgemmOperand::BFloat16  ? ptx::WgmmaOperands::BFloat16
           : Operand == IgemmOperand::Float16 ? ptx::WgmmaOperands::Float16
                                              : ptx::WgmmaOperands::TensorFloat32;
}

// `count` k tiles through a `Stages`-deep ring of shared stages, no mbarriers (the first ring,
// from before the emulator had them; run_producer_ring below has): load(kt) issues tile kt's cp.async copies into its
// stage; per tile, every thread waits for its own copies of it, landed(step) lets it touch them (tf32 rounding),
// fence.proxy.async makes the written bytes visible to the async proxy that wgmma reads through (PTX ISA "Memory
// Consistency Model" > proxies: cp.async and st.shared write through the generic one), and
// __syncthreads() every thread's chunks to both warpgroups; then the copies of tile step + Stages
// - 2 (step + 2 with the kernels' 4 stages) are issued and multiply(step) issues this tile's wgmmas as one commit
// group, and each warpgroup waits until at most that group is in flight. The prefetch distance is Stages - 2 (not - 1):
// the tile refilled at step s is s - 2's, which both warpgroups finished before the barrier of step s (each waited for
// it at the end of step s - 1). So the tensor cores run tile s while the threads issue tile s + Stages - 2's copies and
// reach the next barrier. (The emulator faults any operand byte changed before the wait that covers its mma.)
template <int Stages, int Registers, class Load, class Landed, class Multiply>
__device__ inline void run_ring(int count, float (&acc)[Registers], Load&& load, Landed&& landed, Multiply&& multiply) {
    static_assert(Stages >= 3, "one tile multiplied, one finishing in the tensor cores, one or more loading");
    constexpr int kPrefetch = Stages - 2;
    CONVKIT_UNROLL
    for (int s = 0; s < kPrefetch; ++s) {
        if (s < count) load(s);
        ptx::cp_async_commit_group();
    }
    for (int step = 0; step < count; ++step) {
        // Every step commits one group (empty past the end): all but kPrefetch - 1 done means
        // this step's tile has landed, for this thread's copies.
        ptx::cp_async_wait_group<kPrefetch - 1>();
        landed(step);
        ptx::fence_proxy_async_shared();
        __syncthreads();
        if (step + kPrefetch < count) load(step + kPrefetch);
        ptx::cp_async_commit_group();
        multiply(step);
        ptx::wgmma_wait_group<1>(acc);
    }
    ptx::wgmma_wait_group<0>(acc);
    ptx::cp_async_wait_group<0>();  // only empty groups remain; no copy outlives the block
}

// The producer ring's round of tile kt in its stage: the empty barrier's phase a producer waits
// for before refilling the stage (the previous round's: parity (r & 1) ^ 1, which a fresh
// barrier has passed), and the full barrier's the multipliers wait for (r & 1).
template <int Stages>
__device__ inline unsigned ring_round_parity(int kt) {
    return static_cast<unsigned>((kt / Stages) & 1);
}

// A producer thread's hand-over of tile kt's stage once its bytes are there: landed(kt) (tf32's
// rounding), the stores fenced for the async proxy wgmma reads through, an arrival on the stage's
// full barrier.
template <int Stages, class Landed>
__device__ inline void hand_over_stage(int kt, std::uint64_t* full, Landed& landed) {
    landed(kt);
    ptx::fence_proxy_async_shared();
    ptx::mbarrier_arrive(&full[kt % Stages]);
}

// run_producer_ring's producer when its 128 threads copy (cp.async, and bulk copies load issues
// besides): Stages - 2 tiles of copies in flight, each stage handed over by all 128 threads once
// their copies of it have landed.
template <int Stages, class Load, class Landed>
__device__ inline void produce_by_threads(int count, std::uint64_t* full, std::uint64_t* empty, Load& load,
                                          Landed& landed) {
    constexpr int kLag = Stages - 2;
    auto hand_over = [&](int kt) { hand_over_stage<Stages>(kt, full, landed); };
    for (int kt = 0; kt < count; ++kt) {
        ptx::mbarrier_wait_parity(&empty[kt % Stages], ring_round_parity<Stages>(kt) ^ 1u);
        load(kt, &full[kt % Stages]);
        ptx::cp_async_commit_group();
        if (kt >= kLag) {
            ptx::cp_async_wait_group<kLag>();
            hand_over(kt - kLag);
        }
    }
    ptx::cp_async_wait_group<0>();
    for (int kt = count > kLag ? count - kLag : 0; kt < count; ++kt) hand_over(kt);
}

// run_producer_ring's producer when every byte comes by bulk copies (AllBulk), one thread: per
// tile, the stage's empty wait, then load's one arrival with expect_tx and its copies, which
// complete the full barrier when they land. Nothing to round (16-bit operands) and no proxy fence
// (the copies write through the async proxy, which wgmma reads through).
template <int Stages, class Load>
__device__ inline void produce_bulk(int count, std::uint64_t* full, std::uint64_t* empty, Load& load) {
    for (int kt = 0; kt < count; ++kt) {
        ptx::mbarrier_wait_parity(&empty[kt % Stages], ring_round_parity<Stages>(kt) ^ 1u);
        load(kt, &full[kt % Stages]);
    }
}

// The same for tf32 operands, which the tensor cores would truncate: thread 0's copies complete
// on the stage's landed barrier instead, and all 128 producer threads, Stages - 2 tiles behind,
// wait for it, round their share of the stage to nearest (landed), fence the stores for the async
// proxy and arrive on the full barrier (128 arrivals). Thread 0 refills a stage only after the
// multipliers' empty phase, and the others touch it only after its copies landed, so no thread
// rounds a stage a wgmma still reads.
template <int Stages, class Load, class Landed>
__device__ inline void produce_bulk_and_round(int count, std::uint64_t* full, std::uint64_t* empty,
                                              std::uint64_t* landed_barriers, Load& load, Landed& landed) {
    constexpr int kLag = Stages - 2;
    auto hand_over = [&](int kt) {
        ptx::mbarrier_wait_parity(&landed_barriers[kt % Stages], ring_round_parity<Stages>(kt));
        hand_over_stage<Stages>(kt, full, landed);
    };
    for (int kt = 0; kt < count; ++kt) {
        if (threadIdx.x == 0) {
            ptx::mbarrier_wait_parity(&empty[kt % Stages], ring_round_parity<Stages>(kt) ^ 1u);
            load(kt, &landed_barriers[kt % Stages]);
        }
        if (kt >= kLag) hand_over(kt - kLag);
    }
    for (int kt = count > kLag ? count - kLag : 0; kt < count; ++kt) hand_over(kt);
}

// Rounds this producer thread's share of a stage to tf32 in place (produce_bulk_and_round's
// landed): chunks threadIdx.x, + 128, ... of A and B alike (rounding each float wherever the
// swizzle put it).
template <class Tile>
__device__ inline void round_stage_share_to_tf32(unsigned char* stage) {
    static_assert(Tile::kStageBytes % (16 * Tile::kProducerThreads) == 0, "every producer thread rounds as many");
    CONVKIT_UNROLL
    for (int chunk = static_cast<int>(threadIdx.x); chunk < Tile::kStageBytes / 16; chunk += Tile::kProducerThreads)
        ptx::round_shared_chunk_to_tf32(stage + 16 * chunk);
}

// The ring of run_ring with a producer warpgroup (threads 0-127) and mbarriers instead of
// __syncthreads (`barriers`: 2 x Stages of them in shared memory, full then empty). The producer
// fills stage kt % Stages with tile kt once the multipliers' empty barrier says they are done
// with its previous tile (round r waits for the completion of phase r - 1: parity (r & 1) ^ 1,
// which a fresh barrier has passed), and keeps Stages - 2 tiles of copies in flight: at tile kt
// it waits for its copies of tile kt - (Stages - 2), lets landed() round them, fences them for
// the async proxy and arrives on that stage's full barrier (128 arrivals complete it). The
// multiplying warpgroups wait for tile kt's full barrier (parity r & 1), issue its wgmmas as one
// commit group, wait until at most that group is in flight, and then arrive on the empty barrier
// of tile kt - 1, whose wgmmas are done (256 arrivals). The producer's wait for tile kt - Stages
// needs the multipliers past tile kt - Stages + 1, whose full arrival came at the producer's tile
// kt - 1 at the latest (Stages - 2 >= 1 behind): no cycle.
//
// load(kt, full) gets the stage's full barrier: with `bulk_arrivals` 1, one producer thread also
// arrives on it with expect_tx and issues a bulk tensor copy completing on it (the weight tile),
// so the phase completes once the 128 hand-overs are in and the copy has landed.
//
// With AllBulk, every byte of a stage comes by the bulk copies load(kt, full) issues from thread
// 0 after its one arrival with expect_tx (produce_bulk): the full barrier counts that arrival
// alone, so a stage is the multipliers' as soon as its bytes land, all Stages of them in flight
// (with the threads' hand-overs only Stages - 2), and the producer's other 127 threads leave at
// once. With RoundsLanded too (tf32), the copies complete on a third barrier per stage, after the
// full and empty ones, and the 128 threads round each stage and hand it over
// (produce_bulk_and_round).
template <int Stages, bool AllBulk = false, bool RoundsLanded = false, int Registers, class Load, class Landed,
          class Multiply>
__device__ inline void run_producer_ring(int count, float (&acc)[Registers], std::uint64_t* barriers,
                                         unsigned bulk_arrivals, Load&& load, Landed&& landed, Multiply&& multiply) {
    static_assert(Stages >= 3, "one tile multiplied, one finishing in the tensor cores, one or more loading");
    static_assert(AllBulk || !RoundsLanded, "a stage rounded after its copies land is a bulk-copied one");
    std::uint64_t* full = barriers;
    std::uint64_t* empty = barriers + Stages;
    std::uint64_t* landed_barriers = barriers + 2 * Stages;  // AllBulk tiles only
    if (threadIdx.x == 0) {
        for (int s = 0; s < Stages; ++s) {
            ptx::mbarrier_init(&full[s], AllBulk && !RoundsLanded ? 1u : 128 + (AllBulk ? 0 : bulk_arrivals));
            ptx::mbarrier_init(&empty[s], blockDim.x - 128);
            if constexpr (RoundsLanded) ptx::mbarrier_init(&landed_barriers[s], 1);
        }
        ptx::fence_mbarrier_init();  // bulk copies complete on the barriers through the async proxy
    }
    __syncthreads();
    if (threadIdx.x < 128) {
        if constexpr (RoundsLanded) {
            produce_bulk_and_round<Stages>(count, full, empty, landed_barriers, load, landed);
        } else if constexpr (AllBulk) {
            if (threadIdx.x == 0) produce_bulk<Stages>(count, full, empty, load);
        } else {
            produce_by_threads<Stages>(count, full, empty, load, landed);
        }
        return;
    }
    for (int kt = 0; kt < count; ++kt) {
        ptx::mbarrier_wait_parity(&full[kt % Stages], ring_round_parity<Stages>(kt));
        multiply(kt);
        ptx::wgmma_wait_group<1>(acc);
        if (kt > 0) ptx::mbarrier_arrive(&empty[(kt - 1) % Stages]);
    }
    ptx::wgmma_wait_group<0>(acc);
}

// acc += A x B over one stage: `Steps` wgmma (m64nNk16, or m64nNk8 for tf32) as one commit group,
// the descriptors moved `step_bytes` between steps (32 bytes of k in K-major tiles, two groups of
// 8 k-rows in MN-major ones).
template <IgemmOperand Operand, int N, bool MnMajor, int Steps>
__device__ inline void multiply_steps(std::uint64_t a_descriptor, std::uint64_t b_descriptor, std::uint32_t step_bytes,
                                      float (&acc)[N / 2]) {
    ptx::wgmma_fence(acc);
    CONVKIT_UNROLL
    for (int kk = 0; kk < Steps; ++kk) {
        const auto offset = static_cast<std::uint32_t>(kk) * step_bytes;
        ptx::wgmma_mma_async<wgmma_operands<Operand>(), N, MnMajor>(
            acc, wgmma::advance_descriptor(a_descriptor, offset), wgmma::advance_descriptor(b_descriptor, offset),
            true);
    }
    ptx::wgmma_commit_group();
}

// Each pair of accumulators of this thread's warpgroup's 64 x N piece of D: register i = 4j + 2
// half + r of thread t (of the warpgroup) at row 16 (t / 32) + (t % 32) / 4 + 8 half, column 8 j +
// 2 (t % 4) + r (kernels/ptx.cuh), r = 0 and 1 a pair of adjacent columns. Row by row: row_of(row)
// once per row (a negative result skips it), then f(that result, column, v0, v1) for the row's
// pairs, column even.
template <int N, class RowOf, class F>
__device__ inline void for_each_d_pair(const float (&acc)[N / 2], RowOf&& row_of, F&& f) {
    const int t = static_cast<int>(threadIdx.x) % 128;
    CONVKIT_UNROLL
    for (int half = 0; half < 2; ++half) {
        const std::int64_t row = row_of(16 * (t / 32) + t % 32 / 4 + 8 * half);
        if (row < 0) continue;
        CONVKIT_UNROLL
        for (int j = 0; j < N / 8; ++j) f(row, 8 * j + 2 * (t % 4), acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
    }
}

// The same, f(that result, column, value) one accumulator at a time.
template <int N, class RowOf, class F>
__device__ inline void for_each_d(const float (&acc)[N / 2], RowOf&& row_of, F&& f) {
    for_each_d_pair<N>(acc, row_of, [&](std::int64_t row, int column, float v0, float v1) {
        f(row, column, v0);
        f(row, column + 1, v1);
    });
}

// An operand's element type in a tensor map (tf32 is float32's bits).
constexpr tma::ElementType map_element_type(IgemmOperand operand) {
    return operand == IgemmOperand::BFloat16  ? tma::ElementType::BFloat16
           : operand == IgemmOperand::Float16 ? tma::ElementType::Float16
                                              : tma::ElementType::Float32;
}

// The values of `operand` one 128-byte swizzled row holds (64 16-bit, 32 tf32): a k tile's depth,
// and an im2col copy's channels.
constexpr std::uint32_t row_depth(IgemmOperand operand) {
    return WgmmaWideTile::kRowBytes / tma::element_bytes(map_element_type(operand));
}

// A source's im2col walk for the producer's bulk copies of gathered tiles (forward's A from x,
// backward-filter's x columns): `pixels` output positions a copy, in order (W fastest, then H, D,
// the image), each position's window corner walked by the stride from -padding, a copy's 128
// bytes of channels (64 16-bit values, 32 tf32: row_depth) of one tap read at offsets tap x
// dilation. Spatial arrays are (W, H, D).
struct Im2colWalk {
    const void* source = nullptr;
    IgemmOperand operand = IgemmOperand::BFloat16;
    int channels = 0;        // the source's, all groups
    int group_channels = 0;  // a group's: whole k tiles of 64, so no copy straddles two taps
    std::array<int, 3> size{}, kernel{}, padding{}, dilation{}, stride{};
    std::uint64_t images = 0;
    std::uint32_t pixels = 0;
};

// The walk's im2col map: x as (C, W[, H[, D]], N), of the convolution's rank (a dim of size 1,
// kernel 1, no padding and stride 1 is dropped from the top: the params hold every convolution as
// 3-D), since the corners' and offsets' range narrows with the rank; the bounding box per spatial
// dim from -padding to size - 1 + padding - (kernel - 1) x dilation. nullopt for groups of
// channels that are not whole copies, offsets past the rank's width and maps the driver would
// refuse.
inline std::optional<tma::Im2colTensorMapSpec> im2col_walk_spec(const Im2colWalk& w) {
    const std::uint32_t depth = row_depth(w.operand);
    if (w.group_channels % static_cast<int>(depth) != 0) return std::nullopt;
    auto trivial = [&](std::size_t i) {
        return w.size[i] == 1 && w.kernel[i] == 1 && w.padding[i] == 0 && w.stride[i] == 1;
    };
    const int spatial = !trivial(2) ? 3 : !trivial(1) ? 2 : 1;
    tma::Im2colTensorMapSpec s;
    s.global = w.source;
    s.type = map_element_type(w.operand);
    const std::uint64_t element = tma::element_bytes(s.type);
    s.rank = spatial + 2;
    s.swizzle = wgmma::Swizzle::Bytes128;
    s.channels_per_pixel = depth;
    s.pixels_per_column = w.pixels;
    s.dims[0] = static_cast<std::uint64_t>(w.channels);
    for (std::size_t i = 0; i < static_cast<std::size_t>(spatial); ++i) {
        s.dims[i + 1] = static_cast<std::uint64_t>(w.size[i]);
        s.lower[i] = -w.padding[i];
        s.upper[i] = w.padding[i] - (w.kernel[i] - 1) * w.dilation[i];
        s.traversal[i] = static_cast<std::uint32_t>(w.stride[i]);
        if ((w.kernel[i] - 1) * w.dilation[i] > tma::im2col_largest_offset(s.rank)) return std::nullopt;
    }
    s.dims[static_cast<std::size_t>(spatial) + 1] = w.images;
    std::uint64_t stride_bytes = s.dims[0] * element;
    for (std::size_t i = 1; i < static_cast<std::size_t>(s.rank); ++i) {
        s.strides[i] = stride_bytes;
        stride_bytes *= s.dims[i];
    }
    if (!tma::im2col_tensor_map_problem(s).empty()) return std::nullopt;
    return s;
}

// One im2col copy of an im2col_walk_spec map of `rank` into `shared`, completing on `full`: from
// channel `channel`, the window corner `corner` (W, H, D) of image `image`, at `offsets` (W, H,
// D: the tap times the dilation); the map's rank keeps the first rank - 2 spatial dims.
__device__ inline void bulk_im2col_load(void* shared, const tma::TensorMap& map, int rank, int channel,
                                        const int (&corner)[3], int image, const int (&offsets)[3],
                                        std::uint64_t* full) {
    auto offset = [&](int i) { return static_cast<std::uint16_t>(offsets[i]); };
    if (rank == 5) {
        const int at[5] = {channel, corner[0], corner[1], corner[2], image};
        const std::uint16_t by[3] = {offset(0), offset(1), offset(2)};
        ptx::bulk_tensor_load_im2col(shared, map, at, by, full);
    } else if (rank == 4) {
        const int at[4] = {channel, corner[0], corner[1], image};
        const std::uint16_t by[2] = {offset(0), offset(1)};
        ptx::bulk_tensor_load_im2col(shared, map, at, by, full);
    } else {
        const int at[3] = {channel, corner[0], image};
        const std::uint16_t by[1] = {offset(0)};
        ptx::bulk_tensor_load_im2col(shared, map, at, by, full);
    }
}

// The checks of every wgmma launcher, before anything runs: `why` (the launcher's own unsupported
// reason, empty when it runs the shape and operand) as NotSupported naming the op and shape;
// check_call's pointers, alignment and output type; a build without the sm_90a code.
inline void check_launch(const char* op, const std::string& why, const IgemmConvShape& s, IgemmOperand operand,
                         IgemmOutput output, const void* a, const void* b, const void* out, const char* a_name,
                         const char* b_name, const char* out_name) {
    if (!why.empty()) throw NotSupported(std::string(op) + " (" + s.to_string() + "): " + why);
    igemm::check_call(op, s, operand, output, a, b, out, a_name, b_name, out_name);
    if (!conv_wgmma_built())
        throw NotSupported(std::string(op) + ": this build has no sm_90a code (CMAKE_CUDA_ARCHITECTURES without 90)");
}

}  // namespace wgmma_ring
CONVKIT_KERNELS_END
