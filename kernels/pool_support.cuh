#pragma once
// What the pooling kernels share (kernels/pool_max.cu: max pooling, forward and both backwards;
// kernels/pool_mean.cu: average and adaptive average pooling): the operands' layouts and the
// split of a flat offset into plane and position (division-free in the Fast kernels, whose
// indices fit 32 bits), the backward gathers' walk over cells of 2x2 input positions, the
// widening of 16-bit storage, and the launch helpers that pick the dtype, the index width and
// the pack of adjacent channels. Private to those files.
//
// Window arithmetic comes from ops/geometry.h, shared with the host reference, so the GPU picks
// the same windows, divisors and argmax (first maximum; the last NaN) as the oracle.
#include <array>
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/element_pack.cuh"
#include "kernels/fast_division.h"
#include "kernels/kernel_support.cuh"
#include "kernels/pool.h"
#include "kernels/ptx.cuh"

CONVKIT_KERNELS_BEGIN
namespace pool {
using convkit::SpatialDims;
using detail::PlaneOffsets;
using detail::PoolGeometry;
using detail::WindowSpan;
using Position = std::array<std::int64_t, 3>;

// The kernels' positions and offsets where 32 bits hold them: in the Fast kernels (every tensor,
// extent, padding and window reach below 2^31: divisions_fit_32_bits), whose registers then fit
// 64 a thread and whose offsets take a 32-bit multiply each.
template <bool Fast>
using KernelIndex = std::conditional_t<Fast, int, std::int64_t>;

// Where one plane's elements lie: element (d, h, w) at first + ((d * H + h) * W + w) * step.
struct PlaneStart {
    std::int64_t first;
    std::int64_t step;
};

// n / d and n % d of a non-negative n: by a FastDivisor in kernels launched with Fast (every
// dividend below 2^31), else by the integer division sequence.
struct Divisor {
    std::int64_t value = 1;
    FastDivisor fast_value;

    Divisor() = default;
    explicit Divisor(std::int64_t d) : value(d), fast_value(static_cast<int>(d)) {}

    template <bool Fast>
    __device__ std::int64_t divide(std::int64_t n) const {
        if constexpr (Fast) {
            return fast_value.divide(static_cast<int>(n));
        } else {
            return n / value;
        }
    }
    // n / d, leaving n % d in n.
    template <bool Fast>
    __device__ std::int64_t divide_keep_remainder(std::int64_t& n) const {
        const std::int64_t quotient = divide<Fast>(n);
        n -= quotient * value;
        return quotient;
    }
};

// Whether every index and window offset of a launch stays below 2^31, so that its kernels may
// divide with FastDivisor: each tensor under 2^31 elements, each spatial extent plus its padding
// on both sides (the numerators of the window search, the reach of a window; plus a warp: a
// window team's walk steps up to 32 positions past a window's end) and each stride. False for
// every launch after set_64_bit_indices_for_testing(true) (kernels/index_width.h).
bool divisions_fit_32_bits(const PoolGeometry& g);
// Whether a launch may take the kernels over packs of adjacent channels where they fit: false
// after set_pool_packs_for_testing(false).
bool packs_allowed();

// Where the elements of an operand of spatial `size` lie: its offsets (plane, d, h, w) and the
// split of a flat offset into plane and position, in the layout of the call. A thread splits
// its offset once, by the 4 extents: division-free in the Fast kernels (the division sequence
// cost more than the bytes of a bf16 pooling pass: docs/benchmarks.md).
struct OperandLayout {
    PlaneOffsets at;
    Divisor channels, size[3];

    OperandLayout(const SpatialDims& extent, const PoolGeometry& g, MemoryFormat layout)
        : at{extent, g.channels, layout},
          channels(g.channels),
          size{Divisor(extent[0]), Divisor(extent[1]), Divisor(extent[2])} {}

    __device__ std::int64_t operator()(std::int64_t plane, const Position& p) const {
        return at(plane, p[0], p[1], p[2]);
    }

    // PlaneOffsets' arithmetic with its channels-last split of the plane into image and channel
    // done once, by the thread: within a window's walk the layout is a runtime value, so the
    // compiler cannot hoist that 64-bit division out of the taps (about 100 instructions each).
    template <bool Fast>
    __device__ PlaneStart start(std::int64_t plane) const {
        if (at.layout == MemoryFormat::ChannelsLast) {
            std::int64_t channel = plane;
            const std::int64_t image = channels.divide_keep_remainder<Fast>(channel);
            return {image * at.size[0] * at.size[1] * at.size[2] * channels.value + channel, channels.value};
        }
        return {plane * at.size[0] * at.size[1] * at.size[2], 1};
    }
    // The offset of (d, h, w) in index type I: 32-bit in the Fast kernels' window walks, where
    // every offset fits (about 10 instructions a tap fewer than 64-bit multiplies).
    template <typename I>
    __device__ I offset(const PlaneStart& plane, I d, I h, I w) const {
        return static_cast<I>(plane.first) +
               ((d * static_cast<I>(at.size[1]) + h) * static_cast<I>(at.size[2]) + w) * static_cast<I>(plane.step);
    }
    __device__ std::int64_t operator()(const PlaneStart& plane, const Position& p) const {
        return offset<std::int64_t>(plane, p[0], p[1], p[2]);
    }

    // The plane (n * channels + c) and the position of the element at buffer offset `index`.
    template <bool Fast>
    __device__ std::int64_t split(std::int64_t index, Position& p) const {
        std::int64_t channel = 0;
        if (at.layout == MemoryFormat::ChannelsLast) {
            channel = index;
            index = channels.divide_keep_remainder<Fast>(channel);
        }
        for (int s = 2; s >= 0; --s) {
            p[s] = index;
            index = size[s].divide_keep_remainder<Fast>(p[s]);
        }
        return at.layout == MemoryFormat::ChannelsLast ? index * at.channels + channel : index;
    }
};

// The backward gathers give a thread a cell of kCellH x kCellW input positions (of one d; Width
// channels each) and visit each window that holds one of them once for the whole cell: at 3x3
// stride 2, 4 windows a cell instead of 2.25 a position (9 for the cell), and the thread's
// split, plane and window bounds once for 4 positions. The gathers are bound by these
// instructions, not by their bytes (docs/benchmarks.md).
inline constexpr int kCellH = 2, kCellW = 2;

// The grid of cells over an input of spatial `input`.
inline SpatialDims cell_grid(const SpatialDims& input) {
    return {input[0], (input[1] + kCellH - 1) / kCellH, (input[2] + kCellW - 1) / kCellW};
}

// The input and output layouts of a launch, the backward's cell grid and the window strides,
// built on the host so that the divisors' multipliers are computed once per launch.
struct PoolLaunchLayout {
    OperandLayout in, out, cells;
    Divisor stride[3];

    PoolLaunchLayout(const PoolGeometry& g, MemoryFormat layout)
        : in(g.input, g, layout),
          out(g.output, g, layout),
          cells(cell_grid(g.input), g, layout),
          stride{Divisor(g.stride[0]), Divisor(g.stride[1]), Divisor(g.stride[2])} {}
};

// Each thread's work is a few loads and compares, so the kernels hide memory latency by having
// many threads resident: 4 blocks of 256 per SM (half the threads an H100 SM holds) caps a
// kernel at 64 registers. The Fast forward kernels fit that without spilling, packed or not
// (check-igemm-kernels pool: no stack); the 64-bit-division kernels, max pooling's searching
// backward (90 registers) and the adaptive backward would spill, so they keep ptxas's choice;
// the gathers over cells have their own bound (kCellBlocksPerSm).
inline constexpr int kPoolBlocksPerSm = 4;
// The backward gathers' cells hold 4 positions' sums: 32 floats for a pack of 8 16-bit channels,
// which spills at 3 blocks of 256 a SM (80 registers) but not at 2 (128): 2,048 positions a SM
// in flight against the 1,024 of 4 blocks of single positions. Single elements fit 3 blocks.
template <int Width>
inline constexpr int kCellBlocksPerSm = Width > 1 ? 2 : 3;

// A stored value as the window arithmetic's type: float16 by the hardware's conversion (one
// instruction, where convkit/half.h's software decode takes 11), exact either way.
template <typename T>
__device__ inline ComputeType<T> widen(T value) {
    if constexpr (std::is_same_v<T, float16>) {
        return ptx::float16_to_float(value.bits);
    } else {
        return static_cast<ComputeType<T>>(value);
    }
}

// Calls f(o, k) for each output position o along dim s whose window's tap k lands on input i,
// o ascending (k descending): o * stride + k * dilation == i + padding. Every backward gather sums
// a position's windows in this order in each dim, output order as the host's scatter meets them,
// so the gathers from the argmax taps and from x add the same terms in the same order.
template <bool Fast, typename F>
__device__ void for_each_window_holding(const PoolGeometry& g, const PoolLaunchLayout& ops, int s, std::int64_t i,
                                        F&& f) {
    const std::int64_t reach = i + g.padding[s];
    // Undilated, the taps that can hold i are those k <= reach with k = reach (mod stride), every
    // stride-th one down from the largest: at stride 2 half of a 3-wide window's taps are never
    // visited, nor divided for (the gathers' instructions, not their bytes, bound them:
    // docs/benchmarks.md). One loop for both cases, so that f is inlined once per dim.
    std::int64_t k = g.kernel[s] - 1;
    std::int64_t step = 1;
    if (g.dilation[s] == 1 && g.stride[s] > 1) {
        if (k > reach) k = reach;
        std::int64_t off = reach - k;  // down to the residue of reach: reach - k a multiple of stride
        ops.stride[s].divide_keep_remainder<Fast>(off);
        if (off != 0) k -= g.stride[s] - off;
        step = g.stride[s];
    }
    for (; k >= 0; k -= step) {
        std::int64_t numerator = reach - k * g.dilation[s];
        if (numerator < 0) continue;  // dilated: a smaller tap may still reach
        const std::int64_t o = ops.stride[s].divide_keep_remainder<Fast>(numerator);
        if (o >= g.output[s]) break;  // o only grows as k falls
        if (numerator == 0) f(o, k);
    }
}

// The output positions [first, last] along dim s (h or w) whose windows hold one of the input
// positions [begin, end): o * stride + k * dilation == i + padding for a tap k. Empty when
// first > last.
template <bool Fast>
struct WindowRange {
    KernelIndex<Fast> first, last;
};
template <bool Fast>
__device__ WindowRange<Fast> windows_holding_range(const PoolGeometry& g, const PoolLaunchLayout& ops, int s,
                                                   std::int64_t begin, std::int64_t end) {
    // first = ceil((begin + padding - reach) / stride), or 0; last = floor((end - 1 + padding) / stride).
    const std::int64_t low = begin + g.padding[s] - (g.kernel[s] - 1) * g.dilation[s];
    const std::int64_t first = low > 0 ? ops.stride[s].divide<Fast>(low - 1) + 1 : 0;
    const std::int64_t last = ops.stride[s].divide<Fast>(end - 1 + g.padding[s]);
    return {static_cast<KernelIndex<Fast>>(first),
            static_cast<KernelIndex<Fast>>(last < g.output[s] ? last : g.output[s] - 1)};
}

// The tap along dim s of window o on input position i, or -1 where the window misses i.
template <typename I>
__device__ inline I tap_on(const PoolGeometry& g, int s, I o, I i) {
    I k = i + static_cast<I>(g.padding[s]) - o * static_cast<I>(g.stride[s]);
    if (k < 0 || k > static_cast<I>((g.kernel[s] - 1) * g.dilation[s])) return -1;
    if (g.dilation[s] != 1) {  // dilated pooling is rare: the division only there
        const I dilation = static_cast<I>(g.dilation[s]);
        if (k % dilation != 0) return -1;
        k /= dilation;
    }
    return k;
}

// A window of a cell's walk: where it lies and its taps on the cell. row[a] and column[b] are
// its taps along h and w on the cell's position (h0 + a, w0 + b), -1 where the window misses it
// or the position lies past the input.
template <bool Fast>
struct CellWindow {
    using I = KernelIndex<Fast>;
    Position o;
    std::int64_t at;  // the offset of o's lane 0 in the output (dy, the taps)
    I kd, row[kCellH], column[kCellW];
    __device__ bool holds(int a, int b) const { return row[a] >= 0 && column[b] >= 0; }
    // The number of the window's tap (detail::max_pool_tap) on position (a, b), or -1; only for
    // windows whose taps a byte numbers (max pooling's recorded argmax), so in 32 bits.
    __device__ int tap(const PoolGeometry& g, int a, int b) const {
        const int kernel_h = static_cast<int>(g.kernel[1]), kernel_w = static_cast<int>(g.kernel[2]);
        return holds(a, b) ? (static_cast<int>(kd) * kernel_h + static_cast<int>(row[a])) * kernel_w +
                                 static_cast<int>(column[b])
                           : -1;
    }
};

// The backward gathers, over a cell of input positions with Width adjacent channels each (a pack
// in channels-last; Width 1: one element, either layout): acc[a][b], the lanes' sums of cell
// position (a, b), over the windows holding it in output order (d, h, w ascending, as the host's
// scatter meets them and for_each_window_holding gives them to the searching backward), by
// visit(acc, window) once per window that holds a position of the cell. Then dx's lanes = acc at
// each position of the cell inside the input.
template <typename T, int Width, bool Fast, typename Visit>
__device__ void gather_over_cells(const PoolGeometry& g, const PoolLaunchLayout& ops, T* dx, Visit&& visit) {
    using I = KernelIndex<Fast>;
    const std::int64_t total = g.planes() * ops.cells.at.size[0] * ops.cells.at.size[1] * ops.cells.at.size[2] / Width;
    for (std::int64_t pack = global_thread_index(); pack < total; pack += global_thread_count()) {
        Position cell{};
        const std::int64_t plane = ops.cells.split<Fast>(pack * Width, cell);
        const PlaneStart from = ops.in.start<Fast>(plane), to = ops.out.start<Fast>(plane);
        const I h0 = static_cast<I>(cell[1]) * kCellH, w0 = static_cast<I>(cell[2]) * kCellW;
        const I h_end = h0 + kCellH < g.input[1] ? h0 + kCellH : static_cast<I>(g.input[1]);
        const I w_end = w0 + kCellW < g.input[2] ? w0 + kCellW : static_cast<I>(g.input[2]);
        const WindowRange<Fast> rows = windows_holding_range<Fast>(g, ops, 1, h0, h_end);
        const WindowRange<Fast> columns = windows_holding_range<Fast>(g, ops, 2, w0, w_end);
        ComputeType<T> acc[kCellH][kCellW][Width] = {};
        for_each_window_holding<Fast>(g, ops, 0, cell[0], [&](std::int64_t od, std::int64_t kd) {
            CellWindow<Fast> window{};
            window.kd = static_cast<I>(kd);
            for (I oh = rows.first; oh <= rows.last; ++oh) {
                CONVKIT_UNROLL
                for (int a = 0; a < kCellH; ++a) window.row[a] = h0 + a < h_end ? tap_on<I>(g, 1, oh, h0 + a) : -1;
                for (I ow = columns.first; ow <= columns.last; ++ow) {
                    CONVKIT_UNROLL
                    for (int b = 0; b < kCellW; ++b)
                        window.column[b] = w0 + b < w_end ? tap_on<I>(g, 2, ow, w0 + b) : -1;
                    window.o = {od, oh, ow};
                    window.at = ops.out(to, window.o);
                    visit(acc, window);
                }
            }
        });
        CONVKIT_UNROLL
        for (int a = 0; a < kCellH; ++a) {
            CONVKIT_UNROLL
            for (int b = 0; b < kCellW; ++b) {
                if (h0 + a >= h_end || w0 + b >= w_end) continue;
                ElementPack<T, Width> result;
                CONVKIT_UNROLL
                for (int lane = 0; lane < Width; ++lane) result.value[lane] = T(acc[a][b][lane]);
                store_pack<Width>(dx, ops.in(from, {cell[0], h0 + a, w0 + b}) / Width, result);
            }
        }
    }
}

// Cells of the backward gathers (each with all its planes' channels).
inline std::int64_t cells_of(const PoolGeometry& g) {
    const SpatialDims grid = cell_grid(g.input);
    return g.planes() * grid[0] * grid[1] * grid[2];
}

// Runs launch_typed(T{}, std::bool_constant<Fast>{}, operands, stream) for the dtype's storage
// type on the stream's device, Fast where the launch's divisions fit 32 bits.
template <typename Launch>
void on_stream_for_dtype(const PoolGeometry& g, MemoryFormat layout, DType dtype, Stream stream,
                         Launch&& launch_typed) {
    detail::CudaDeviceGuard guard(stream.device);
    const PoolLaunchLayout operands(g, layout);
    const bool fast = divisions_fit_32_bits(g);
    dispatch_float_storage_types("pooling", dtype, [&](auto tag) {
        if (fast) {
            launch_typed(tag, std::true_type{}, operands, detail::to_cuda(stream));
        } else {
            launch_typed(tag, std::false_type{}, operands, detail::to_cuda(stream));
        }
    });
}

// on_stream_for_dtype for the kernels with lanes: launch_typed(T{}, fast, PackWidth<W>{}, operands,
// stream), W = kPackWidth<T> where a thread can take a 16-byte pack of adjacent channels of one
// position (channels-last, the channels a multiple of the pack, so that a pack never straddles
// two positions; `data`, T's buffers, aligned to 16 bytes and `taps` to W bytes), else W = 1.
template <typename Launch, typename... Data>
void on_stream_in_packs(const PoolGeometry& g, MemoryFormat layout, DType dtype, Stream stream,
                        const std::uint8_t* taps, Launch&& launch_typed, const Data*... data) {
    on_stream_for_dtype(g, layout, dtype, stream,
                        [&](auto tag, auto fast, const PoolLaunchLayout& ops, cudaStream_t s) {
                            using T = decltype(tag);
                            constexpr int width = kPackWidth<T>;
                            if (packs_allowed() && layout == MemoryFormat::ChannelsLast && g.channels % width == 0 &&
                                pack_aligned<T, width>(data...) && pack_aligned<std::uint8_t, width>(taps)) {
                                launch_typed(tag, fast, PackWidth<width>{}, ops, s);
                            } else {
                                launch_typed(tag, fast, PackWidth<1>{}, ops, s);
                            }
                        });
}

}  // namespace pool
CONVKIT_KERNELS_END
