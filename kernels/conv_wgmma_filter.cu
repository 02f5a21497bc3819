// Backward-filter on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a), bf16 and f16 operands with
// float32 accumulation (kernels/conv_wgmma.h). Per group, the GEMM of kernels/conv_igemm_filter.cu:
//   dw[kout, (tap, c)] = sum over positions q = (n, o) of dy[n, o, kout] * x[n, o * stride - padding + tap * dilation,
//   c]
// whose k runs over the N x output positions. A k-row q of either operand holds its M or N values
// contiguous (dy's output channels; the gathered x's channels of one tap, 8 to a 16-byte chunk),
// so both tiles are staged MN-major, as cp.async copies them: per 64-value block of M or N, 64
// k-rows of 128 bytes, 8 k-rows a 1024-byte atom, chunk c of k-row r at c ^ (r % 8); wgmma reads
// them with its transpose flags (kernels/wgmma_descriptor.h: LBO the next block, SBO the next 8
// k-rows). tf32 has no transposed form: float32 stays on cuda.igemm.
//
// Orientation: D = dy^T x (M = K/g output channels, N = taps x C/g), or where K/g <= 64 (the
// 128-row tile would then be at least half idle) D^T = x^T dy (M = taps x C/g, N = K/g on the
// 64-column tile), each accumulator written to dw at its transposed place.
//
// Split-K as cuda.igemm's (kernels/conv_igemm_support.cuh): the positions are long next to M x N,
// so split s of S sums its own range of 64-position k tiles into its float slice of the workspace
// and conv_igemm_add_split_slices_kernel adds the slices in order 0..S-1: deterministic, no
// atomics. With S = 1 the GEMM writes dw itself. The ring and the epilogue walk:
// kernels/conv_wgmma_ring.cuh.
#include <algorithm>
#include <string>

#include "convkit/error.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_igemm_support.cuh"
#include "kernels/conv_wgmma.h"
#include "kernels/conv_wgmma_ring.cuh"
#include "kernels/fast_division.h"
#include "kernels/launch.cuh"
#include "kernels/ptx.cuh"
#include "kernels/wgmma_descriptor.h"

CONVKIT_KERNELS_BEGIN

namespace {
using namespace igemm;
using wgmma_ring::WgmmaNarrowTile;
using wgmma_ring::WgmmaWideTile;

struct WgmmaFilterParams {
    const void* dy;
    const void* x;
    void* dw;              // the output type, when splits == 1
    float* workspace;      // splits slices of dw's size, when splits > 1
    const void* residual;  // like dw, or null (dw += ...), applied where dw is written
    int in_d, in_h, in_w;
    FastDivisor out_d, out_h, out_w;  // q = ((n * out_d + od) * out_h + oh) * out_w + ow
    int kernel_h, kernel_w;
    int stride_d, stride_h, stride_w;
    int pad_d, pad_h, pad_w;
    int dil_d, dil_h, dil_w;
    int channels, out_channels;  // C and K
    int group_in, group_out;     // C / groups (per tap: N's fastest part) and K / groups
    int gemm_n;                  // taps * group_in
    int positions;               // N * output positions: the GEMM's k
    int splits, tiles_per_split;
};

// 64 positions a k tile: 64 k-rows of 128 bytes per 64-value block of M or N.
constexpr int kTilePositions = 64;
constexpr int kBlockBytes = kTilePositions * 128;  // LBO: the next 64 values of M or N
constexpr int kAtomBytes = 1024;                   // SBO: the next 8 k-rows

// Byte offset of chunk `chunk` (8 values of M or N) of k-row `row` in an MN-major tile.
__device__ inline int staged_mn(int row, int chunk) {
    return chunk / 8 * kBlockBytes + row * 128 + (((chunk % 8) ^ (row % 8)) << 4);
}

// One operand's k-rows as one thread copies them: a fixed 16-byte chunk column of `Extent` values
// of M or N from `first` (the block's origin along it), rows first_row + pass * rows_per_pass.
// dy's chunk is 8 output channels; x's, 8 channels of one tap, gathered per position.
template <int Extent>
struct OperandChunks {
    static constexpr int kChunks = Extent / 8;  // a k-row's chunks
    static constexpr int kRowsPerPass = WgmmaWideTile::kThreads / kChunks;
    static constexpr int kPasses = kTilePositions / kRowsPerPass;
    static_assert(kTilePositions % kRowsPerPass == 0);
    int chunk, first_row;
    __device__ OperandChunks()
        : chunk(static_cast<int>(threadIdx.x) % kChunks), first_row(static_cast<int>(threadIdx.x) / kChunks) {}
};

// Copies one k tile of dy's k-rows: position q's output channels first + 8 chunk.. of the group.
template <int Extent, class Element>
__device__ inline void load_dy(const WgmmaFilterParams& p, int group, int first, int kt, unsigned char* tile) {
    const OperandChunks<Extent> c;
    const auto* dy = static_cast<const Element*>(p.dy);
    const int kout = first + c.chunk * 8;
    const bool kout_valid = kout < p.group_out;
    const std::int64_t channel = static_cast<std::int64_t>(group) * p.group_out + kout;
    CONVKIT_UNROLL
    for (int pass = 0; pass < c.kPasses; ++pass) {
        const int row = c.first_row + pass * c.kRowsPerPass, q = kt * kTilePositions + row;
        const bool inside = kout_valid && q < p.positions;
        ptx::cp_async<16>(tile + staged_mn(row, c.chunk),
                          inside ? dy + static_cast<std::int64_t>(q) * p.out_channels + channel : dy, inside ? 16 : 0);
    }
}

// Copies one k tile of the gathered x's k-rows: position q's channels of column j = first + 8
// chunk.. (tap, c), zero-filled in the padding.
template <int Extent, class Element>
__device__ inline void load_x(const WgmmaFilterParams& p, int group, int first, int kt, unsigned char* tile) {
    const OperandChunks<Extent> c;
    const auto* x = static_cast<const Element*>(p.x);
    const int j = first + c.chunk * 8;
    const bool j_valid = j < p.gemm_n;
    const int tap = j / p.group_in, channel = j - tap * p.group_in;
    const int kw = tap % p.kernel_w, kh = tap / p.kernel_w % p.kernel_h, kd = tap / p.kernel_w / p.kernel_h;
    const int reach_d = kd * p.dil_d - p.pad_d, reach_h = kh * p.dil_h - p.pad_h, reach_w = kw * p.dil_w - p.pad_w;
    const std::int64_t x_channel = static_cast<std::int64_t>(group) * p.group_in + channel;
    CONVKIT_UNROLL
    for (int pass = 0; pass < c.kPasses; ++pass) {
        const int row = c.first_row + pass * c.kRowsPerPass, q = kt * kTilePositions + row;
        const int rest_w = p.out_w.divide(q), rest_h = p.out_h.divide(rest_w), n = p.out_d.divide(rest_h);
        const int ow = q - rest_w * p.out_w.divisor(), oh = rest_w - rest_h * p.out_h.divisor(),
                  od = rest_h - n * p.out_d.divisor();
        const int id = od * p.stride_d + reach_d, ih = oh * p.stride_h + reach_h, iw = ow * p.stride_w + reach_w;
        const bool inside = j_valid && q < p.positions && static_cast<unsigned>(id) < static_cast<unsigned>(p.in_d) &&
                            static_cast<unsigned>(ih) < static_cast<unsigned>(p.in_h) &&
                            static_cast<unsigned>(iw) < static_cast<unsigned>(p.in_w);
        const Element* source =
            inside ? x + (((static_cast<std::int64_t>(n) * p.in_d + id) * p.in_h + ih) * p.in_w + iw) * p.channels +
                         x_channel
                   : x;
        ptx::cp_async<16>(tile + staged_mn(row, c.chunk), source, inside ? 16 : 0);
    }
}

// dw's epilogue: the residual added, nothing else (the column's "channel" indexes no bias).
constexpr EpilogueOperands epilogue_of(const WgmmaFilterParams& p) {
    return {p.dw, nullptr, p.residual, 0};
}

// The tile's rows and columns: M and N of D, or of D^T where Transposed.
template <bool Transposed>
__device__ inline int rows_of(const WgmmaFilterParams& p) {
    return Transposed ? p.gemm_n : p.group_out;
}
template <bool Transposed>
__device__ inline int columns_of(const WgmmaFilterParams& p) {
    return Transposed ? p.group_out : p.gemm_n;
}

// grid: x over M tiles, y over N tiles, z over groups x splits.
template <class Tile, bool Transposed, IgemmOperand Operand, IgemmOutput Output>
__global__ void __launch_bounds__(Tile::kThreads) conv_wgmma_filter_kernel(WgmmaFilterParams p) {
    using Element = std::uint16_t;
    static_assert(Operand != IgemmOperand::TensorFloat32, "MN-major operands are 16-bit only");
    unsigned char* shared = wgmma_ring::aligned_shared<Tile>();
    const int block_m = static_cast<int>(blockIdx.x) * Tile::kBlockM;
    const int block_n = static_cast<int>(blockIdx.y) * Tile::kBlockN;
    const int split = static_cast<int>(blockIdx.z) % p.splits, group = static_cast<int>(blockIdx.z) / p.splits;
    const int warpgroup = static_cast<int>(threadIdx.x) / 128;

    float acc[Tile::kBlockN / 2];
    CONVKIT_UNROLL
    for (int i = 0; i < Tile::kBlockN / 2; ++i) acc[i] = 0.0f;

    // Stage 0's descriptors (this warpgroup's 64 rows of A: one block); a k16 step is two atoms
    // of k-rows, stage s is s * kStageBytes further.
    const std::uint64_t a0 =
        ptx::wgmma_descriptor(shared + warpgroup * kBlockBytes, kBlockBytes, kAtomBytes, wgmma::Swizzle::Bytes128);
    const std::uint64_t b0 =
        ptx::wgmma_descriptor(shared + Tile::kTileBytesA, kBlockBytes, kAtomBytes, wgmma::Swizzle::Bytes128);
    auto stage_of = [&](int kt) { return shared + kt % Tile::kStages * Tile::kStageBytes; };
    const SplitRange range = split_range(split, p.tiles_per_split, (p.positions + kTilePositions - 1) / kTilePositions);
    wgmma_ring::run_ring<Tile::kStages>(
        range.count, acc,
        [&](int step) {
            const int kt = range.first + step;
            unsigned char* a_tile = stage_of(step);
            unsigned char* b_tile = a_tile + Tile::kTileBytesA;
            if constexpr (Transposed) {
                load_x<Tile::kBlockM, Element>(p, group, block_m, kt, a_tile);
                load_dy<Tile::kBlockN, Element>(p, group, block_n, kt, b_tile);
            } else {
                load_dy<Tile::kBlockM, Element>(p, group, block_m, kt, a_tile);
                load_x<Tile::kBlockN, Element>(p, group, block_n, kt, b_tile);
            }
        },
        [](int) {},
        [&](int step) {
            const auto offset = static_cast<std::uint32_t>(step % Tile::kStages * Tile::kStageBytes);
            wgmma_ring::multiply_steps<Operand, Tile::kBlockN, true, kTilePositions / 16>(
                wgmma::advance_descriptor(a0, offset), wgmma::advance_descriptor(b0, offset), 2 * kAtomBytes, acc);
        });

    // dw[group * group_out + kout, j] (rows of gemm_n): straight to dw with one split, else to this
    // split's slice of the workspace (every element of the slice, zero where its range is empty).
    const std::int64_t dw_elements = static_cast<std::int64_t>(p.out_channels) * p.gemm_n;
    const int first_m = block_m + warpgroup * Tile::kWarpgroupM;
    wgmma_ring::for_each_d<Tile::kBlockN>(
        acc, [&](int row) -> std::int64_t { return first_m + row < rows_of<Transposed>(p) ? first_m + row : -1; },
        [&](std::int64_t m, int column, float v) {
            const int n = block_n + column;
            if (n >= columns_of<Transposed>(p)) return;
            const std::int64_t kout = Transposed ? n : m, j = Transposed ? m : n;
            const std::int64_t index = (static_cast<std::int64_t>(group) * p.group_out + kout) * p.gemm_n + j;
            if (p.splits > 1) {
                p.workspace[split * dw_elements + index] = v;
            } else {
                finish_output<Output>(epilogue_of(p), index, static_cast<int>(j), v);
            }
        });
}

template <class Tile, bool Transposed, IgemmOperand Operand, IgemmOutput Output>
void launch_filter(const WgmmaFilterParams& p, int groups, cudaStream_t stream) {
    const int rows = Transposed ? p.gemm_n : p.group_out, columns = Transposed ? p.group_out : p.gemm_n;
    const LaunchShape shape{dim3(static_cast<unsigned>((rows + Tile::kBlockM - 1) / Tile::kBlockM),
                                 static_cast<unsigned>((columns + Tile::kBlockN - 1) / Tile::kBlockN),
                                 static_cast<unsigned>(groups * p.splits)),
                            dim3(Tile::kThreads), Tile::kSharedBytes, true};
    launch<conv_wgmma_filter_kernel<Tile, Transposed, Operand, Output>>(shape, stream, p);
    if (p.splits > 1) {
        add_split_slices<Output>(p.workspace, p.splits, p.out_channels, p.gemm_n, SameRow{}, epilogue_of(p), stream);
    }
}

// The GEMM's k tiles: 64 of its N x output positions each.
std::int64_t k_tiles(const IgemmConvShape& s) {
    const auto o = s.output();
    return (s.batch * o[0] * o[1] * o[2] + kTilePositions - 1) / kTilePositions;
}

// Normal on the wide tile (or the narrow one for at most 64 columns), transposed on the narrow
// one; 16-bit operands only (the launcher refuses tf32 first).
void filter_tile(const WgmmaFilterParams& p, const WgmmaFilterPlan& plan, int groups, IgemmOperand operand,
                 IgemmOutput output, cudaStream_t stream) {
    with_operand_and_output<false>(operand, output, [&](auto op, auto out) {
        constexpr IgemmOperand kOperand = decltype(op)::value;
        constexpr IgemmOutput kOutput = decltype(out)::value;
        if (plan.transposed) return launch_filter<WgmmaNarrowTile, true, kOperand, kOutput>(p, groups, stream);
        if (plan.tile_columns == WgmmaNarrowTile::kBlockN)
            return launch_filter<WgmmaNarrowTile, false, kOperand, kOutput>(p, groups, stream);
        launch_filter<WgmmaWideTile, false, kOperand, kOutput>(p, groups, stream);
    });
}
}  // namespace

std::string conv_wgmma_backward_filter_unsupported_reason(const IgemmConvShape& s, IgemmOperand operand) {
    if (operand == IgemmOperand::TensorFloat32)
        return "backward-filter's MN-major tiles take bf16 and f16 operands only (wgmma has no transposed tf32)";
    return conv_wgmma_unsupported_reason(s, operand);
}

WgmmaFilterPlan conv_wgmma_backward_filter_plan(const IgemmConvShape& s) {
    WgmmaFilterPlan plan;
    if (!conv_wgmma_backward_filter_unsupported_reason(s, IgemmOperand::BFloat16).empty()) return plan;
    const std::int64_t group_out = s.out_channels / s.groups;
    const std::int64_t gemm_n = kernel_taps(s) * (s.in_channels / s.groups);
    plan.transposed = group_out <= WgmmaNarrowTile::kBlockN && gemm_n > WgmmaNarrowTile::kBlockN;
    const std::int64_t rows = plan.transposed ? gemm_n : group_out, columns = plan.transposed ? group_out : gemm_n;
    plan.tile_columns = columns <= WgmmaNarrowTile::kBlockN ? WgmmaNarrowTile::kBlockN : WgmmaWideTile::kBlockN;
    plan.blocks = (rows + WgmmaWideTile::kBlockM - 1) / WgmmaWideTile::kBlockM *
                  ((columns + plan.tile_columns - 1) / plan.tile_columns) * s.groups;
    plan.splits =
        default_splits_for_wave(wgmma_ring::wave_blocks(plan.tile_columns), plan.blocks, k_tiles(s), s.groups);
    return plan;
}

std::size_t conv_wgmma_backward_filter_workspace_bytes(const IgemmConvShape& s, int splits) {
    return conv_igemm_backward_filter_workspace_bytes(s, IgemmOperand::BFloat16, splits);
}

void conv_wgmma_backward_filter(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, int splits,
                                const void* dy, const void* x, const void* residual, void* dw, void* workspace,
                                Stream stream) {
    const char* op = "conv_wgmma_backward_filter";
    wgmma_ring::check_launch(op, conv_wgmma_backward_filter_unsupported_reason(s, operand), s, operand, output, dy, x,
                             dw, "dy", "x", "dw");
    check_splits(op, splits, s.groups, workspace, conv_wgmma_backward_filter_workspace_bytes(s, splits));
    const Dims3 d = dims3(s);
    const std::int64_t group_in = s.in_channels / s.groups, group_out = s.out_channels / s.groups;
    const std::int64_t positions = s.batch * d.output[0] * d.output[1] * d.output[2];
    WgmmaFilterParams p{};
    p.dy = dy;
    p.x = x;
    p.dw = dw;
    p.workspace = static_cast<float*>(workspace);
    p.residual = residual;
    p.in_d = i32(d.input[0]);
    p.in_h = i32(d.input[1]);
    p.in_w = i32(d.input[2]);
    p.out_d = FastDivisor(i32(d.output[0]));
    p.out_h = FastDivisor(i32(d.output[1]));
    p.out_w = FastDivisor(i32(d.output[2]));
    p.kernel_h = i32(d.kernel[1]);
    p.kernel_w = i32(d.kernel[2]);
    p.stride_d = i32(d.stride[0]);
    p.stride_h = i32(d.stride[1]);
    p.stride_w = i32(d.stride[2]);
    p.pad_d = i32(d.padding[0]);
    p.pad_h = i32(d.padding[1]);
    p.pad_w = i32(d.padding[2]);
    p.dil_d = i32(d.dilation[0]);
    p.dil_h = i32(d.dilation[1]);
    p.dil_w = i32(d.dilation[2]);
    p.channels = i32(s.in_channels);
    p.out_channels = i32(s.out_channels);
    p.group_in = i32(group_in);
    p.group_out = i32(group_out);
    p.gemm_n = i32(kernel_taps(s) * group_in);
    p.positions = i32(positions);
    p.splits = splits;
    p.tiles_per_split = tiles_per_split(k_tiles(s), splits);
    filter_tile(p, conv_wgmma_backward_filter_plan(s), i32(s.groups), operand, output, detail::to_cuda(stream));
}

CONVKIT_KERNELS_END
