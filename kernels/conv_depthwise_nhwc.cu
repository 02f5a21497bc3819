// Depthwise convolution on channels-last activations (N, D, H, W, C: channels adjacent), one
// output channel per input channel, zeros padding: forward, backward-data and backward-filter,
// 1-D/2-D/3-D, every stride and dilation: bfloat16 and float16 (computed in float32, rounded
// once) in every pass, float32 and float64 forward and backward-data. The variant cuda.depthwise
// runs these for 16-bit problems in either layout (a contiguous one converted to channels-last by
// the op layer); for float32 and float64 kernels/conv_depthwise.cu's contiguous kernels run the
// contiguous layout and the weight and bias gradients (a channels-last one converted), and these
// the channels-last forward and backward-data, summing term for term as those do (kSumsPadding).
// One order of sums per dtype and pass whatever the layout, so both layouts give the same bits,
// as every op's must (tests/test_memory_format.cpp).
//
// Why a layout of its own: channels-last puts one position's channels in a row, so a thread can
// own a pack of adjacent channels (16 bytes: 8 bfloat16, 4 floats) and move each operand in
// 16-byte accesses, the width bandwidth-bound kernels need (kernels/element_pack.cuh); a warp's
// packs are consecutive in memory whatever the channel count. Without it a bfloat16 depthwise
// layer on channels-last tensors ran as unfolded columns times cuBLAS (cuda.im2col: a column
// matrix of taps times the input, and one GEMM of one column per channel).
//
// Forward and backward-data: a thread computes one pack at kRun consecutive positions along W
// (its accumulators in registers), reading the filter's pack once per tap for all of them; the
// neighbouring positions' inputs, which several taps and threads share, come from L1 and L2. The
// filter is read as [taps][C] (permuted into the workspace first), so that a tap's pack is one
// access. Where W's stride and dilation are 1 (every 'same' layer), the source packs a thread
// reads stay widened in a register window that slides one position a tap, so each is loaded and
// widened once a row of taps, not once a tap and position (add_unit_step_row). Backward-data
// gathers dy through the taps whose output position is whole (a stride division by multiply and
// shift), the adjoint of the forward. Grid and block y walk the written tensor's rows (n, d, h),
// x a row's (run, pack) items: 32-bit indices, divisions by FastDivisor.
// Backward-filter: a block per (group of taps along W, tile of packs, split of the items), an item
// being kFilterColumns output columns of one row (n, d, h); each thread sums dy x for its pack
// over its items, each dy pack loaded once for the group's taps: at unit step, kRun taps from a
// window of x that slides a column at a time, as the run kernel's does; else a whole row of an
// unrolled width, or single taps. The block adds its lanes in lane order, and a second kernel adds
// the splits in split order. The plan (lanes, splits) comes from the channel count alone, so dw
// is the same bit for bit on every run, packed or not (a misaligned view runs single channels).
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "convkit/error.h"
#include "cuda/cuda_runtime.h"
#include "kernels/conv_depthwise.h"
#include "kernels/conv_depthwise_widths.h"
#include "kernels/element_pack.cuh"
#include "kernels/fast_division.h"
#include "kernels/kernel_support.cuh"
#include "kernels/tensor_fill.h"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::ConvGeometry;

// Positions along W a forward or backward-data thread computes.
constexpr int kRun = 4;
// Their __launch_bounds__' blocks an SM (of 256 threads): 3 (24 warps), which caps them at 80
// registers where float16 packs took 90-92 left alone (2 blocks), since a bandwidth-bound kernel
// wants more warps' loads in flight. The unit-step window holds kRun more widened packs (32
// registers for bfloat16): at 80 it spilled, so it runs 2 blocks (121-128 registers, no stack).
constexpr int kRunBlocksPerSm = 3;
constexpr int kWindowBlocksPerSm = 2;
// Backward-filter: threads a block, packs a block at most (the rest of the block's threads are
// lanes over items), output columns an item, and the blocks aimed at (about four waves of an H100).
constexpr int kFilterThreads = 256;
constexpr int kMaxFilterPacks = 32;
constexpr int kFilterColumns = 16;
constexpr std::int64_t kFilterBlocksTarget = 2048;
constexpr std::int64_t kIntMax = 0x7fffffff;

// The geometry by value, always 3-D (rank 1 and 2 have leading extents of 1).
struct NhwcGeometry {
    std::int64_t batch = 1, channels = 1;
    int in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, kernel[3] = {1, 1, 1};
    int dilation[3] = {1, 1, 1}, pad[3] = {0, 0, 0};
    FastDivisor stride[3];  // a multiply and shift for backward-data's gathers; .divisor() the stride
    int taps = 1;
};

NhwcGeometry nhwc_geometry(const ConvGeometry& g) {
    NhwcGeometry n;
    n.batch = g.batch;
    n.channels = g.in_channels;
    for (std::size_t d = 0; d < 3; ++d) {
        n.in[d] = static_cast<int>(g.input[d]);
        n.out[d] = static_cast<int>(g.output[d]);
        n.kernel[d] = static_cast<int>(g.kernel[d]);
        n.dilation[d] = static_cast<int>(g.dilation[d]);
        n.pad[d] = static_cast<int>(g.pad_begin[d]);
        n.stride[d] = FastDivisor(static_cast<int>(g.stride[d]));
    }
    n.taps = n.kernel[0] * n.kernel[1] * n.kernel[2];
    return n;
}

// A tensor's rows (n, d, h) as the 32-bit divisions that split a row index: row = (n * D + d) * H + h.
struct Rows {
    int count = 1;
    FastDivisor height, depth;
};

Rows rows_of(std::int64_t batch, const int* extent) {
    return {static_cast<int>(batch * extent[0] * extent[1]), FastDivisor(extent[1]), FastDivisor(extent[0])};
}

struct RowCoordinates {
    int n, d, h;
};

__device__ inline RowCoordinates split_row(const Rows& rows, int row) {
    const int rest = rows.height.divide(row), n = rows.depth.divide(rest);
    return {n, rest - n * rows.depth.divisor(), row - rest * rows.height.divisor()};
}

// Forward and backward-data's launch over the written tensor: its rows, and per row `items` (run,
// pack) pairs, item = run * packs + pack.
struct RunShape {
    Rows rows;
    FastDivisor packs;
    int items = 1;
};

RunShape run_shape(const NhwcGeometry& g, const int* written, int width) {
    const int packs = static_cast<int>(g.channels / width);
    return {rows_of(g.batch, written), FastDivisor(packs), ((written[2] + kRun - 1) / kRun) * packs};
}

// Backward-filter's launch: blocks along x over tap groups, filter_group_taps(g) consecutive taps
// along W of one row (kd, kh) of the kernel, `row_groups` of them a row (the last one's taps past KW
// summed but not written); channels of a block (block x: packs, or single channels where the
// launch runs them), lanes over items (block y), and the split of the items over grid z.
struct FilterPlan {
    int block_packs = 1, lanes = kFilterThreads;
    int row_groups = 1;
    std::int64_t tap_groups = 1, pack_tiles = 1;
    Rows rows;           // the output's
    FastDivisor chunks;  // items a row: ceil(W_out / kFilterColumns)
    int items = 1, items_per_split = 1;
    int splits = 1;
};

// Whether W's stride and dilation are 1, so that consecutive positions along W read consecutive
// source positions through consecutive taps: the register windows of both passes.
bool unit_step_w(const NhwcGeometry& g) {
    return g.stride[2].divisor() == 1 && g.dilation[2] == 1;
}

// Whether backward-filter sums kRun taps from a sliding window of x: at unit step, for 3 taps along
// W or more (1 or 2 would leave most of the window's multiply-adds and sums unused).
bool filter_window(const NhwcGeometry& g) {
    return unit_step_w(g) && g.kernel[2] >= 3;
}

// The taps along W one backward-filter thread sums: kRun (filter_window), else the kernel width
// where it is unrolled, else 1.
int filter_group_taps(const NhwcGeometry& g) {
    if (filter_window(g)) return kRun;
    int taps = 1;
    dispatch_kernel_width(g.kernel[2], [&](auto width) { taps = decltype(width)::value > 0 ? g.kernel[2] : 1; });
    return taps;
}

// The plan for the widest pack the channel count allows (`wide`), run `width` channels a thread:
// the same lanes, items and splits either way, so the same sums in the same order.
FilterPlan filter_plan(const NhwcGeometry& g, int wide, int width) {
    FilterPlan plan;
    const std::int64_t wide_packs = g.channels / wide;
    const std::int64_t tiles = (wide_packs + kMaxFilterPacks - 1) / kMaxFilterPacks;
    plan.block_packs = static_cast<int>((wide_packs + tiles - 1) / tiles);  // as even as the tiles allow
    plan.lanes = kFilterThreads / plan.block_packs;
    const int group_taps = filter_group_taps(g);
    plan.row_groups = (g.kernel[2] + group_taps - 1) / group_taps;
    plan.tap_groups = std::int64_t{g.kernel[0]} * g.kernel[1] * plan.row_groups;
    plan.pack_tiles = (g.channels / width + plan.block_packs - 1) / plan.block_packs;
    plan.rows = rows_of(g.batch, g.out);
    const int chunks = (g.out[2] + kFilterColumns - 1) / kFilterColumns;
    plan.chunks = FastDivisor(chunks);
    plan.items = plan.rows.count * chunks;
    const std::int64_t blocks = plan.tap_groups * ((wide_packs + plan.block_packs - 1) / plan.block_packs);
    const std::int64_t wanted = (kFilterBlocksTarget + blocks - 1) / blocks;
    // Each split gives every lane an item at least; grid z holds at most 65535.
    const std::int64_t most = std::max<std::int64_t>(1, plan.items / plan.lanes);
    const std::int64_t splits = std::clamp<std::int64_t>(std::min(wanted, most), 1, kMaxGridZ);
    plan.items_per_split = static_cast<int>((plan.items + splits - 1) / splits);
    plan.splits = (plan.items + plan.items_per_split - 1) / plan.items_per_split;
    return plan;
}

int widest_pack_width(const ConvGeometry& g, DType dtype) {
    const int wide = 16 / static_cast<int>(dtype_size(dtype));
    return g.in_channels % wide == 0 ? wide : 1;
}

// The widest pack (16 bytes of T, else one element) that the channel count and every buffer allow.
template <typename T, typename F, typename... Pointers>
void with_pack_width(std::int64_t channels, F&& f, const Pointers*... pointers) {
    constexpr int wide = kPackWidth<T>;
    if (channels % wide == 0 && pack_aligned<T, wide>(pointers...)) {
        f(PackWidth<wide>{});
    } else {
        f(PackWidth<1>{});
    }
}

// What tap k of coordinate `at` along dim d of the written tensor reads: forward, x at at * stride
// - pad + k * dilation; backward-data, dy at the o with o * stride = at + pad - k * dilation. A
// source position inside the read tensor, padding (a position outside it), or none (backward-data
// where that o is not whole: no output reads `at` through k).
enum class TapSource { Inside, Padding, None };

template <bool Forward>
__device__ inline TapSource tap_source(const NhwcGeometry& g, int d, int at, int k, int& source) {
    if constexpr (Forward) {
        source = at * g.stride[d].divisor() - g.pad[d] + k * g.dilation[d];
    } else {
        const int numerator = at + g.pad[d] - k * g.dilation[d];
        if (g.stride[d].divisor() == 1) {
            source = numerator;
        } else {
            const int magnitude = numerator < 0 ? -numerator : numerator;
            const int quotient = g.stride[d].divide(magnitude);
            if (quotient * g.stride[d].divisor() != magnitude) return TapSource::None;
            source = numerator < 0 ? -quotient : quotient;
        }
    }
    const int extent = Forward ? g.in[d] : g.out[d];
    return static_cast<unsigned>(source) < static_cast<unsigned>(extent) ? TapSource::Inside : TapSource::Padding;
}

// Whether a padding tap adds its zero product. Float32 and float64 follow the contiguous kernels
// (kernels/conv_depthwise.cu) term for term: every tap in the order (kd, kh, kw), a padding tap's
// product with the zero staged there included, each added to an accumulator started from the
// bias; so the two layouts give the same bits (a skipped zero product differs from an added one
// in the sign of a zero and in 0 x inf). 16-bit types, which only these kernels run, skip padding
// where a loop can (padded rows of the kernel, the strided W loop's taps) and add its zero
// products in the unit-step window, whose padding reads are zeros in registers.
template <typename T>
inline constexpr bool kSumsPadding = !is_half_type<T>;

// One thread's kRun packs, accumulated in the compute type and started from the bias.
template <typename T, int Width>
struct RunAccumulators {
    using C = ComputeType<T>;
    C value[kRun][Width];

    __device__ explicit RunAccumulators(const T* bias, int pack) {
        ElementPack<T, Width> b{};
        if (bias != nullptr) b = load_pack<Width>(bias, pack);
        CONVKIT_UNROLL
        for (int r = 0; r < kRun; ++r) {
            CONVKIT_UNROLL
            for (int v = 0; v < Width; ++v) value[r][v] = bias != nullptr ? static_cast<C>(b.value[v]) : C(0);
        }
    }
    __device__ void add(int r, const C (&a)[Width], const C (&b)[Width]) {
        CONVKIT_UNROLL
        for (int v = 0; v < Width; ++v) value[r][v] += a[v] * b[v];
    }
    // Positions first, first + 1, ... of `out` (the pack `pack` of each), the first
    // `positions_left` of them (the row's end).
    __device__ void store(T* out, std::int64_t first_position, int positions_left, int packs, int pack) const {
        CONVKIT_UNROLL
        for (int r = 0; r < kRun; ++r) {
            if (r >= positions_left) break;
            ElementPack<T, Width> result;
            CONVKIT_UNROLL
            for (int v = 0; v < Width; ++v) result.value[v] = T(value[r][v]);
            store_pack<Width>(out, (first_position + r) * packs + pack, result);
        }
    }
};

// Calls step(u, s) for s = 0 .. count - 1 in order, u = s % kRun a constant in each call: kRun
// steps at a time, unrolled, then the last count % kRun after the loop, so that no step inside it
// can leave early (an exit there made nvcc keep a second copy of a register window and repeat a
// step's multiply-adds on it). The register windows below index their slots by u.
template <typename Step>
__device__ inline void for_each_window_step(int count, Step&& step) {
    const int whole = count - count % kRun;
    for (int s0 = 0; s0 < whole; s0 += kRun) {
        CONVKIT_UNROLL
        for (int u = 0; u < kRun; ++u) step(u, s0 + u);
    }
    CONVKIT_UNROLL
    for (int u = 0; u + 1 < kRun; ++u) {
        if (whole + u < count) step(u, whole + u);
    }
}

// One row (kd, kh) of the taps along W, any stride and dilation: per tap, the filter's pack once
// and each of the kRun positions' source packs that the tap reaches (a backward-data gather only
// where the output position is whole), widened where used; `row_inside` false for a row of
// padding (its products zero).
template <typename T, int Width, bool Forward>
__device__ inline void add_any_step_row(const NhwcGeometry& g, RunAccumulators<T, Width>& acc, const T* source,
                                        std::int64_t source_row, bool row_inside, int w0, int positions_left,
                                        int first_tap, int packs, int pack, const T* w) {
    using C = ComputeType<T>;
    for (int kw = 0; kw < g.kernel[2]; ++kw) {
        C weight[Width];
        load_widened<Width>(w, std::int64_t{first_tap + kw} * packs + pack, true, weight);
        CONVKIT_UNROLL
        for (int r = 0; r < kRun; ++r) {
            int sw;
            if (r >= positions_left) break;  // past the row's end: not stored
            const TapSource tap = tap_source<Forward>(g, 2, w0 + r, kw, sw);
            const bool reads = tap == TapSource::Inside && row_inside;
            if (!reads && (tap == TapSource::None || !kSumsPadding<T>)) continue;
            C value[Width];
            load_widened<Width>(source, (source_row + sw) * packs + pack, reads, value);
            acc.add(r, value, weight);
        }
    }
}

// One row (kd, kh) of the taps along W where W's stride and dilation are 1, the common case (every
// 'same' depthwise layer: ConvNeXt's 7x7, RepLKNet's 31x31, the 1-D ones): at tap s, position w0 +
// r reads the source at base + r + s (forward: base = w0 - pad) or base + r - s (backward-data:
// base = w0 + pad), so a tap's kRun source packs are the last tap's shifted by one. They stay
// widened in a window of kRun registers, slot (p - base) % kRun for position p, each loaded and
// widened once instead of once a tap: one load and Width widenings a tap, not kRun of each (the
// generic loop issued 222 instructions for a tap's 32 multiply-adds of bfloat16 packs, this one
// about 60). The taps go in ascending order through for_each_window_step, so every slot index is
// a constant.
// Padding and positions past the source's end (and a whole row of padding, `row_inside` false)
// read as zeros, their products added.
template <typename T, int Width, bool Forward>
__device__ inline void add_unit_step_row(const NhwcGeometry& g, RunAccumulators<T, Width>& acc, const T* source,
                                         std::int64_t source_row, bool row_inside, int w0, int first_tap, int packs,
                                         int pack, const T* w) {
    using C = ComputeType<T>;
    const int taps_w = g.kernel[2];
    const int extent = Forward ? g.in[2] : g.out[2];
    const int base = Forward ? w0 - g.pad[2] : w0 + g.pad[2];
    const T* row = source + source_row * packs * Width;  // 32-bit pack indices from here
    C window[kRun][Width] = {};                          // (each slot filled before its first use; gcc cannot tell)
    const auto fill = [&](C(&slot)[Width], int position) {
        load_widened<Width>(row, position * packs + pack,
                            row_inside && static_cast<unsigned>(position) < static_cast<unsigned>(extent), slot);
    };
    // The slot of position w0 + r's source at the tap s with s % kRun == u; the position that tap
    // brings in is r = kRun - 1's (forward) or r = 0's (backward-data), into the slot of the one
    // it no longer needs.
    const auto slot_of = [](int r, int u) { return Forward ? (r + u) % kRun : (r - u + kRun) % kRun; };
    constexpr int kEntering = Forward ? kRun - 1 : 0;
    const auto step = [&](int u, int s) {
        fill(window[slot_of(kEntering, u)], base + kEntering + (Forward ? s : -s));
        C weight[Width];
        load_widened<Width>(w, (first_tap + s) * packs + pack, true, weight);
        CONVKIT_UNROLL
        for (int r = 0; r < kRun; ++r) acc.add(r, window[slot_of(r, u)], weight);
    };
    CONVKIT_UNROLL
    for (int r = 0; r < kRun; ++r) {
        if (r != kEntering) fill(window[r], base + r);  // tap 0's other positions
    }
    for_each_window_step(taps_w, step);
}

// Forward: y[n, o, c] = bias[c] + sum over taps t of x[n, o * stride - pad + t * dilation, c] w[t, c].
// Backward-data: dx[n, i, c] = bias[c] + sum over the taps t with o * stride = i + pad - t *
// dilation whole and inside of dy[n, o, c] w[t, c]. `source` is x or dy, `out` y or dx; `shape`
// the written tensor's rows and items.
template <typename T, int Width, bool Forward, bool UnitStepW>
__global__ void __launch_bounds__(kThreadsPerBlock, UnitStepW ? kWindowBlocksPerSm : kRunBlocksPerSm)
    depthwise_nhwc_run_kernel(NhwcGeometry g, RunShape shape, const T* source, const T* w, const T* bias, T* out) {
    const int* written = Forward ? g.out : g.in;
    const int* read = Forward ? g.in : g.out;
    const int packs = shape.packs.divisor();
    for (int row = static_cast<int>(blockIdx.y * blockDim.y + threadIdx.y); row < shape.rows.count;
         row += static_cast<int>(gridDim.y * blockDim.y)) {
        const RowCoordinates at = split_row(shape.rows, row);
        for (int item = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); item < shape.items;
             item += static_cast<int>(gridDim.x * blockDim.x)) {
            const int run = shape.packs.divide(item), pack = item - run * packs, w0 = run * kRun;
            const int positions_left = written[2] - w0;
            RunAccumulators<T, Width> acc(bias, pack);
            // A row of taps: none (not whole), padding (skipped in 16 bits, zeros in float32 and
            // float64: kSumsPadding), or inside.
            const auto taken = [](TapSource tap) {
                return tap == TapSource::Inside || (tap == TapSource::Padding && kSumsPadding<T>);
            };
            for (int kd = 0; kd < g.kernel[0]; ++kd) {
                int sd;
                const TapSource depth = tap_source<Forward>(g, 0, at.d, kd, sd);
                if (!taken(depth)) continue;
                for (int kh = 0; kh < g.kernel[1]; ++kh) {
                    int sh;
                    const TapSource height = tap_source<Forward>(g, 1, at.h, kh, sh);
                    if (!taken(height)) continue;
                    const bool inside = depth == TapSource::Inside && height == TapSource::Inside;
                    const std::int64_t source_row =
                        inside ? (std::int64_t{at.n * read[0] + sd} * read[1] + sh) * read[2] : 0;
                    const int first_tap = (kd * g.kernel[1] + kh) * g.kernel[2];
                    if constexpr (UnitStepW) {
                        add_unit_step_row<T, Width, Forward>(g, acc, source, source_row, inside, w0, first_tap, packs,
                                                             pack, w);
                    } else {
                        add_any_step_row<T, Width, Forward>(g, acc, source, source_row, inside, w0, positions_left,
                                                            first_tap, packs, pack, w);
                    }
                }
            }
            acc.store(out, std::int64_t{row} * written[2] + w0, positions_left, packs, pack);
        }
    }
}

// One item's columns [first, end) of dy's row (32-bit pack indices from `dy_row`) against x's row
// `x_row` at unit step along W: tap kw0 + j reads x at o - pad + kw0 + j, so column o + 1's kRun x
// packs are column o's shifted by one. They stay widened in a window of kRun registers (slot
// (c + j) % kRun for the c-th column), each loaded and widened once, not once a tap: a column is
// one load and Width widenings of dy and of x, and kRun x Width multiply-adds. Columns go through
// for_each_window_step, as the run kernel's taps do; positions outside x read as zeros.
template <typename T, int Width>
__device__ inline void add_filter_window_columns(const NhwcGeometry& g, ComputeType<T> (&acc)[kRun][Width],
                                                 const T* dy_row, const T* x_row, int first, int end, int kw0,
                                                 int packs, int pack) {
    using C = ComputeType<T>;
    const int base = first - g.pad[2] + kw0;  // x's position for column `first` and tap kw0
    C window[kRun][Width] = {};               // (each slot filled before its first use; gcc cannot tell)
    const auto fill = [&](C(&slot)[Width], int position) {
        load_widened<Width>(x_row, position * packs + pack,
                            static_cast<unsigned>(position) < static_cast<unsigned>(g.in[2]), slot);
    };
    // Column first + c (u = c % kRun): x at base + c + kRun - 1 into the slot that held base + c - 1,
    // then dy's pack times every tap's x.
    const auto column = [&](int u, int c) {
        fill(window[(u + kRun - 1) % kRun], base + c + kRun - 1);
        C d[Width];
        load_widened<Width>(dy_row, (first + c) * packs + pack, true, d);
        CONVKIT_UNROLL
        for (int j = 0; j < kRun; ++j) {
            CONVKIT_UNROLL
            for (int v = 0; v < Width; ++v) acc[j][v] += d[v] * window[(u + j) % kRun][v];
        }
    };
    CONVKIT_UNROLL
    for (int r = 0; r + 1 < kRun; ++r) fill(window[r], base + r);
    for_each_window_step(end - first, column);
}

// Partial sums of dw[t, c] = sum over rows and columns of dy[n, o, c] x[n, o * stride - pad + t *
// dilation, c]: block (tap group, channel tile, split); thread (pack or channel in the tile, lane).
// The group is filter_group_taps(g) taps along W of one row (kd, kh) of the kernel, each dy pack
// loaded once for all of them: UnitStepW, kRun taps from a sliding window of x
// (add_filter_window_columns); else KW > 0, the row's KW taps (their x packs, neighbours along the
// row, from L1); else one tap.
// Lanes take the split's items (kFilterColumns columns of a row) in turn; the block adds its lanes
// in lane order, tap by tap, into partial[split][tap][c].
template <typename T, int Width, int KW, bool UnitStepW>
__global__ void depthwise_nhwc_filter_partials_kernel(NhwcGeometry g, FilterPlan plan, const T* dy, const T* x,
                                                      ComputeType<T>* partial) {
    using C = ComputeType<T>;
    constexpr int kGroupTaps = UnitStepW ? kRun : KW > 0 ? KW : 1;
    const int packs = static_cast<int>(g.channels / Width);
    const int kernel_row = static_cast<int>(blockIdx.x) / plan.row_groups;  // kd * KH + kh
    const int kw0 = (static_cast<int>(blockIdx.x) - kernel_row * plan.row_groups) * kGroupTaps;
    const int kh = kernel_row % g.kernel[1], kd = kernel_row / g.kernel[1];
    const int first_tap = kernel_row * g.kernel[2] + kw0;  // and the next kGroupTaps - 1, along W
    const int pack = static_cast<int>(blockIdx.y) * plan.block_packs + static_cast<int>(threadIdx.x);
    const int lane = static_cast<int>(threadIdx.y);
    C acc[kGroupTaps][Width] = {};
    if (pack < packs) {
        const int first_item = static_cast<int>(blockIdx.z) * plan.items_per_split;
        const int end_item =
            first_item + plan.items_per_split < plan.items ? first_item + plan.items_per_split : plan.items;
        for (int item = first_item + lane; item < end_item; item += plan.lanes) {
            const int row = plan.chunks.divide(item), chunk = item - row * plan.chunks.divisor();
            const RowCoordinates at = split_row(plan.rows, row);
            int id, ih;
            if (tap_source<true>(g, 0, at.d, kd, id) != TapSource::Inside ||
                tap_source<true>(g, 1, at.h, kh, ih) != TapSource::Inside) {
                continue;
            }
            const std::int64_t dy_row = std::int64_t{row} * g.out[2];
            const std::int64_t x_row = (std::int64_t{at.n * g.in[0] + id} * g.in[1] + ih) * g.in[2];
            const int first_column = chunk * kFilterColumns;
            const int end_column = first_column + kFilterColumns < g.out[2] ? first_column + kFilterColumns : g.out[2];
            if constexpr (UnitStepW) {
                add_filter_window_columns<T, Width>(g, acc, dy + dy_row * packs * Width, x + x_row * packs * Width,
                                                    first_column, end_column, kw0, packs, pack);
            } else {
                for (int o = first_column; o < end_column; ++o) {
                    const ElementPack<T, Width> d = load_pack<Width>(dy, (dy_row + o) * packs + pack);
                    CONVKIT_UNROLL
                    for (int j = 0; j < kGroupTaps; ++j) {
                        int iw;
                        if (tap_source<true>(g, 2, o, kw0 + j, iw) != TapSource::Inside) continue;
                        const ElementPack<T, Width> s = load_pack<Width>(x, (x_row + iw) * packs + pack);
                        CONVKIT_UNROLL
                        for (int v = 0; v < Width; ++v)
                            acc[j][v] += static_cast<C>(d.value[v]) * static_cast<C>(s.value[v]);
                    }
                }
            }
        }
    }
    // Each tap's lanes through shared memory, added by lane 0 in lane order (a window's taps past
    // KW are not written: the condition is the block's, so every thread reaches each barrier).
    C* lanes = dynamic_shared_memory<C>();
    const int slot = (lane * plan.block_packs + static_cast<int>(threadIdx.x)) * Width;
    CONVKIT_UNROLL
    for (int j = 0; j < kGroupTaps; ++j) {
        CONVKIT_UNROLL
        for (int v = 0; v < Width; ++v) lanes[slot + v] = acc[j][v];
        __syncthreads();
        if (lane == 0 && pack < packs && kw0 + j < g.kernel[2]) {
            for (int v = 0; v < Width; ++v) {
                C total = C(0);
                for (int l = 0; l < plan.lanes; ++l) {
                    total += lanes[(l * plan.block_packs + static_cast<int>(threadIdx.x)) * Width + v];
                }
                partial[(static_cast<std::int64_t>(blockIdx.z) * g.taps + first_tap + j) * g.channels +
                        std::int64_t{pack} * Width + v] = total;
            }
        }
        __syncthreads();  // the slots are free for the next tap
    }
}

// dw[c, t] (the filter's [C, 1, taps] order) = the sum of partial[s][t][c] over splits s, in order;
// a warp reads adjacent channels of one tap.
template <typename T>
__global__ void depthwise_nhwc_filter_sum_kernel(NhwcGeometry g, int splits, const ComputeType<T>* partial, T* dw) {
    using C = ComputeType<T>;
    const std::int64_t weights = g.channels * g.taps;
    for (std::int64_t i = global_thread_index(); i < weights; i += global_thread_count()) {
        const std::int64_t tap = i / g.channels, c = i % g.channels;
        C total = C(0);
        for (int s = 0; s < splits; ++s) total += partial[s * weights + i];
        dw[c * g.taps + tap] = T(total);
    }
}

// Calls f(bfloat16{}) or f(float16{}) by dtype: the storage types backward-filter runs (the
// forward and backward-data run every floating one: dispatch_float_storage_types).
template <typename F>
void dispatch_sixteen_bit(const char* op, DType dtype, F&& f) {
    if (dtype == DType::BFloat16) return f(bfloat16{});
    if (dtype == DType::Float16) return f(float16{});
    throw NotSupported(std::string(op) + ": runs bfloat16 and float16 only, not " + dtype_name(dtype));
}

// A 2-D grid-stride launch of 256-thread blocks: x over a row's items, whole warps of them, and y
// over rows, as many rows a block as its warps of items leave room for (a row of 28 runs of 4
// packs, MobileNetV2's first layer in bfloat16, is 112 items: 2 rows of 128 threads); at most
// kGridStrideBlocks blocks.
LaunchShape run_launch(const RunShape& shape) {
    const int warps = static_cast<int>(
        std::min<std::int64_t>((shape.items + kWarpSize - 1) / kWarpSize, kThreadsPerBlock / kWarpSize));
    const int block_x = warps * kWarpSize, block_y = kThreadsPerBlock / block_x;
    const std::int64_t x = std::min<std::int64_t>((shape.items + block_x - 1) / block_x, kGridStrideBlocks);
    const std::int64_t row_blocks = (shape.rows.count + block_y - 1) / block_y;
    const std::int64_t y =
        std::clamp<std::int64_t>(kGridStrideBlocks / x, 1, std::min<std::int64_t>(row_blocks, kMaxGridY));
    return {dim3(static_cast<unsigned>(x), static_cast<unsigned>(y)),
            dim3(static_cast<unsigned>(block_x), static_cast<unsigned>(block_y))};
}

// The forward (Forward) or backward-data pass: the filter by tap into the workspace, then the run
// kernel over the written tensor's positions (y's, or dx's), reading `source` (x, or dy).
template <bool Forward>
void launch_runs(const char* op, const ConvGeometry& g, DType dtype, const void* source, const void* w,
                 const void* bias, void* out, void* workspace, Stream stream) {
    const NhwcGeometry n = nhwc_geometry(g);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_storage_types(op, dtype, [&](auto tag) {
        using T = decltype(tag);
        // The filter [C, 1, taps] as [taps, C] in the workspace, a tap's channels adjacent: the
        // channels-last order of a [1, C, taps] tensor.
        permute_channels(w, workspace, dtype, 1, n.channels, n.taps, true, stream);
        const T* by_tap = static_cast<const T*>(workspace);
        const auto* read = static_cast<const T*>(source);
        const auto* b = static_cast<const T*>(bias);
        auto* written = static_cast<T*>(out);
        with_pack_width<T>(
            n.channels,
            [&](auto width) {
                constexpr int W = decltype(width)::value;
                const RunShape shape = run_shape(n, Forward ? n.out : n.in, W);
                const auto run = [&](auto unit_step) {
                    launch<depthwise_nhwc_run_kernel<T, W, Forward, decltype(unit_step)::value>>(
                        run_launch(shape), s, n, shape, read, by_tap, b, written);
                };
                if (unit_step_w(n)) {
                    run(std::true_type{});
                } else {
                    run(std::false_type{});
                }
            },
            read, by_tap, b, static_cast<const T*>(written));
    });
}

}  // namespace

std::string depthwise_channels_last_unsupported_reason(const ConvGeometry& g, DType dtype, bool parameter_gradient) {
    if (dtype != DType::BFloat16 && dtype != DType::Float16) {
        // Float32 and float64 run here only what the contiguous kernels run too, term for term
        // (kSumsPadding), so that both layouts give the same bits; their weight and bias gradients
        // sum in other orders, so they are the contiguous kernels' in either layout.
        if (dtype != DType::Float32 && dtype != DType::Float64) {
            return std::string("runs floating dtypes on channels-last activations, not ") + dtype_name(dtype);
        }
        if (parameter_gradient) {
            return std::string("computes ") + dtype_name(dtype) +
                   " weight and bias gradients on contiguous activations only (the contiguous kernels' order of "
                   "sums, so that both layouts give the same bits)";
        }
        if (std::string reason = depthwise_unsupported_reason(g, dtype); !reason.empty()) return reason;
    }
    if (std::string reason = depthwise_groups_unsupported_reason(g); !reason.empty()) return reason;
    if (g.out_channels != g.in_channels) {
        return "runs one output channel per input channel on channels-last activations, not a channel multiplier "
               "of " +
               std::to_string(g.out_channels / g.in_channels);
    }
    if (g.padding_mode != PaddingMode::Zeros) return "runs zeros padding only on channels-last activations";
    // Coordinates (and a run's overshoot past a row's end), rows, a row's items and the weights in
    // 32 bits; elements in 64.
    for (std::size_t d = 0; d < 3; ++d) {
        if (g.input[d] + g.pad_begin[d] + g.pad_end[d] + g.dilation[d] * g.kernel[d] > kIntMax / 2 ||
            g.stride[d] * (g.output[d] + kRun) > kIntMax / 2) {
            return "spatial extents past 32-bit coordinates";
        }
    }
    // (A W position's pack index, position x packs + pack, for every position a window reaches:
    // from padding before the row to its taps past the end.)
    const std::int64_t reach =
        std::max(g.input[2], g.output[2]) + g.pad_begin[2] + g.pad_end[2] + g.dilation[2] * g.kernel[2] + 2 * kRun;
    if (g.batch * g.input_spatial() > kIntMax || g.batch * g.output_spatial() > kIntMax ||
        reach * g.in_channels > kIntMax || g.kernel_spatial() * g.in_channels > kIntMax) {
        return "more positions, channels or taps than 32-bit indices hold";
    }
    // Backward-filter's channel tiles (at least 16 channels each from 32 packs up) on grid y.
    if (g.in_channels > std::int64_t{kMaxGridY} * 16) return "more than a million channels";
    return {};
}

std::size_t depthwise_channels_last_filter_by_tap_bytes(const ConvGeometry& g, DType dtype) {
    return static_cast<std::size_t>(g.in_channels * g.kernel_spatial()) * dtype_size(dtype);
}

std::size_t depthwise_channels_last_filter_workspace(const ConvGeometry& g, DType dtype) {
    const int wide = widest_pack_width(g, dtype);
    const FilterPlan plan = filter_plan(nhwc_geometry(g), wide, wide);  // either width's splits
    return static_cast<std::size_t>(plan.splits) * static_cast<std::size_t>(g.in_channels * g.kernel_spatial()) *
           sizeof(float);
}

void conv_forward_depthwise_channels_last(const ConvGeometry& g, DType dtype, const void* x, const void* w,
                                          const void* bias, void* y, void* workspace, Stream stream) {
    launch_runs<true>("conv_forward_depthwise_channels_last", g, dtype, x, w, bias, y, workspace, stream);
}

void conv_backward_data_depthwise_channels_last(const ConvGeometry& g, DType dtype, const void* dy, const void* w,
                                                const void* bias, void* dx, void* workspace, Stream stream) {
    launch_runs<false>("conv_backward_data_depthwise_channels_last", g, dtype, dy, w, bias, dx, workspace, stream);
}

void conv_backward_filter_depthwise_channels_last(const ConvGeometry& g, DType dtype, const void* dy, const void* x,
                                                  void* dw, void* workspace, Stream stream) {
    const NhwcGeometry n = nhwc_geometry(g);
    const cudaStream_t s = detail::to_cuda(stream);
    const int wide = widest_pack_width(g, dtype);
    dispatch_sixteen_bit("conv_backward_filter_depthwise_channels_last", dtype, [&](auto tag) {
        using T = decltype(tag);
        using C = ComputeType<T>;
        C* partial = static_cast<C*>(workspace);
        int splits = 1;
        with_pack_width<T>(
            n.channels,
            [&](auto width) {
                constexpr int W = decltype(width)::value;
                const FilterPlan plan = filter_plan(n, wide, W);
                splits = plan.splits;
                const LaunchShape shape{
                    dim3(static_cast<unsigned>(plan.tap_groups), static_cast<unsigned>(plan.pack_tiles),
                         static_cast<unsigned>(plan.splits)),
                    dim3(static_cast<unsigned>(plan.block_packs), static_cast<unsigned>(plan.lanes)),
                    static_cast<std::size_t>(plan.block_packs) * plan.lanes * W * sizeof(C)};
                const auto partials = [&](auto kernel_width, auto unit_step) {
                    launch<depthwise_nhwc_filter_partials_kernel<T, W, decltype(kernel_width)::value,
                                                                 decltype(unit_step)::value>>(
                        shape, s, n, plan, static_cast<const T*>(dy), static_cast<const T*>(x), partial);
                };
                if (filter_window(n)) {
                    partials(std::integral_constant<int, 0>{}, std::true_type{});
                } else {
                    dispatch_kernel_width(n.kernel[2],
                                          [&](auto kernel_width) { partials(kernel_width, std::false_type{}); });
                }
            },
            static_cast<const T*>(dy), static_cast<const T*>(x));
        launch<depthwise_nhwc_filter_sum_kernel<T>>({grid_for(n.channels * n.taps), kThreadsPerBlock}, s, n, splits,
                                                    static_cast<const C*>(partial), static_cast<T*>(dw));
    });
}

CONVKIT_KERNELS_END
