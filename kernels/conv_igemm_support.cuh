#pragma once
// What the implicit-GEMM convolution kernels share (kernels/conv_igemm.cu: forward and
// backward-data; kernels/conv_igemm_filter.cu: backward-filter): tile configurations, the
// swizzled shared-memory layouts, the mma by operand type, the epilogue's loads and stores, and
// the geometry as three dims. Private to those files.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/conv_igemm.h"
#include "kernels/launch.cuh"
#include "kernels/ptx.cuh"

// Loops over fragments and passes must unroll so that the accumulators and fragments stay in
// registers (an array indexed at run time goes to the stack). GCC (the CPU build) needs no hint.
#if defined(__CUDACC__)
#define CONVKIT_IGEMM_UNROLL _Pragma("unroll")
#else
#define CONVKIT_IGEMM_UNROLL
#endif

CONVKIT_KERNELS_BEGIN
namespace igemm {

template <int BlockM, int BlockN, int WarpM, int WarpN, int Stages>
struct TileConfig {
    static constexpr int kBlockM = BlockM, kBlockN = BlockN, kWarpM = WarpM, kWarpN = WarpN, kStages = Stages;
    static constexpr int kBlockK = 32;  // 16-bit values: four 16-byte chunks per A row
    static constexpr int kChunks = kBlockK / 8;
    static constexpr int kWarpsM = BlockM / WarpM, kWarpsN = BlockN / WarpN;
    static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
    static constexpr int kMmaM = WarpM / 16, kMmaN = WarpN / 8;  // m16n8 tiles per warp
    static constexpr int kRowsPerPass = kThreads / kChunks;      // rows one pass of cp.async covers
    static constexpr int kPassesA = BlockM / kRowsPerPass, kPassesB = BlockN / kRowsPerPass;
    // Backward-data's B tile is [32 k][BlockN]: BlockN / 8 chunks per row.
    static constexpr int kChunksKN = BlockN / 8;
    static constexpr int kRowsPerPassKN = kThreads / kChunksKN;
    static constexpr int kPassesKN = kBlockK / kRowsPerPassKN;
    static constexpr int kStageElements = (BlockM + BlockN) * kBlockK;
    static constexpr std::size_t kSharedBytes = std::size_t{2} * kStageElements * Stages;
    static_assert(BlockM % WarpM == 0 && BlockN % WarpN == 0 && WarpM % 16 == 0 && WarpN % 16 == 0);
    static_assert(BlockM % kRowsPerPass == 0 && BlockN % kRowsPerPass == 0);
    static_assert(kChunksKN >= 8 && kBlockK % kRowsPerPassKN == 0, "the [k][n] swizzle needs 8 chunks a row");
    static_assert(kSharedBytes <= kMaxOptInDynamicSharedBytes, "a block's shared memory within sm_90's 227 KiB");
};
using LargeTile = TileConfig<128, 128, 64, 64, 4>;
using SmallTile = TileConfig<64, 64, 32, 32, 3>;

// Offset (in 16-bit elements) of chunk `chunk` of row `row` in a [rows][32] swizzled tile.
__device__ inline int swizzled(int row, int chunk) {
    return (row * 4 + (chunk ^ ((row >> 1) & 3))) * 8;
}

// The same for a [32 k][Tile::kBlockN] tile (backward-data's B): ldmatrix.trans reads one chunk
// of 8 consecutive k rows, 128 or 256 bytes apart, all on the same banks unless chunk c of row r
// sits at c ^ (r % 8).
template <class Tile>
__device__ inline int swizzled_kn(int row, int chunk) {
    return (row * Tile::kChunksKN + (chunk ^ (row & 7))) * 8;
}

template <IgemmOperand Operand>
__device__ inline void mma(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
    if constexpr (Operand == IgemmOperand::BFloat16) {
        ptx::mma_m16n8k16_bf16(d, a, b, d);
    } else {
        ptx::mma_m16n8k16_f16(d, a, b, d);
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

inline int i32(std::int64_t v) {
    return static_cast<int>(v);
}

}  // namespace igemm
CONVKIT_KERNELS_END
