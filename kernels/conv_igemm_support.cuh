#pragma once
// What the implicit-GEMM convolution kernels share (kernels/conv_igemm.cu: forward and
// backward-data; kernels/conv_igemm_filter.cu: backward-filter): tile configurations, what
// depends on the operand's width (16-bit or tf32), the swizzled shared-memory layouts, the mma
// by operand type, the epilogue's loads and stores, and the geometry as three dims. Private to
// those files.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "convkit/error.h"

#include "kernels/conv_igemm.h"
#include "kernels/element_pack.cuh"
#include "kernels/kernel_support.cuh"
#include "kernels/launch.cuh"
#include "kernels/ptx.cuh"

CONVKIT_KERNELS_BEGIN
namespace igemm {

template <int BlockM, int BlockN, int WarpM, int WarpN, int Stages>
struct TileConfig {
    static constexpr int kBlockM = BlockM, kBlockN = BlockN, kWarpM = WarpM, kWarpN = WarpN, kStages = Stages;
    // Shared memory in 16-bit slots: a tile row is 64 bytes (32 16-bit values or 16 tf32 ones),
    // four 16-byte chunks, whatever the operand.
    static constexpr int kBlockK = 32;
    static constexpr int kChunks = 4;
    static constexpr int kWarpsM = BlockM / WarpM, kWarpsN = BlockN / WarpN;
    static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
    static constexpr int kMmaM = WarpM / 16, kMmaN = WarpN / 8;  // m16n8 tiles per warp
    static constexpr int kRowsPerPass = kThreads / kChunks;      // rows one pass of cp.async covers
    static constexpr int kPassesA = BlockM / kRowsPerPass, kPassesB = BlockN / kRowsPerPass;
    static constexpr int kStageElements = (BlockM + BlockN) * kBlockK;
    static constexpr std::size_t kSharedBytes = std::size_t{2} * kStageElements * Stages;
    static_assert(BlockM % WarpM == 0 && BlockN % WarpN == 0 && WarpM % 16 == 0 && WarpN % 16 == 0);
    static_assert(BlockM % kRowsPerPass == 0 && BlockN % kRowsPerPass == 0);
    static_assert(kSharedBytes <= kMaxOptInDynamicSharedBytes, "a block's shared memory within sm_90's 227 KiB");
};
using LargeTile = TileConfig<128, 128, 64, 64, 4>;
using SmallTile = TileConfig<64, 64, 32, 32, 3>;
// For GEMMs of at most 64 columns (a group's output channels: ResNet's 64-channel layers, the
// padded channels of a first layer's backward-data) that give the large tile enough blocks: the
// large tile's rows with half its columns, so that no warp multiplies columns past N (on the
// large tile half of every mma would).
using NarrowTile = TileConfig<128, 64, 64, 32, 4>;
// For GEMMs of at most 32 columns (a first layer's backward-data: 3 or 1 input channels padded
// to 8; 32-channel 3-D layers; decoder heads of a few channels): the narrow tile would leave
// half (or, for 8 columns, seven eighths) of its mma columns idle, this one a quarter at most
// for 8.
using SlimTile = TileConfig<128, 32, 32, 32, 4>;
// The blocks an SM is to hold of a tile's forward and backward-data kernels: __launch_bounds__'
// minimum, which caps the registers. The narrow tile's 16-bit kernels fit 128 registers without
// a spill (4 blocks of 128 threads an SM, as its 48 KiB of shared memory allow) where ptxas left
// alone takes 155-156 (3 blocks); its tf32 ones spill at 128, so they and the other tiles are
// left to ptxas: 0, as good as no minimum (an explicit 1 lets ptxas spend registers freely: 108
// instead of 91 on the slim tile, 99 instead of 78 on the small one).
template <class Tile, IgemmOperand Operand>
inline constexpr int kMinBlocksPerSm = (std::is_same_v<Tile, NarrowTile> && Operand != IgemmOperand::TensorFloat32) ? 4
                                                                                                                    : 0;

// Calls f(Tile{}) with the TileConfig `tile` names: the one place an IgemmTile becomes a type.
template <typename F>
decltype(auto) with_tile_config(IgemmTile tile, F&& f) {
    switch (tile) {
        case IgemmTile::Large:
            return f(LargeTile{});
        case IgemmTile::Narrow:
            return f(NarrowTile{});
        case IgemmTile::Slim:
            return f(SlimTile{});
        case IgemmTile::Small:
            break;
    }
    return f(SmallTile{});
}

// What depends on the operand's width. A 16-byte chunk holds 8 16-bit values or 4 tf32 (float32
// bits), so a k tile (one 64-byte row) is 32 or 16 deep, and an mma step (two chunks) 16 or 8:
// m16n8k16 or m16n8k8, two per k tile either way.
template <IgemmOperand Operand>
struct OperandFormat {
    static constexpr bool kTf32 = Operand == IgemmOperand::TensorFloat32;
    using Element = std::conditional_t<kTf32, float, std::uint16_t>;
    static constexpr int kPerChunk = 16 / static_cast<int>(sizeof(Element));
    static constexpr int kBlockK = 4 * kPerChunk;
    static constexpr int kMmaK = 2 * kPerChunk;
    static constexpr int kMmaSteps = kBlockK / kMmaK;
};

// A [k][n] tile (backward-data's B, both of backward-filter's operands) of the same 64 * BlockN
// bytes: kBlockK rows of BlockN values, kChunks 16-byte chunks a row.
template <class Tile, IgemmOperand Operand>
struct KnTile {
    static constexpr int kRows = OperandFormat<Operand>::kBlockK;
    static constexpr int kChunks = Tile::kBlockN / OperandFormat<Operand>::kPerChunk;
    static constexpr int kRowsPerPass = Tile::kThreads / kChunks;
    static constexpr int kPasses = kRows / kRowsPerPass;
    static constexpr bool kWordLoads = OperandFormat<Operand>::kTf32;  // 32-bit loads, not ldmatrix.trans
    static_assert((kChunks == 4 || kChunks >= 8) && kRows % kRowsPerPass == 0,
                  "the [k][n] swizzle takes 4 chunks a row (16-bit) or 8 and more");
    static_assert(kRows * kChunks * 8 == Tile::kBlockN * Tile::kBlockK, "as many bytes as the [n][k] tile");
};

// Offset (in 16-bit slots) of chunk `chunk` of row `row` in a [rows][64 bytes] swizzled tile.
__device__ inline int swizzled(int row, int chunk) {
    return (row * 4 + (chunk ^ ((row >> 1) & 3))) * 8;
}

// The same for a [k][n] tile. 16-bit: ldmatrix.trans reads one chunk of 8 consecutive k rows,
// 128 or 256 bytes apart, all on the same banks unless chunk c of row r sits at c ^ (r % 8);
// rows of 4 chunks (the slim tile's 32 columns, 64 bytes) pair up in a 128-byte bank line, and
// c ^ ((r / 2) % 4), the [n][k] tile's pattern, puts 8 consecutive ones on all 8 bank groups.
// tf32: a fragment load reads rows t (4 consecutive) at columns g (8, two chunks) of an n8
// tile; chunk c of row r at c ^ 2 (r % 4) puts those 4 pairs of chunks on all 8 bank groups
// (c ^ (r % 8) would leave rows 0 and 1 on the same pair: 2-way conflicts).
template <class Kn>
__device__ inline int swizzled_kn(int row, int chunk) {
    const int pattern = Kn::kWordLoads ? (row & 3) << 1 : Kn::kChunks == 4 ? (row >> 1) & 3 : row & 7;
    return (row * Kn::kChunks + (chunk ^ pattern)) * 8;
}

// The 32-bit value at (row, column) of a [k][n] tf32 tile.
template <class Kn>
__device__ inline std::uint32_t load_kn_word(const std::uint16_t* tile, int row, int column) {
    return ptx::load_shared_b32(tile + swizzled_kn<Kn>(row, column / 4) + column % 4 * 2);
}

// Fragments loaded from shared memory as the mma reads them: tf32 operands rounded to nearest
// (cvt.rna), 16-bit ones as they are.
template <IgemmOperand Operand, int N>
__device__ inline void round_operands(std::uint32_t (&r)[N]) {
    if constexpr (OperandFormat<Operand>::kTf32) {
        CONVKIT_UNROLL
        for (int i = 0; i < N; ++i) r[i] = ptx::round_to_tf32(r[i]);
    }
}

template <IgemmOperand Operand>
__device__ inline void mma(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
    if constexpr (Operand == IgemmOperand::BFloat16) {
        ptx::mma_m16n8k16_bf16(d, a, b, d);
    } else if constexpr (Operand == IgemmOperand::Float16) {
        ptx::mma_m16n8k16_f16(d, a, b, d);
    } else {
        ptx::mma_m16n8k8_tf32(d, a, b, d);
    }
}

template <IgemmOutput Output>
__device__ inline float load_output(const void* p, std::int64_t i) {
    if constexpr (Output == IgemmOutput::Float32) {
        return static_cast<const float*>(p)[i];
    } else if constexpr (Output == IgemmOutput::BFloat16) {
        const std::uint32_t widened = std::uint32_t{static_cast<const std::uint16_t*>(p)[i]} << 16;
        float v;
        memcpy(&v, &widened, sizeof(v));  // bf16 is float's top half
        return v;
    } else {
        return ptx::float16_to_float(static_cast<const std::uint16_t*>(p)[i]);
    }
}

template <IgemmOutput Output>
__device__ inline void store_output(void* p, std::int64_t i, float v) {
    if constexpr (Output == IgemmOutput::Float32) {
        static_cast<float*>(p)[i] = v;
    } else if constexpr (Output == IgemmOutput::BFloat16) {
        static_cast<std::uint16_t*>(p)[i] = ptx::float_to_bfloat16(v);
    } else {
        static_cast<std::uint16_t*>(p)[i] = ptx::float_to_float16(v);
    }
}

// The kernels' compile-time operand and output for a launch's run-time pair: calls
// f(operand, output) with std::integral_constant arguments (their ::value the template
// arguments): bf16 and f16 with every output, tf32 with float32 only (check_call refuses the
// others), so one instantiation each. Without `WithTf32` (kernels for 16-bit operands only, whose
// launchers refuse tf32 first) tf32 instantiates nothing and throws NotSupported, should a caller
// skip that refusal.
template <bool WithTf32 = true, class F>
void with_operand_and_output(IgemmOperand operand, IgemmOutput output, F&& f) {
    using std::integral_constant;
    const auto with_output = [&](auto op) {
        switch (output) {
            case IgemmOutput::BFloat16:
                return f(op, integral_constant<IgemmOutput, IgemmOutput::BFloat16>{});
            case IgemmOutput::Float16:
                return f(op, integral_constant<IgemmOutput, IgemmOutput::Float16>{});
            case IgemmOutput::Float32:
                break;
        }
        return f(op, integral_constant<IgemmOutput, IgemmOutput::Float32>{});
    };
    switch (operand) {
        case IgemmOperand::BFloat16:
            return with_output(integral_constant<IgemmOperand, IgemmOperand::BFloat16>{});
        case IgemmOperand::Float16:
            return with_output(integral_constant<IgemmOperand, IgemmOperand::Float16>{});
        case IgemmOperand::TensorFloat32:
            break;
    }
    if constexpr (WithTf32) {
        f(integral_constant<IgemmOperand, IgemmOperand::TensorFloat32>{},
          integral_constant<IgemmOutput, IgemmOutput::Float32>{});
    } else {
        throw NotSupported("a kernel for 16-bit operands only was asked for tf32 ones");
    }
}

// The fused epilogue's operands: the tensor written and what is added to it.
struct EpilogueOperands {
    void* out;
    const float* bias;     // [channels] or null
    const void* residual;  // like out (the same type and index), or null
    int relu;
};

// The bias floats read in one access for a pack of Width channels: at most 4 (16 bytes), so 8
// channels of a 16-bit output take two. finish_output_pack reads them so, packs_fit checks it.
template <int Width>
inline constexpr int kBiasPackWidth = Width < kPackWidth<float> ? Width : kPackWidth<float>;

// The element written for Output: a float, or a 16-bit pattern.
template <IgemmOutput Output>
using OutputElement = std::conditional_t<Output == IgemmOutput::Float32, float, std::uint16_t>;

// out[index + i] = convert(v[i] + bias[channel + i] + residual[index + i], then max(., 0) if
// relu) for Width adjacent channels, one access of each tensor (index and channel multiples of
// Width, the tensors aligned to Width elements): the one epilogue of every pass, run by the GEMM
// kernel or, after split-K, by the kernel adding the slices.
template <IgemmOutput Output, int Width>
__device__ inline void finish_output_pack(const EpilogueOperands& e, std::int64_t index, int channel,
                                          float (&v)[Width]) {
    using T = OutputElement<Output>;
    if (e.bias != nullptr) {
        constexpr int kBiasWidth = kBiasPackWidth<Width>;
        for (int first = 0; first < Width; first += kBiasWidth) {
            const ElementPack<float, kBiasWidth> bias = load_pack<kBiasWidth>(e.bias + first, channel / kBiasWidth);
            for (int i = 0; i < kBiasWidth; ++i) v[first + i] += bias.value[i];
        }
    }
    if (e.residual != nullptr) {
        const ElementPack<T, Width> residual = load_pack<Width>(static_cast<const T*>(e.residual), index / Width);
        for (int i = 0; i < Width; ++i) v[i] += load_output<Output>(residual.value, i);
    }
    if (e.relu != 0)
        for (int i = 0; i < Width; ++i) v[i] = fmaxf(v[i], 0.0f);
    ElementPack<T, Width> out;
    for (int i = 0; i < Width; ++i) store_output<Output>(out.value, i, v[i]);
    store_pack<Width>(static_cast<T*>(e.out), index / Width, out);
}

template <IgemmOutput Output>
__device__ inline void finish_output(const EpilogueOperands& e, std::int64_t index, int channel, float v) {
    float value[1] = {v};
    finish_output_pack<Output, 1>(e, index, channel, value);
}

// ---- The epilogue's pairs of channels --------------------------------------------------------
// An mma.sync or wgmma thread holds its accumulators in pairs of adjacent columns of one row
// (c, c + 1, c even), so the epilogue can move a pair as one access: one 4-byte store of two
// 16-bit values, or one 8-byte one of two floats, and one load of the pair's bias and residual,
// where a per-value epilogue issued two of each (half the memory instructions of the epilogue,
// which on a short-K layer runs for a tenth of the GEMM's time or more).

// Whether packs of Width adjacent channels fit: a group's channel count a multiple of Width (so a
// pack's first channel and index are too: every group starts at a multiple of Width in a row
// whose length is one) and every tensor written or read aligned to a pack: split-K's slice where
// there is one, else the epilogue's tensors (the bias to min(Width, 4) floats, as
// finish_output_pack reads it). Pairs (Width 2) where they do not, else each value alone.
template <IgemmOutput Output, int Width>
__host__ __device__ inline bool packs_fit(const EpilogueOperands& e, const float* slice, int out_group) {
    using T = OutputElement<Output>;
    if (out_group % Width != 0) return false;
    if (slice != nullptr) return pack_aligned<float, Width>(slice);
    return pack_aligned<T, Width>(static_cast<const T*>(e.out), static_cast<const T*>(e.residual)) &&
           pack_aligned<float, kBiasPackWidth<Width>>(e.bias);
}
template <IgemmOutput Output>
__device__ inline bool pairs_fit(const EpilogueOperands& e, const float* slice, int out_group) {
    return packs_fit<Output, 2>(e, slice, out_group);
}

// Where a GEMM kernel's results go: (row, col, v0, v1) writes columns col and col + 1 (col even) of
// GEMM row `row` of `group` (a negative row is none) to `slice` (split-K, at row x channels) or
// through the epilogue to the row's place in the tensor written (row is then that place), a pair
// at a time where pairs fit, else one value at a time. Columns past the group's (out_group) are
// dropped. pack<Width>(row, col, v) writes a whole pack where `packs` (16 bytes) fit: the staged
// epilogue's (write_staged).
template <IgemmOutput Output>
struct ResultWriter {
    // A pack of the tensor written: 16 bytes, 4 floats of a slice or a float32 output, 8 16-bit values.
    static constexpr int kOutputPack = kPackWidth<OutputElement<Output>>, kSlicePack = kPackWidth<float>;

    const EpilogueOperands& epilogue;
    float* slice;  // this split's slice of the workspace; null: through the epilogue
    int out_channels, out_group, group;
    bool pairs = pairs_fit<Output>(epilogue, slice, out_group);
    bool packs = slice != nullptr ? packs_fit<Output, kSlicePack>(epilogue, slice, out_group)
                                  : packs_fit<Output, kOutputPack>(epilogue, slice, out_group);

    // Columns col .. col + Width - 1 of `row` (a place written; col a multiple of Width in the
    // group), as one access of each tensor.
    template <int Width>
    __device__ void pack(std::int64_t row, int col, float (&v)[Width]) const {
        const int channel = group * out_group + col;
        const std::int64_t index = row * out_channels + channel;
        if (slice != nullptr) {
            ElementPack<float, Width> values;
            for (int i = 0; i < Width; ++i) values.value[i] = v[i];
            store_pack<Width>(slice, index / Width, values);
        } else {
            finish_output_pack<Output, Width>(epilogue, index, channel, v);
        }
    }

    __device__ void operator()(std::int64_t row, int col, float v0, float v1) const {
        if (row < 0 || col >= out_group) return;
        if (pairs) {  // out_group is even: col + 1 is in the group too
            float v[2] = {v0, v1};
            pack<2>(row, col, v);
            return;
        }
        const int channel = group * out_group + col;
        const std::int64_t index = row * out_channels + channel;
        const bool second = col + 1 < out_group;
        if (slice != nullptr) {
            slice[index] = v0;
            if (second) slice[index + 1] = v1;
        } else {
            finish_output<Output>(epilogue, index, channel, v0);
            if (second) finish_output<Output>(epilogue, index + 1, channel + 1, v1);
        }
    }
};

// ---- The staged epilogue -------------------------------------------------------------------------
// Straight from the fragments, a warp's store writes one pair of columns per lane: for a 16-bit
// output 8 rows x 16 bytes, half of each row's 32-byte sector, and as many residual loads; 64
// stores a thread for a 128 x 128 tile. Staged, the block's results go row-major through the
// ring's shared memory (free once the last k tile is multiplied), and each thread then moves 16
// bytes of one row (8 16-bit values, 4 floats) as one access of the output, the residual or the
// slice: a warp's store covers 512 bytes in whole sectors (2 rows of a 128-column 16-bit tile,
// 1 of a float one), with a quarter (16-bit) or half (float) of the store and residual
// instructions. CUTLASS's epilogues stage for the same reason.

// A BlockM x BlockN tile of results staged in SharedBytes kRows rows at a time. A staged row is
// BlockN + 8 floats: rows g and g + 1 of a fragment start 8 banks apart, so a half-warp's 8-byte
// fragment stores (4 rows x 4 pairs) fall on 32 different banks, and a quarter-warp's 16-byte reads
// of one row (4 floats a lane) on all of them. Each row's place written follows the rows, one 8-byte entry a row,
// found once per block.
template <int BlockM, int BlockN, std::size_t SharedBytes>
struct StagedTile {
    static constexpr int kColumns = BlockN, kStride = BlockN + 8;
    static constexpr std::size_t kRowBytes = kStride * sizeof(float) + sizeof(std::int64_t);
    static constexpr int rows_fitting() {
        int rows = BlockM;
        while (rows > 8 && rows * kRowBytes > SharedBytes) rows /= 2;
        return rows;
    }
    static constexpr int kRows = rows_fitting(), kPasses = BlockM / kRows;
    static_assert(BlockM % kRows == 0 && kRows * kRowBytes <= SharedBytes, "the staged rows within the ring's memory");
};

// One pass of write_staged per kRows rows, Width columns (16 bytes of what is written) a thread.
template <class Staged, int Width, IgemmOutput Output, class Pairs, class RowOf, class Sync>
__device__ inline void write_staged_packs(unsigned char* shared, const ResultWriter<Output>& write, int block_n,
                                          Pairs&& pairs, RowOf&& row_of, int thread, int threads, Sync&& sync) {
    static_assert(Width == kPackWidth<float> || Width == 2 * kPackWidth<float>,
                  "staged rows are read 4 floats (16 bytes) at a time, one or two reads a pack");
    constexpr int kPacks = Staged::kColumns / Width;  // a row's
    float* const staged = reinterpret_cast<float*>(shared);
    auto* const rows = reinterpret_cast<std::int64_t*>(staged + Staged::kRows * Staged::kStride);
    for (int pass = 0; pass < Staged::kPasses; ++pass) {
        const int first = pass * Staged::kRows;
        // The ring's last stage, or the previous pass's rows, read by every thread.
        sync();
        for (int r = thread; r < Staged::kRows; r += threads) rows[r] = row_of(first + r);
        pairs([&](int row, int column, float v0, float v1) {
            const int r = row - first;
            if (r >= 0 && r < Staged::kRows)
                store_pack<2>(staged + r * Staged::kStride + column, 0, ElementPack<float, 2>{{v0, v1}});
        });
        sync();
        for (int item = thread; item < Staged::kRows * kPacks; item += threads) {
            const int r = item / kPacks, column = item % kPacks * Width;
            const std::int64_t row = rows[r];
            if (row < 0 || block_n + column >= write.out_group) continue;
            const float* const at = staged + r * Staged::kStride + column;
            float v[Width];
            if constexpr (Width == kPackWidth<float>) {
                const auto four = load_pack<Width>(at, 0);
                for (int i = 0; i < Width; ++i) v[i] = four.value[i];
            } else {
                // A 16-bit output's 8 floats are two 16-byte reads, 32 bytes apart from a lane to
                // the next: lanes 4-7 of each quarter-warp read their halves in the other order, so
                // that its 8 reads fall on all 8 16-byte bank groups rather than on 4 of them twice.
                // (Selected into place: a run-time index into v would put it in local memory.)
                constexpr int kHalf = kPackWidth<float>;
                const bool swap = (item & 4) != 0;
                const auto read_first = load_pack<kHalf>(at + (swap ? kHalf : 0), 0);
                const auto read_second = load_pack<kHalf>(at + (swap ? 0 : kHalf), 0);
                for (int i = 0; i < kHalf; ++i) {
                    v[i] = swap ? read_second.value[i] : read_first.value[i];
                    v[kHalf + i] = swap ? read_first.value[i] : read_second.value[i];
                }
            }
            write.template pack<Width>(row, block_n + column, v);
        }
    }
}

// Writes a block's results through a StagedTile in `shared` (the ring's, once no thread reads
// it), where write.packs: pairs(f) calls f(tile row, tile column, v0, v1) for each of this
// thread's accumulator pairs (coordinates in the block's tile), row_of(tile row) is the row's
// place written as ResultWriter takes it (negative: none). Called by the `threads` threads that
// hold results (this one of rank `thread`), all of them, and no other; sync() is a barrier over
// exactly them (__syncthreads where they are the block).
template <class Staged, IgemmOutput Output, class Pairs, class RowOf, class Sync>
__device__ inline void write_staged(unsigned char* shared, const ResultWriter<Output>& write, int block_n,
                                    Pairs&& pairs, RowOf&& row_of, int thread, int threads, Sync&& sync) {
    using Writer = ResultWriter<Output>;
    if (Writer::kOutputPack == Writer::kSlicePack || write.slice == nullptr) {
        write_staged_packs<Staged, Writer::kOutputPack>(shared, write, block_n, pairs, row_of, thread, threads, sync);
    } else if constexpr (Writer::kOutputPack != Writer::kSlicePack) {
        write_staged_packs<Staged, Writer::kSlicePack>(shared, write, block_n, pairs, row_of, thread, threads, sync);
    }
}

// The warp's accumulators: kMmaM x kMmaN m16n8 tiles of four floats.
template <class Tile>
using Accumulators = float[Tile::kMmaM][Tile::kMmaN][4];

template <class Tile>
__device__ inline void zero(Accumulators<Tile>& acc) {
    CONVKIT_UNROLL
    for (int i = 0; i < Tile::kMmaM; ++i) {
        CONVKIT_UNROLL
        for (int j = 0; j < Tile::kMmaN; ++j) {
            CONVKIT_UNROLL
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;
        }
    }
}

// B fragments of the warp's kMmaN n8 tiles for mma step kk, from a [k][kBlockN] tile
// (swizzled_kn). 16-bit: transposed by ldmatrix, matrices (k 0-7, n 0-7), (k 8-15, n 0-7),
// (k 0-7, n 8-15), (k 8-15, n 8-15) are b0, b1 of n tiles 2j and 2j + 1. tf32: b0 = B(t, g),
// b1 = B(t + 4, g) of each n8 tile, one 32-bit load each (g = lane / 4, t = lane % 4).
template <class Tile, IgemmOperand Operand>
__device__ inline void load_b_fragments_kn(const std::uint16_t* b_tile, int kk, int warp_n, int lane,
                                           std::uint32_t (&b)[Tile::kMmaN][2]) {
    using Kn = KnTile<Tile, Operand>;
    if constexpr (OperandFormat<Operand>::kTf32) {
        CONVKIT_UNROLL
        for (int j = 0; j < Tile::kMmaN; ++j) {
            const int row = kk * 8 + lane % 4, column = warp_n * Tile::kWarpN + j * 8 + lane / 4;
            b[j][0] = load_kn_word<Kn>(b_tile, row, column);
            b[j][1] = load_kn_word<Kn>(b_tile, row + 4, column);
            round_operands<Operand>(b[j]);
        }
    } else {
        CONVKIT_UNROLL
        for (int j = 0; j < Tile::kMmaN / 2; ++j) {
            std::uint32_t r[4];
            const int row = kk * 16 + lane / 8 % 2 * 8 + lane % 8;
            const int chunk = (warp_n * Tile::kWarpN + j * 16) / 8 + lane / 16;
            ptx::ldmatrix<4, true>(r, b_tile + swizzled_kn<Kn>(row, chunk));
            b[2 * j][0] = r[0];
            b[2 * j][1] = r[1];
            b[2 * j + 1][0] = r[2];
            b[2 * j + 1][1] = r[3];
        }
    }
}

// acc[i][j] += a[i] * b[j] for every m16n8 tile of the warp.
template <class Tile, IgemmOperand Operand>
__device__ inline void mma_warp_tile(Accumulators<Tile>& acc, const std::uint32_t (&a)[Tile::kMmaM][4],
                                     const std::uint32_t (&b)[Tile::kMmaN][2]) {
    CONVKIT_UNROLL
    for (int i = 0; i < Tile::kMmaM; ++i) {
        CONVKIT_UNROLL
        for (int j = 0; j < Tile::kMmaN; ++j) mma<Operand>(acc[i][j], a[i], b[j]);
    }
}

// f(row_of(m), column, v0, v1) for every pair of accumulators of the warp, at its row m and
// columns (column, column + 1) in the block's tile offset by (block_m, block_n): registers 2 half
// and 2 half + 1 of an m16n8 tile are row g + 8 half, columns 2t and 2t + 1 (g = lane / 4, t =
// lane % 4). row_of runs once per row, not per accumulator.
template <class Tile, class RowOf, class F>
__device__ inline void for_each_accumulator_pair(const Accumulators<Tile>& acc, int block_m, int block_n, int warp_m,
                                                 int warp_n, int lane, RowOf&& row_of, F&& f) {
    const int g = lane / 4, t = lane % 4;
    CONVKIT_UNROLL
    for (int i = 0; i < Tile::kMmaM; ++i) {
        CONVKIT_UNROLL
        for (int half = 0; half < 2; ++half) {
            const auto row = row_of(block_m + warp_m * Tile::kWarpM + i * 16 + g + 8 * half);
            CONVKIT_UNROLL
            for (int j = 0; j < Tile::kMmaN; ++j) {
                f(row, block_n + warp_n * Tile::kWarpN + j * 8 + 2 * t, acc[i][j][2 * half], acc[i][j][2 * half + 1]);
            }
        }
    }
}

// Writes a block's accumulators through `write` (the mma.sync kernels' epilogue, after run_ring):
// staged through `shared` where 16-byte packs fit, else straight from the fragments in pairs or
// single values. row_of(m) is GEMM row m's place as ResultWriter takes it (negative: none).
template <class Tile, IgemmOutput Output, class RowOf>
__device__ inline void write_accumulators(std::uint16_t* shared, const Accumulators<Tile>& acc,
                                          const ResultWriter<Output>& write, int block_m, int block_n, int warp_m,
                                          int warp_n, int lane, RowOf&& row_of) {
    if (write.packs) {
        auto pairs = [&](auto&& f) {
            for_each_accumulator_pair<Tile>(
                acc, 0, 0, warp_m, warp_n, lane, [](int m) { return m; }, f);
        };
        write_staged<StagedTile<Tile::kBlockM, Tile::kBlockN, Tile::kSharedBytes>>(
            reinterpret_cast<unsigned char*>(shared), write, block_n, pairs,
            [&](int tile_row) { return row_of(block_m + tile_row); }, static_cast<int>(threadIdx.x), Tile::kThreads,
            [] { __syncthreads(); });
    } else {
        for_each_accumulator_pair<Tile>(acc, block_m, block_n, warp_m, warp_n, lane, row_of, write);
    }
}

// The cp.async ring every pass runs: k tile `step` (0..count-1) lives in stage step % Stages of
// `shared`; load(step, stage) issues its copies, multiply(stage) consumes it. Every step commits
// one group (empty past the end), so "all but Stages - 2 groups done" always means "this step's
// tile has landed".
template <class Tile, class Load, class Multiply>
__device__ inline void run_ring(std::uint16_t* shared, int count, Load&& load, Multiply&& multiply) {
    CONVKIT_UNROLL
    for (int s = 0; s < Tile::kStages - 1; ++s) {
        if (s < count) load(s, shared + s * Tile::kStageElements);
        ptx::cp_async_commit_group();
    }
    for (int step = 0; step < count; ++step) {
        ptx::cp_async_wait_group<Tile::kStages - 2>();
        // This step's tile has landed for every thread, and every warp has finished step - 1,
        // whose stage the copy below refills. (The emulator's schedules keep warps too close
        // together to catch this barrier moved below the refill: docs/testing.md.)
        __syncthreads();
        const int next = step + Tile::kStages - 1;
        if (next < count) load(next, shared + next % Tile::kStages * Tile::kStageElements);
        ptx::cp_async_commit_group();
        multiply(shared + step % Tile::kStages * Tile::kStageElements);
    }
    ptx::cp_async_wait_group<0>();  // only empty groups remain; no copy outlives the block
}

// Split-K (every pass). A GEMM whose output tiles give the GPU too few blocks splits its k tiles
// into `splits` contiguous ranges, one block per (tile, range); each block writes its float
// partial sums to its own slice of a workspace (every element of the slice, zeros where its range
// is empty), and conv_igemm_add_split_slices_kernel adds the slices in order 0..splits-1 and runs the
// epilogue: the same sums in the same order whatever the schedule, so the result is
// deterministic for a given split (no atomics).

// Blocks that keep a 132-SM H100 busy: two per SM (the tile choice's threshold).
inline constexpr std::int64_t kTargetBlocks = 2 * 132;
// The blocks of `tile` one wave of a 132-SM H100 holds: 2 large blocks per SM (ptxas: 236
// registers a thread allow 2), 3 narrow ones (124 registers allow 4 of 128 threads, tf32's 151
// allow 3), 4 small ones (94 registers allow 5; one left for register growth).
inline constexpr std::int64_t blocks_per_wave(IgemmTile tile) {
    return (tile == IgemmTile::Large ? 2 : tile == IgemmTile::Narrow ? 3 : 4) * 132;  // Slim: as Small
}
// The blocks `tile` cuts an m x n GEMM per group into (`phases` such GEMMs in one launch).
inline std::int64_t tile_blocks(IgemmTile tile, std::int64_t m, std::int64_t n, std::int64_t groups,
                                std::int64_t phases = 1) {
    return with_tile_config(tile, [&](auto config) {
        using Tile = decltype(config);
        return phases * ((m + Tile::kBlockM - 1) / Tile::kBlockM) * ((n + Tile::kBlockN - 1) / Tile::kBlockN) * groups;
    });
}
// The tile of an m x n GEMM per group (`phases` of them in one launch): where the 128x128 blocks
// give at least kTargetBlocks, Large, or Narrow for at most 64 columns and Slim for at most 32
// (the same blocks, fewer of their columns idle); else Small.
inline IgemmTile default_tile(std::int64_t m, std::int64_t n, std::int64_t groups, std::int64_t phases = 1) {
    if (tile_blocks(IgemmTile::Large, m, n, groups, phases) < kTargetBlocks) return IgemmTile::Small;
    if (n <= SlimTile::kBlockN) return IgemmTile::Slim;
    return n <= NarrowTile::kBlockN ? IgemmTile::Narrow : IgemmTile::Large;
}
// The k tiles of a GEMM of depth k: a 64-byte row of 32 16-bit values or 16 tf32 each.
inline std::int64_t k_tiles_of(std::int64_t k, IgemmOperand operand) {
    const std::int64_t block_k = operand == IgemmOperand::TensorFloat32
                                     ? OperandFormat<IgemmOperand::TensorFloat32>::kBlockK
                                     : OperandFormat<IgemmOperand::BFloat16>::kBlockK;
    return (k + block_k - 1) / block_k;
}

// A split shorter than this many k tiles would spend more on its slice than it saves.
inline constexpr std::int64_t kMinimumTilesPerSplit = 8;
inline constexpr int kMaximumDefaultSplits = 64;

// The default split of a GEMM whose output tiles give `blocks` blocks of `tile` (tiles x groups)
// over `k_tiles` k tiles: none where the blocks fill half a wave or more (splitting them would buy
// at most twice the busy SMs with a pass over the slices and a second kernel); otherwise enough
// splits for one full wave, each at least kMinimumTilesPerSplit long, at most
// kMaximumDefaultSplits, and groups x splits within the grid's z.
// (`wave`: the blocks one wave holds, blocks_per_wave for cuda.igemm's tiles).
inline int default_splits_for_wave(std::int64_t wave, std::int64_t blocks, std::int64_t k_tiles, std::int64_t groups) {
    const std::int64_t some = std::max<std::int64_t>(blocks, 1);
    if (2 * some > wave) return 1;
    const std::int64_t wanted = (wave + some - 1) / some;
    return static_cast<int>(std::max<std::int64_t>(
        1, std::min({wanted, k_tiles / kMinimumTilesPerSplit, std::int64_t{kMaximumDefaultSplits},
                     std::int64_t{kMaxGridZ} / std::max<std::int64_t>(groups, 1)})));
}
inline int default_splits(IgemmTile tile, std::int64_t blocks, std::int64_t k_tiles, std::int64_t groups) {
    return default_splits_for_wave(blocks_per_wave(tile), blocks, k_tiles, groups);
}

// The float32 slices of a GEMM output of `elements` split `splits` ways: 0 for one (no slices).
inline std::size_t split_slice_bytes(int splits, std::int64_t elements) {
    return splits > 1 ? static_cast<std::size_t>(splits) * static_cast<std::size_t>(elements) * sizeof(float) : 0;
}

// A pass's plan (IgemmPlan, WgmmaPlan) from its launches (each holding its launch plan, .plan), in
// launch order: what the launchers run is what the *_plan functions report.
template <class Plan, class Launch>
Plan plan_of_launches(std::int64_t groups, const std::vector<Launch>& launches) {
    Plan plan;
    plan.groups = groups;
    for (const Launch& l : launches) plan.launches.push_back(l.plan);
    return plan;
}

// The workspace of a pass's launch plans (each with splits, phases, m, n): the largest launch's
// slices (launches run one after another and reuse it); 0 when none splits.
template <class LaunchPlan>
std::size_t largest_split_slice_bytes(std::int64_t groups, const std::vector<LaunchPlan>& launches) {
    std::size_t most = 0;
    for (const LaunchPlan& l : launches)
        most = std::max(most, split_slice_bytes(l.splits, l.phases * l.m * l.n * groups));
    return most;
}

// The k tiles each of `splits` ranges gets when `k_tiles` are dealt out evenly (the last may get
// fewer, or none); 0 for no valid split (the launchers refuse it before anything runs).
inline int tiles_per_split(std::int64_t k_tiles, int splits) {
    return splits >= 1 ? static_cast<int>((k_tiles + splits - 1) / splits) : 0;
}

// The k tiles [first, first + count) of split `split` when `tiles` are dealt out `per_split` at
// a time: the last splits may get fewer, or none.
struct SplitRange {
    int first, count;
};
__device__ inline SplitRange split_range(int split, int per_split, int tiles) {
    const int first = split * per_split;
    const int last = first + per_split < tiles ? first + per_split : tiles;
    return {first, last > first ? last - first : 0};
}

// The identity: the GEMM's row is the row written (forward, backward-filter).
struct SameRow {
    __device__ std::int64_t operator()(int row) const { return row; }
};

// element (row, column) of the tensor written, at written_row(row) * columns + column =
// finish_output(slices[0][row][column] + ... + slices[splits - 1][row][column]), column being
// the epilogue's channel; Width adjacent columns a thread, one access of each slice and tensor.
// Blocks of 32 threads across x 8 rows: a warp reads 32 Width-wide packs of consecutive floats
// of a slice; grid y strides over the rows.
template <IgemmOutput Output, int Width, class WrittenRow>
__global__ void conv_igemm_add_split_slices_kernel(const float* slices, int splits, int rows, int columns,
                                                   WrittenRow written_row, EpilogueOperands epilogue) {
    const int column = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x) * Width;
    if (column >= columns) return;
    const std::int64_t slice = static_cast<std::int64_t>(rows) * columns;
    for (int row = static_cast<int>(blockIdx.y * blockDim.y + threadIdx.y); row < rows;
         row += static_cast<int>(gridDim.y * blockDim.y)) {
        const std::int64_t at = static_cast<std::int64_t>(row) * columns + column;
        float v[Width] = {};
        for (int s = 0; s < splits; ++s) {
            const ElementPack<float, Width> part = load_pack<Width>(slices + s * slice + at, 0);
            for (int i = 0; i < Width; ++i) v[i] += part.value[i];
        }
        finish_output_pack<Output, Width>(epilogue, written_row(row) * columns + column, column, v);
    }
}

// Launches conv_igemm_add_split_slices_kernel over a rows x columns GEMM output: 4 columns a
// thread (16-byte loads of the slices: the adder is bandwidth-bound, splits x the output's floats
// read) where every row's packs fit (packs_fit with the row as the group), else one.
template <IgemmOutput Output, class WrittenRow>
void add_split_slices(const float* slices, int splits, int rows, int columns, WrittenRow written_row,
                      const EpilogueOperands& epilogue, cudaStream_t stream) {
    const auto launch_width = [&](auto width) {
        constexpr int kWidth = decltype(width)::value;
        const int threads_x = (columns + kWidth - 1) / kWidth;
        const dim3 block(32, 8);
        const dim3 grid(static_cast<unsigned>((threads_x + 31) / 32),
                        static_cast<unsigned>(std::min<std::int64_t>((rows + 7) / 8, kMaxGridY)));
        launch<conv_igemm_add_split_slices_kernel<Output, kWidth, WrittenRow>>(
            LaunchShape{grid, block}, stream, slices, splits, rows, columns, written_row, epilogue);
    };
    constexpr int kWidth = kPackWidth<float>;
    if (pack_aligned<float, kWidth>(slices) && packs_fit<Output, kWidth>(epilogue, nullptr, columns)) {
        launch_width(PackWidth<kWidth>{});
    } else {
        launch_width(PackWidth<1>{});
    }
}

// Splits outside 1..65535 / groups (the grid's z), or more than one without a workspace, refused
// with InvalidArgument naming the op and the bytes wanted.
inline void check_splits(const char* op, int splits, std::int64_t groups, const void* workspace,
                         std::size_t workspace_bytes) {
    if (splits < 1 || splits > kMaxGridZ / groups)
        throw InvalidArgument(std::string(op) + ": splits " + std::to_string(splits) + " (1 to 65535 / groups " +
                              std::to_string(groups) + ")");
    if (splits > 1 && workspace == nullptr)
        throw InvalidArgument(std::string(op) + ": " + std::to_string(splits) + " splits need a workspace of " +
                              std::to_string(workspace_bytes) + " bytes");
}

// The geometry as three dims, rank r's dims last ([1, ..., 1, dims]; kernel 1, stride 1,
// padding 0 in the leading ones).
struct Dims3 {
    std::array<std::int64_t, 3> input{1, 1, 1}, output{1, 1, 1}, kernel{1, 1, 1}, stride{1, 1, 1}, padding{0, 0, 0},
        dilation{1, 1, 1};
};

inline Dims3 dims3(const IgemmConvShape& s) {
    Dims3 d;
    const auto o = s.output();
    for (int i = 0; i < s.rank; ++i) {
        const auto from = static_cast<std::size_t>(i), to = static_cast<std::size_t>(3 - s.rank + i);
        d.input[to] = s.input[from];
        d.output[to] = o[from];
        d.kernel[to] = s.kernel[from];
        d.stride[to] = s.stride[from];
        d.padding[to] = s.padding[from];
        d.dilation[to] = s.dilation[from];
    }
    return d;
}

// What every launcher refuses first: the shape for the operand (NotSupported with the reason), a
// tf32 operand with a 16-bit output, a null pointer, and gathered operands `a` and `b` off 16
// bytes (cp.async copies 16-byte vectors; cudaMalloc's 256-byte alignment is enough, a view at
// an offset may not be), InvalidArgument naming them.
inline void check_call(const char* op, const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output,
                       const void* a, const void* b, const void* out, const char* a_name, const char* b_name,
                       const char* out_name) {
    if (const std::string why = conv_igemm_unsupported_reason(s, operand); !why.empty())
        throw NotSupported(std::string(op) + " (" + s.to_string() + "): " + why);
    if (operand == IgemmOperand::TensorFloat32 && output != IgemmOutput::Float32)
        throw InvalidArgument(std::string(op) + ": tf32 operands (float32 tensors) need a float32 " + out_name);
    if (a == nullptr || b == nullptr || out == nullptr)
        throw InvalidArgument(std::string(op) + ": " + a_name + ", " + b_name + " and " + out_name +
                              " must not be null");
    auto aligned = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
    if (!aligned(a) || !aligned(b))
        throw InvalidArgument(std::string(op) + ": " + a_name + " and " + b_name +
                              " must be 16-byte aligned (cp.async vectors)");
}

// The kernel's taps (the product of its used dims).
inline std::int64_t kernel_taps(const IgemmConvShape& s) {
    std::int64_t taps = 1;
    for (int i = 0; i < s.rank; ++i) taps *= s.kernel[static_cast<std::size_t>(i)];
    return taps;
}

inline int i32(std::int64_t v) {
    return static_cast<int>(v);
}

}  // namespace igemm
CONVKIT_KERNELS_END
