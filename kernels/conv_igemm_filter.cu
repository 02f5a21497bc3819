// Implicit-GEMM convolution backward-filter on the tensor cores (kernels/conv_igemm.h has the
// layouts). Per group, dw[kout, (tap, c)] = sum over positions q = (n, o) of
//   A(kout, q) = dy[n, o, kout]                          stored [q][kout] (kout-contiguous)
//   B(q, (tap, c)) = x[n, o * stride - padding + tap * dilation, c]   stored [q][(tap, c)]
// so the GEMM's k runs over N * output positions, and both operands come from [k][m] / [k][n]
// tiles through ldmatrix.trans (the swizzle c ^ (r % 8) of kernels/conv_igemm_support.cuh).
// M = K / groups and N = taps * C / groups are small next to k for most layers, so k is split
// over blocks (split-K): split s of S sums its own contiguous range of k tiles into its own
// float slice of a workspace, and a second kernel adds the S slices in order 0..S-1 — the same
// sums in the same order whatever the blocks' schedule, so the result is deterministic (no
// atomics). With S = 1 the GEMM kernel writes dw directly. Float32 operands run as tf32 (k tiles
// of 16 positions, 4 channels a vector); ldmatrix.trans transposes 16-bit halves, so their
// fragments come from the [k][m] and [k][n] tiles by 32-bit shared loads, rounded by cvt.rna.
#include <algorithm>
#include <string>

#include "convkit/error.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_igemm_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using namespace igemm;

struct FilterParams {
    const void* dy;  // the operand's elements (OperandFormat::Element)
    const void* x;
    void* dw;              // the output type, when splits == 1
    float* workspace;      // splits slices of dw's size, when splits > 1
    const void* residual;  // like dw, or null (dw += ...), applied where dw is written
    int in_d, in_h, in_w;
    int out_d, out_h, out_w;
    int kernel_h, kernel_w;
    int stride_d, stride_h, stride_w;
    int pad_d, pad_h, pad_w;
    int dil_d, dil_h, dil_w;
    int channels, out_channels;  // C and K
    int group_in, group_out;     // C / groups (per tap: N's fastest part) and K / groups (M)
    int gemm_n;                  // taps * group_in
    int positions;               // N * output positions: the GEMM's k
    int splits, tiles_per_split;
};

// The A fragment of m16 tile i of the warp for mma step kk, from the [k][m] tile. 16-bit:
// transposed by ldmatrix, matrices (k 0-7, m 0-7), (k 0-7, m 8-15), (k 8-15, m 0-7),
// (k 8-15, m 8-15) are a0..a3 of m16n8k16. tf32: a0..a3 = A(m g, k t), A(g + 8, t), A(g, t + 4),
// A(g + 8, t + 4) of m16n8k8, one 32-bit load each (g = lane / 4, t = lane % 4).
template <class Tile, IgemmOperand Operand>
__device__ inline void load_a_fragment_km(const std::uint16_t* a_tile, int kk, int warp_m, int i, int lane,
                                          std::uint32_t (&a)[4]) {
    using Kn = KnTile<Tile, Operand>;
    const int m = warp_m * Tile::kWarpM + i * 16;
    if constexpr (OperandFormat<Operand>::kTf32) {
        const int row = kk * 8 + lane % 4, column = m + lane / 4;
        a[0] = load_kn_word<Kn>(a_tile, row, column);
        a[1] = load_kn_word<Kn>(a_tile, row, column + 8);
        a[2] = load_kn_word<Kn>(a_tile, row + 4, column);
        a[3] = load_kn_word<Kn>(a_tile, row + 4, column + 8);
        round_operands<Operand>(a);
    } else {
        const int row = kk * 16 + lane / 16 * 8 + lane % 8;
        const int m_chunk = m / 8 + lane / 8 % 2;
        ptx::ldmatrix<4, true>(a, a_tile + swizzled_kn<Kn>(row, m_chunk));
    }
}

// dw's epilogue: the residual added, nothing else (the column's "channel" indexes no bias).
constexpr EpilogueOperands epilogue_of(const FilterParams& p) {
    return {p.dw, nullptr, p.residual, 0};
}

// grid: x over M tiles (output channels), y over N tiles ((tap, channel)), z over groups x splits.
template <class Tile, IgemmOperand Operand, IgemmOutput Output>
__global__ void __launch_bounds__(Tile::kThreads) conv_igemm_filter_kernel(FilterParams p) {
    static_assert(Tile::kBlockM == Tile::kBlockN, "A's [k][m] tile reuses B's [k][n] layout");
    using Format = OperandFormat<Operand>;
    using Element = typename Format::Element;
    using Kn = KnTile<Tile, Operand>;
    constexpr int kChunksRow = Kn::kChunks, kRowsPerPass = Kn::kRowsPerPass, kPasses = Kn::kPasses;
    const auto* dy = static_cast<const Element*>(p.dy);
    const auto* x = static_cast<const Element*>(p.x);
    std::uint16_t* shared = dynamic_shared_memory<std::uint16_t>();
    const int block_m = static_cast<int>(blockIdx.x) * Tile::kBlockM;
    const int block_n = static_cast<int>(blockIdx.y) * Tile::kBlockN;
    const int split = static_cast<int>(blockIdx.z) % p.splits, group = static_cast<int>(blockIdx.z) / p.splits;
    const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
    const int warp_m = warp / Tile::kWarpsN, warp_n = warp % Tile::kWarpsN;

    // This thread's columns of both tiles (fixed for the whole k loop): one vector of output
    // channels of A, one of channels of one tap of B (8 16-bit values or 4 floats).
    const int chunk = static_cast<int>(threadIdx.x) % kChunksRow,
              first_row = static_cast<int>(threadIdx.x) / kChunksRow;
    const int kout = block_m + chunk * Format::kPerChunk;
    const bool kout_valid = kout < p.group_out;
    const std::int64_t dy_channel = static_cast<std::int64_t>(group) * p.group_out + kout;
    const int j = block_n + chunk * Format::kPerChunk;
    const bool j_valid = j < p.gemm_n;
    const int tap = j / p.group_in, c = j - tap * p.group_in;
    const int kw = tap % p.kernel_w, kh = tap / p.kernel_w % p.kernel_h, kd = tap / p.kernel_w / p.kernel_h;
    const int reach_d = kd * p.dil_d - p.pad_d, reach_h = kh * p.dil_h - p.pad_h, reach_w = kw * p.dil_w - p.pad_w;
    const std::int64_t x_channel = static_cast<std::int64_t>(group) * p.group_in + c;

    auto load_stage = [&](int kt, std::uint16_t* stage) {
        std::uint16_t* b_tile = stage + Tile::kBlockM * Tile::kBlockK;
        CONVKIT_UNROLL
        for (int pass = 0; pass < kPasses; ++pass) {
            const int row = first_row + pass * kRowsPerPass;
            const int q = kt * Format::kBlockK + row;
            const bool q_valid = q < p.positions;
            int rest = q;
            const int ow = rest % p.out_w;
            rest /= p.out_w;
            const int oh = rest % p.out_h;
            rest /= p.out_h;
            const int od = rest % p.out_d;
            const int n = rest / p.out_d;
            const bool a_inside = q_valid && kout_valid;
            ptx::cp_async<16>(stage + swizzled_kn<Kn>(row, chunk),
                              a_inside ? dy + static_cast<std::int64_t>(q) * p.out_channels + dy_channel : dy,
                              a_inside ? 16 : 0);
            const int id = od * p.stride_d + reach_d, ih = oh * p.stride_h + reach_h, iw = ow * p.stride_w + reach_w;
            const bool b_inside = q_valid && j_valid && static_cast<unsigned>(id) < static_cast<unsigned>(p.in_d) &&
                                  static_cast<unsigned>(ih) < static_cast<unsigned>(p.in_h) &&
                                  static_cast<unsigned>(iw) < static_cast<unsigned>(p.in_w);
            const Element* source =
                b_inside
                    ? x + (((static_cast<std::int64_t>(n) * p.in_d + id) * p.in_h + ih) * p.in_w + iw) * p.channels +
                          x_channel
                    : x;
            ptx::cp_async<16>(b_tile + swizzled_kn<Kn>(row, chunk), source, b_inside ? 16 : 0);
        }
    };

    Accumulators<Tile> acc;
    zero<Tile>(acc);

    // This split's k tiles, through the same ring as the other passes.
    const SplitRange range =
        split_range(split, p.tiles_per_split, (p.positions + Format::kBlockK - 1) / Format::kBlockK);
    run_ring<Tile>(
        shared, range.count, [&](int step, std::uint16_t* stage) { load_stage(range.first + step, stage); },
        [&](const std::uint16_t* a_tile) {
            const std::uint16_t* b_tile = a_tile + Tile::kBlockM * Tile::kBlockK;
            CONVKIT_UNROLL
            for (int kk = 0; kk < Format::kMmaSteps; ++kk) {
                std::uint32_t a[Tile::kMmaM][4];
                CONVKIT_UNROLL
                for (int i = 0; i < Tile::kMmaM; ++i)
                    load_a_fragment_km<Tile, Operand>(a_tile, kk, warp_m, i, lane, a[i]);
                // B from [k][n], as backward-data's.
                std::uint32_t b[Tile::kMmaN][2];
                load_b_fragments_kn<Tile, Operand>(b_tile, kk, warp_n, lane, b);
                mma_warp_tile<Tile, Operand>(acc, a, b);
            }
        });

    // dw[group * group_out + m, j] (row length gemm_n): to dw through its epilogue with one split,
    // else to this split's slice of the workspace (every element of the slice, zero where count
    // is 0).
    float* const slice =
        p.splits > 1 ? p.workspace + split * static_cast<std::int64_t>(p.out_channels) * p.gemm_n : nullptr;
    const EpilogueOperands epilogue = epilogue_of(p);
    const ResultWriter<Output> write{epilogue, slice, p.gemm_n, p.gemm_n, 0};
    write_accumulators<Tile>(shared, acc, write, block_m, block_n, warp_m, warp_n, lane, [&](int m) -> std::int64_t {
        return m < p.group_out ? static_cast<std::int64_t>(group) * p.group_out + m : -1;
    });
}

template <class Tile, IgemmOperand Operand, IgemmOutput Output>
void launch_filter(const FilterParams& p, int groups, cudaStream_t stream) {
    const LaunchShape shape{dim3(static_cast<unsigned>((p.group_out + Tile::kBlockM - 1) / Tile::kBlockM),
                                 static_cast<unsigned>((p.gemm_n + Tile::kBlockN - 1) / Tile::kBlockN),
                                 static_cast<unsigned>(groups * p.splits)),
                            dim3(Tile::kThreads), Tile::kSharedBytes, true};
    launch<conv_igemm_filter_kernel<Tile, Operand, Output>>(shape, stream, p);
    if (p.splits > 1) {
        add_split_slices<Output>(p.workspace, p.splits, p.out_channels, p.gemm_n, SameRow{}, epilogue_of(p), stream);
    }
}

// One instantiation per tile, operand and output (tf32 writes float32 only).
template <class Tile>
void filter_operand(const FilterParams& p, int groups, IgemmOperand operand, IgemmOutput output, cudaStream_t stream) {
    with_operand_and_output(operand, output, [&](auto op, auto out) {
        launch_filter<Tile, decltype(op)::value, decltype(out)::value>(p, groups, stream);
    });
}

// The GEMM's k tiles: its k is N x output positions.
std::int64_t filter_k_tiles(const IgemmConvShape& s, IgemmOperand operand) {
    const auto o = s.output();
    return k_tiles_of(s.batch * o[0] * o[1] * o[2], operand);
}
}  // namespace

IgemmTile conv_igemm_backward_filter_default_tile(const IgemmConvShape& s) {
    const std::int64_t groups = std::max<std::int64_t>(s.groups, 1);
    const std::int64_t rows = s.out_channels / groups, columns = kernel_taps(s) * s.in_channels / groups;
    // The reduction (N x output positions) is long, so split-K gives this GEMM the blocks its output
    // tiles lack: the large tile wherever its rows and columns fill one and its blocks, split as
    // default_splits splits them (16-bit k tiles), fill at least half a wave. default_splits leaves
    // 132-263 blocks unsplit (a split would add a partial wave), so those run at 50-100% of a wave:
    // by docs/benchmarks.md's model (e 0.40 large, 0.25 small) that beats the small tile from
    // about 165 blocks up and loses by up to a fifth below. Square tiles only.
    const std::int64_t blocks = tile_blocks(IgemmTile::Large, rows, columns, groups);
    const int splits = default_splits(IgemmTile::Large, blocks, filter_k_tiles(s, IgemmOperand::BFloat16), groups);
    const bool full = rows >= LargeTile::kBlockM && columns >= LargeTile::kBlockN;
    return full && 2 * blocks * splits >= kTargetBlocks ? IgemmTile::Large : IgemmTile::Small;
}

int conv_igemm_backward_filter_default_splits(const IgemmConvShape& s, IgemmOperand operand, IgemmTile tile) {
    if (!conv_igemm_unsupported_reason(s, operand).empty()) return 1;
    const std::int64_t blocks =
        tile_blocks(tile, s.out_channels / s.groups, kernel_taps(s) * s.in_channels / s.groups, s.groups);
    return default_splits(tile, blocks, filter_k_tiles(s, operand), s.groups);
}

std::size_t conv_igemm_backward_filter_workspace_bytes(const IgemmConvShape& s, IgemmOperand operand, int splits) {
    if (!conv_igemm_unsupported_reason(s, operand).empty()) return 0;
    return split_slice_bytes(splits, s.out_channels * kernel_taps(s) * s.in_channels / s.groups);
}

void conv_igemm_backward_filter(const IgemmConvShape& s, IgemmOperand operand, IgemmOutput output, IgemmTile tile,
                                int splits, const void* dy, const void* x, const void* residual, void* dw,
                                void* workspace, Stream stream) {
    const char* op = "conv_igemm_backward_filter";
    check_call(op, s, operand, output, dy, x, dw, "dy", "x", "dw");
    // Its A tile ([k][m], dy) reuses B's [k][n] layout, which takes square tiles.
    if (tile == IgemmTile::Narrow || tile == IgemmTile::Slim)
        throw InvalidArgument(std::string(op) + ": the " + (tile == IgemmTile::Slim ? "slim 128x32" : "narrow 128x64") +
                              " tile runs forward and backward-data only");
    check_splits(op, splits, s.groups, workspace, conv_igemm_backward_filter_workspace_bytes(s, operand, splits));
    const Dims3 d = dims3(s);
    const std::int64_t group_in = s.in_channels / s.groups, group_out = s.out_channels / s.groups;
    const std::int64_t positions = s.batch * d.output[0] * d.output[1] * d.output[2];
    const std::int64_t k_tiles = filter_k_tiles(s, operand);
    const int per_split = tiles_per_split(k_tiles, splits);
    const FilterParams p{dy,
                         x,
                         dw,
                         static_cast<float*>(workspace),
                         residual,
                         i32(d.input[0]),
                         i32(d.input[1]),
                         i32(d.input[2]),
                         i32(d.output[0]),
                         i32(d.output[1]),
                         i32(d.output[2]),
                         i32(d.kernel[1]),
                         i32(d.kernel[2]),
                         i32(d.stride[0]),
                         i32(d.stride[1]),
                         i32(d.stride[2]),
                         i32(d.padding[0]),
                         i32(d.padding[1]),
                         i32(d.padding[2]),
                         i32(d.dilation[0]),
                         i32(d.dilation[1]),
                         i32(d.dilation[2]),
                         i32(s.in_channels),
                         i32(s.out_channels),
                         i32(group_in),
                         i32(group_out),
                         i32(d.kernel[0] * d.kernel[1] * d.kernel[2] * group_in),
                         i32(positions),
                         splits,
                         per_split};
    const cudaStream_t cuda_stream = detail::to_cuda(stream);
    if (tile == IgemmTile::Large) {
        filter_operand<LargeTile>(p, i32(s.groups), operand, output, cuda_stream);
    } else {
        filter_operand<SmallTile>(p, i32(s.groups), operand, output, cuda_stream);
    }
}

CONVKIT_KERNELS_END
