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
// cuda.wgmma.producer runs the same tiles on the producer ring where both operands come by bulk
// tensor copies (filter_bulk_copies: a group's input channels whole blocks of 64): per k tile one
// producer thread copies dy's 64-channel blocks as tiled boxes of 64 positions and x's as im2col
// copies of 64 positions at one tap, which land in exactly the MN-major swizzled layout above.
//
// Split-K as cuda.igemm's (kernels/conv_igemm_support.cuh): the positions are long next to M x N,
// so split s of S sums its own range of 64-position k tiles into its float slice of the workspace
// and conv_igemm_add_split_slices_kernel adds the slices in order 0..S-1: deterministic, no
// atomics. With S = 1 the GEMM writes dw itself. The ring and the epilogue walk:
// kernels/conv_wgmma_ring.cuh.
#include <algorithm>
#include <optional>
#include <string>

#include "convkit/error.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_igemm_support.cuh"
#include "kernels/conv_wgmma.h"
#include "kernels/conv_wgmma_ring.cuh"
#include "kernels/fast_division.h"
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

// The producer's bulk copies (cuda.wgmma.producer): dy's tiled map and x's im2col map
// (filter_bulk_copies), a `const __grid_constant__` kernel parameter; x_rank 0 where the launch
// runs the plain ring (cuda.wgmma), whose threads copy with cp.async.
struct FilterBulkOperands {
    tma::TensorMap dy_map, x_map;
    int x_rank;
};

// One k tile of both operands into `stage` by bulk copies, after one arrival on `full` covering
// all their bytes. Per 64-value block of M or N: dy's 64 output channels from the block's first,
// positions kt * 64.. (a tiled box: channels past K and positions past the end are zeros; another
// group's channels land in rows or columns the epilogue drops), or x's 64 channels of the block's
// one tap (a group's channels are whole blocks), the im2col walk of those positions from the
// first one's window corner at the tap's offsets. A block past the GEMM's columns copies the last
// one again: its results are dropped, and every copy the expect_tx counted must come.
template <class Tile, bool Transposed>
__device__ inline void copy_filter_tiles(const WgmmaFilterParams& p, const FilterBulkOperands& bulk, int group,
                                         int block_m, int block_n, int kt, unsigned char* stage, std::uint64_t* full) {
    ptx::mbarrier_arrive_expect_tx(full, static_cast<unsigned>(Tile::kTileBytesA + Tile::kTileBytesB));
    const int q = kt * kTilePositions;
    auto copy_dy = [&](int first, int extent, unsigned char* tile) {
        for (int block = 0; block < extent / 64; ++block) {
            const int at[2] = {group * p.group_out + first + 64 * block, q};
            ptx::bulk_tensor_load(tile + block * kBlockBytes, bulk.dy_map, at, full);
        }
    };
    auto copy_x = [&](int first, int extent, unsigned char* tile) {
        const int rest_w = p.out_w.divide(q), rest_h = p.out_h.divide(rest_w), n = p.out_d.divide(rest_h);
        const int corner[3] = {(q - rest_w * p.out_w.divisor()) * p.stride_w - p.pad_w,
                               (rest_w - rest_h * p.out_h.divisor()) * p.stride_h - p.pad_h,
                               (rest_h - n * p.out_d.divisor()) * p.stride_d - p.pad_d};
        for (int block = 0; block < extent / 64; ++block) {
            const int j = first + 64 * block < p.gemm_n ? first + 64 * block : p.gemm_n - 64;
            const int tap = j / p.group_in, channel = j - tap * p.group_in;
            const int offsets[3] = {tap % p.kernel_w * p.dil_w, tap / p.kernel_w % p.kernel_h * p.dil_h,
                                    tap / p.kernel_w / p.kernel_h * p.dil_d};
            wgmma_ring::bulk_im2col_load(tile + block * kBlockBytes, bulk.x_map, bulk.x_rank,
                                         group * p.group_in + channel, corner, n, offsets, full);
        }
    };
    unsigned char* a_tile = stage;
    unsigned char* b_tile = stage + Tile::kTileBytesA;
    if constexpr (Transposed) {
        copy_x(block_m, Tile::kBlockM, a_tile);
        copy_dy(block_n, Tile::kBlockN, b_tile);
    } else {
        copy_dy(block_m, Tile::kBlockM, a_tile);
        copy_x(block_n, Tile::kBlockN, b_tile);
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

// grid: x over M tiles, y over N tiles, z over groups x splits. With a producer tile, every k
// tile comes by copy_filter_tiles on the producer ring.
template <class Tile, bool Transposed, IgemmOperand Operand, IgemmOutput Output>
__global__ void __launch_bounds__(Tile::kThreads)
    conv_wgmma_filter_kernel(WgmmaFilterParams p, const __grid_constant__ FilterBulkOperands bulk) {
    using Element = std::uint16_t;
    static_assert(Operand != IgemmOperand::TensorFloat32, "MN-major operands are 16-bit only");
    static_assert(!Tile::kProducer || Tile::kAllBulk,
                  "the producer copies backward-filter's tiles by bulk copies only");
    unsigned char* shared = wgmma_ring::aligned_shared<Tile>();
    const int block_m = static_cast<int>(blockIdx.x) * Tile::kBlockM;
    const int block_n = static_cast<int>(blockIdx.y) * Tile::kBlockN;
    const int split = static_cast<int>(blockIdx.z) % p.splits, group = static_cast<int>(blockIdx.z) / p.splits;
    const int warpgroup = wgmma_ring::multiplying_warpgroup<Tile>();  // -1: the producer

    float acc[Tile::kBlockN / 2];
    CONVKIT_UNROLL
    for (int i = 0; i < Tile::kBlockN / 2; ++i) acc[i] = 0.0f;

    // Stage 0's descriptors (this warpgroup's 64 rows of A: one block); a k16 step is two atoms
    // of k-rows, stage s is s * kStageBytes further.
    const std::uint64_t a0 = ptx::wgmma_descriptor(shared + (warpgroup > 0 ? warpgroup : 0) * kBlockBytes, kBlockBytes,
                                                   kAtomBytes, wgmma::Swizzle::Bytes128);
    const std::uint64_t b0 =
        ptx::wgmma_descriptor(shared + Tile::kTileBytesA, kBlockBytes, kAtomBytes, wgmma::Swizzle::Bytes128);
    auto stage_of = [&](int kt) { return shared + kt % Tile::kStages * Tile::kStageBytes; };
    const SplitRange range = split_range(split, p.tiles_per_split, (p.positions + kTilePositions - 1) / kTilePositions);
    auto multiply = [&](int step) {
        const auto offset = static_cast<std::uint32_t>(step % Tile::kStages * Tile::kStageBytes);
        wgmma_ring::multiply_steps<Operand, Tile::kBlockN, true, kTilePositions / 16>(
            wgmma::advance_descriptor(a0, offset), wgmma::advance_descriptor(b0, offset), 2 * kAtomBytes, acc);
    };
    if constexpr (Tile::kProducer) {
        auto* barriers = reinterpret_cast<std::uint64_t*>(shared + Tile::kStages * Tile::kStageBytes);
        wgmma_ring::run_producer_ring<Tile::kStages, Tile::kAllBulk>(
            range.count, acc, barriers, 0u,
            [&](int step, std::uint64_t* full) {
                copy_filter_tiles<Tile, Transposed>(p, bulk, group, block_m, block_n, range.first + step,
                                                    stage_of(step), full);
            },
            [](int) {}, multiply);
        if (warpgroup < 0) return;  // the producer holds no results
    } else {
        auto load = [&](int step) {
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
        };
        wgmma_ring::run_ring<Tile::kStages>(
            range.count, acc, load, [](int) {}, multiply);
    }

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
void launch_filter(const WgmmaFilterParams& p, int groups, const FilterBulkOperands& bulk, cudaStream_t stream) {
    const int rows = Transposed ? p.gemm_n : p.group_out, columns = Transposed ? p.group_out : p.gemm_n;
    const LaunchShape shape{dim3(static_cast<unsigned>((rows + Tile::kBlockM - 1) / Tile::kBlockM),
                                 static_cast<unsigned>((columns + Tile::kBlockN - 1) / Tile::kBlockN),
                                 static_cast<unsigned>(groups * p.splits)),
                            dim3(Tile::kThreads), Tile::kSharedBytes, true};
    launch<conv_wgmma_filter_kernel<Tile, Transposed, Operand, Output>>(shape, stream, p, bulk);
    if (p.splits > 1) {
        add_split_slices<Output>(p.workspace, p.splits, p.out_channels, p.gemm_n, SameRow{}, epilogue_of(p), stream);
    }
}

// The GEMM's k tiles: 64 of its N x output positions each.
std::int64_t k_tiles(const IgemmConvShape& s) {
    const auto o = s.output();
    return (s.batch * o[0] * o[1] * o[2] + kTilePositions - 1) / kTilePositions;
}

// The producer's maps (copy_filter_tiles): dy as (channel, position), boxes of 64 x 64; x's
// im2col walk of 64 positions a copy (wgmma_ring::im2col_walk_spec: a group's input channels
// whole blocks of 64, the corners, offsets and strides within the copy engine's ranges). Both or
// neither: nullopt where either is refused, and the producer schedule with it.
struct FilterBulkCopies {
    tma::TiledTensorMapSpec dy;
    tma::Im2colTensorMapSpec x;
};

std::optional<FilterBulkCopies> filter_bulk_copies(const IgemmConvShape& s, IgemmOperand operand, const void* dy,
                                                   const void* x) {
    const Dims3 d = dims3(s);
    const auto positions = static_cast<std::uint64_t>(s.batch * d.output[0] * d.output[1] * d.output[2]);
    wgmma_ring::Im2colWalk walk;
    walk.source = x;
    walk.operand = operand;
    walk.channels = i32(s.in_channels);
    walk.group_channels = i32(s.in_channels / s.groups);
    for (std::size_t i = 0; i < 3; ++i) {  // Dims3 is (D, H, W), the walk (W, H, D)
        walk.size[i] = i32(d.input[2 - i]);
        walk.kernel[i] = i32(d.kernel[2 - i]);
        walk.padding[i] = i32(d.padding[2 - i]);
        walk.dilation[i] = i32(d.dilation[2 - i]);
        walk.stride[i] = i32(d.stride[2 - i]);
    }
    walk.images = static_cast<std::uint64_t>(s.batch);
    walk.pixels = kTilePositions;
    const std::optional<tma::Im2colTensorMapSpec> x_spec = wgmma_ring::im2col_walk_spec(walk);
    if (!x_spec) return std::nullopt;
    FilterBulkCopies copies{{}, *x_spec};
    copies.dy.global = dy;
    copies.dy.type = x_spec->type;
    copies.dy.swizzle = wgmma::Swizzle::Bytes128;
    copies.dy.rank = 2;
    const auto channels = static_cast<std::uint64_t>(s.out_channels);
    copies.dy.dims = {channels, positions};
    copies.dy.strides = {0, channels * tma::element_bytes(copies.dy.type)};
    copies.dy.box = {kTilePositions, kTilePositions};
    if (!tma::tiled_tensor_map_problem(copies.dy).empty()) return std::nullopt;
    return copies;
}

// The kernel parameter of `copies`: their maps encoded (the driver's, or the emulator's); x_rank
// 0 (no copies) for the plain ring.
FilterBulkOperands encoded(const std::optional<FilterBulkCopies>& copies) {
    FilterBulkOperands bulk{};
    bulk.x_rank = 0;
    if (copies) {
        bulk.dy_map = encode_tiled_tensor_map("conv_wgmma_backward_filter", copies->dy);
        bulk.x_map = encode_im2col_tensor_map("conv_wgmma_backward_filter", copies->x);
        bulk.x_rank = copies->x.rank;
    }
    return bulk;
}

// Normal on the wide tile (or the narrow one for at most 64 columns), transposed on the narrow
// one; on the producer ring (its all-bulk tiles) with `copies`. 16-bit operands only (the launcher
// refuses tf32 first).
void filter_tile(const WgmmaFilterParams& p, const WgmmaFilterPlan& plan, int groups,
                 const std::optional<FilterBulkCopies>& copies, IgemmOperand operand, IgemmOutput output,
                 cudaStream_t stream) {
    const FilterBulkOperands bulk = encoded(copies);
    with_operand_and_output<false>(operand, output, [&](auto op, auto out) {
        // The orientation and tile of the plan on one ring's narrow and wide tiles.
        auto on = [&]<class Narrow, class Wide>(Narrow, Wide) {
            constexpr IgemmOperand kOperand = decltype(op)::value;
            constexpr IgemmOutput kOutput = decltype(out)::value;
            if (plan.transposed) return launch_filter<Narrow, true, kOperand, kOutput>(p, groups, bulk, stream);
            if (plan.tile_columns == Narrow::kBlockN)
                return launch_filter<Narrow, false, kOperand, kOutput>(p, groups, bulk, stream);
            launch_filter<Wide, false, kOperand, kOutput>(p, groups, bulk, stream);
        };
        if (copies) return on(WgmmaAllBulkNarrowTile{}, WgmmaAllBulkWideTile{});
        on(WgmmaNarrowTile{}, WgmmaWideTile{});
    });
}
}  // namespace

std::string conv_wgmma_backward_filter_unsupported_reason(const IgemmConvShape& s, IgemmOperand operand,
                                                          const WgmmaSchedule& schedule) {
    if (operand == IgemmOperand::TensorFloat32)
        return "backward-filter's MN-major tiles take bf16 and f16 operands only (wgmma has no transposed tf32)";
    if (std::string reason = conv_wgmma_unsupported_reason(s, operand); !reason.empty()) return reason;
    if (schedule.producer_warpgroup && !filter_bulk_copies(s, operand, nullptr, nullptr))
        return "the producer ring copies backward-filter's operands by bulk tensor copies only: a group's input "
               "channels must be whole blocks of 64 (" +
               std::to_string(s.in_channels / s.groups) +
               " here) and x's im2col walk within the copy engine's ranges (window corners, tap offsets up to " +
               std::to_string(tma::im2col_largest_offset(s.rank + 2)) + ", strides up to 8)";
    return {};
}

WgmmaFilterPlan conv_wgmma_backward_filter_plan(const IgemmConvShape& s, IgemmOperand operand,
                                                const WgmmaSchedule& schedule) {
    WgmmaFilterPlan plan;
    if (!conv_wgmma_backward_filter_unsupported_reason(s, operand, schedule).empty()) return plan;
    const std::int64_t group_out = s.out_channels / s.groups;
    const std::int64_t gemm_n = kernel_taps(s) * (s.in_channels / s.groups);
    plan.transposed = group_out <= WgmmaNarrowTile::kBlockN && gemm_n > WgmmaNarrowTile::kBlockN;
    const std::int64_t rows = plan.transposed ? gemm_n : group_out, columns = plan.transposed ? group_out : gemm_n;
    plan.tile_columns = columns <= WgmmaNarrowTile::kBlockN ? WgmmaNarrowTile::kBlockN : WgmmaWideTile::kBlockN;
    plan.blocks = (rows + WgmmaWideTile::kBlockM - 1) / WgmmaWideTile::kBlockM *
                  ((columns + plan.tile_columns - 1) / plan.tile_columns) * s.groups;
    plan.splits = schedule.splits.value_or(
        default_splits_for_wave(wgmma_ring::wave_blocks(plan.tile_columns), plan.blocks, k_tiles(s), s.groups));
    plan.bulk_copies = schedule.producer_warpgroup;  // the reason above refused it where they cannot be
    return plan;
}

std::size_t conv_wgmma_backward_filter_workspace_bytes(const IgemmConvShape& s, int splits) {
    return conv_igemm_backward_filter_workspace_bytes(s, IgemmOperand::BFloat16, splits);
}

void conv_wgmma_backward_filter(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output,
                                const WgmmaSchedule& schedule, const void* dy, const void* x, const void* residual,
                                void* dw, void* workspace, Stream stream) {
    const char* op = "conv_wgmma_backward_filter";
    wgmma_ring::check_launch(op, conv_wgmma_backward_filter_unsupported_reason(s, operand, schedule), s, operand,
                             output, dy, x, dw, "dy", "x", "dw");
    const WgmmaFilterPlan plan = conv_wgmma_backward_filter_plan(s, operand, schedule);
    const int splits = plan.splits;
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
    const std::optional<FilterBulkCopies> copies =
        plan.bulk_copies ? filter_bulk_copies(s, operand, dy, x) : std::nullopt;
    if (plan.bulk_copies && !copies)  // the shape's maps hold (the reason above), so only the pointers can fail
        throw NotSupported(std::string(op) + ": the bulk copies' tensor maps refuse dy or x (16-byte aligned)");
    filter_tile(p, plan, i32(s.groups), copies, operand, output, detail::to_cuda(stream));
}

CONVKIT_KERNELS_END
