// Pooling kernels. Forward, max pooling one thread per output element, average and adaptive
// average pooling a team of threads per output sharing its window (one thread for windows of
// fewer than 16 taps; a global average's 49 taps among 8); backward, max pooling's from the
// argmax taps and average pooling's gather over a cell of 2x2 input positions a thread (each
// window that holds one of them visited once for the cell), the others one input element a
// thread; in either memory format and every float dtype (16-bit storage summed and compared in
// float). In channels-last, where the channels are a multiple of a 16-byte pack and the buffers
// aligned, max and average pooling's forward and those two backward gathers give each thread
// (the mean forward's teams each) one pack of adjacent channels instead: the same kernels with
// Width lanes, each tap of the window one 16-byte load (kernels/element_pack.cuh). A 2-byte
// access per element moves too few bytes per warp to approach the copy rate.
//
// Window arithmetic comes from ops/geometry.h, shared with the host reference, so the GPU picks
// the same windows, divisors and argmax (first maximum; the last NaN) as the oracle.
#include "kernels/pool.h"

#include <atomic>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/element_pack.cuh"
#include "kernels/fast_division.h"
#include "kernels/kernel_support.cuh"
#include "kernels/ptx.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
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

// Set by set_pool_64_bit_indices_for_testing: the 64-bit kernels otherwise run only past 2^31
// elements, too many for the emulated device.
std::atomic<bool> force_64_bit_pool_indices{false};
// Cleared by set_pool_packs_for_testing(false): every launch then takes the per-element kernels.
std::atomic<bool> allow_pool_packs{true};

// Whether every index and window offset of a launch stays below 2^31, so that its kernels may
// divide with FastDivisor: each tensor under 2^31 elements, each spatial extent plus its padding
// on both sides (the numerators of the window search, the reach of a window; plus a warp: a
// window team's walk steps up to 32 positions past a window's end) and each stride.
bool divisions_fit_32_bits(const PoolGeometry& g) {
    constexpr std::int64_t limit = std::int64_t{1} << 31;
    const bool tensors_fit = g.planes() * g.input_spatial() < limit && g.planes() * g.output_spatial() < limit;
    bool windows_fit = true;
    for (int s = 0; s < 3; ++s)
        windows_fit = windows_fit && g.input[s] + 2 * g.padding[s] + kWarpSize < limit && g.stride[s] < limit;
    return !force_64_bit_pool_indices && tensors_fit && windows_fit;
}

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
constexpr int kCellH = 2, kCellW = 2;

// The grid of cells over an input of spatial `input`.
SpatialDims cell_grid(const SpatialDims& input) {
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
constexpr int kPoolBlocksPerSm = 4;
// The backward gathers' cells hold 4 positions' sums: 32 floats for a pack of 8 16-bit channels,
// which spills at 3 blocks of 256 a SM (80 registers) but not at 2 (128): 2,048 positions a SM
// in flight against the 1,024 of 4 blocks of single positions. Single elements fit 3 blocks.
template <int Width>
constexpr int kCellBlocksPerSm = Width > 1 ? 2 : 3;

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

// 16-bit storage read as float (float and double as they are), for the window arithmetic.
template <typename T>
struct Widened {
    const T* data;
    __device__ ComputeType<T> operator[](std::int64_t i) const { return widen(data[i]); }
};

// Whether max pooling's forward scans a pack of 16-bit lanes two at a time (a whole number of
// 32-bit words of argmax taps too): set.bf16x2 / set.f16x2 compares (ptx::pair_takes_maximum).
template <typename T, int Width>
inline constexpr bool kScansPairs = is_half_type<T>&& Width % 4 == 0;

template <typename T>
inline constexpr ptx::HalfPair kHalfPair =
    std::is_same_v<T, bfloat16> ? ptx::HalfPair::BFloat16 : ptx::HalfPair::Float16;

// The running maximum of a window's walk over Width lanes of 16-bit storage, two lanes to a
// 32-bit word, and their argmax taps four to a word: each tap one pair compare per word and
// bitwise selects of the words, where lanes one at a time widen, compare and select each lane
// (101 instructions a tap for a bf16 pack, 55 of them the lanes').
template <typename T, int Width>
struct PairedMaximum {
    std::uint32_t value[Width / 2];
    std::uint32_t tap[Width / 4];

    // v (its words) is the window's tap `tap_number`; `first`: the window's first tap.
    __device__ void take(const std::uint32_t (&v)[Width / 2], int tap_number, bool first) {
        std::uint32_t takes[Width / 2];  // per lane: 0xFFFF where v's lane is the new maximum
        const std::uint32_t every_lane_if_first = first ? 0xFFFFFFFFu : 0u;  // or'ed in: no branch
        CONVKIT_UNROLL
        for (int w = 0; w < Width / 2; ++w) {
            takes[w] = ptx::pair_takes_maximum<kHalfPair<T>>(v[w], value[w]) | every_lane_if_first;
            value[w] = (v[w] & takes[w]) | (value[w] & ~takes[w]);
        }
        // A tap word's 4 bytes belong to the lanes of two value words. A lane's mask fills its
        // half of the word, so bytes 1 and 2 of a word's mask are its two lanes' in order.
        const std::uint32_t splat = 0x01010101u * static_cast<std::uint8_t>(tap_number);  // as a lane stores it
        CONVKIT_UNROLL
        for (int t = 0; t < Width / 4; ++t) {
            const std::uint32_t bytes = ((takes[2 * t] >> 8) & 0x0000FFFFu) | ((takes[2 * t + 1] << 8) & 0xFFFF0000u);
            tap[t] = (splat & bytes) | (tap[t] & ~bytes);
        }
    }
};

// Max pooling's forward over Width adjacent channels of one output position (a pack in
// channels-last; Width 1: one element, either layout). One walk of the window for all lanes, each
// tap one load of Width values, each lane scanned by the host's rule (detail::max_pool_takes),
// keeping the maximum's stored bits so that y holds x's element itself (a NaN's payload too).
// 16-bit packs scan two lanes at a time (PairedMaximum), with the same rule and the same bits.
template <typename T, int Width, bool Fast>
__global__ void __launch_bounds__(kThreadsPerBlock, Fast ? kPoolBlocksPerSm : 1)
    max_pool_forward_kernel(PoolGeometry g, PoolLaunchLayout ops, const T* x, T* y, std::uint8_t* taps) {
    const std::int64_t total = g.planes() * g.output_spatial() / Width;
    for (std::int64_t pack = global_thread_index(); pack < total; pack += global_thread_count()) {
        Position o{};
        const PlaneStart from = ops.in.start<Fast>(ops.out.split<Fast>(pack * Width, o));
        // -inf and kNoMaxPoolTap where the window misses the input (dilated). Only the stored
        // bits are kept, widened again for each comparison (exactly), and the taps as the bytes
        // they are stored as (recorded only for windows of at most 255 taps): 8 lanes of widened
        // values or 64-bit taps push the 16-bit kernels past their 64 registers into spills.
        ElementPack<T, Width> best;
        ElementPack<std::uint8_t, Width> best_tap;
        for (int lane = 0; lane < Width; ++lane) {
            best.value[lane] = T(-INFINITY);
            best_tap.value[lane] = kNoMaxPoolTap;
        }
        bool first = true;  // the same for every lane: they share the window's walk
        using I = KernelIndex<Fast>;
        const auto offset_of = [&](std::int64_t d, std::int64_t h, std::int64_t w) {
            return ops.in.offset<I>(from, static_cast<I>(d), static_cast<I>(h), static_cast<I>(w));
        };
        if constexpr (kScansPairs<T, Width>) {
            PairedMaximum<T, Width> maximum;
            memcpy(maximum.value, best.value, sizeof(maximum.value));
            memcpy(maximum.tap, best_tap.value, sizeof(maximum.tap));
            detail::for_each_max_pool_window_tap(
                g, o, [&](std::int64_t d, std::int64_t h, std::int64_t w, std::int64_t tap) {
                    const ElementPack<T, Width> v = load_pack<Width>(x, offset_of(d, h, w) / Width);
                    std::uint32_t words[Width / 2];
                    memcpy(words, v.value, sizeof(words));
                    maximum.take(words, static_cast<int>(tap), first);
                    first = false;
                });
            memcpy(best.value, maximum.value, sizeof(maximum.value));
            memcpy(best_tap.value, maximum.tap, sizeof(maximum.tap));
        } else {
            detail::for_each_max_pool_window_tap(
                g, o, [&](std::int64_t d, std::int64_t h, std::int64_t w, std::int64_t tap) {
                    const ElementPack<T, Width> v = load_pack<Width>(x, offset_of(d, h, w) / Width);
                    for (int lane = 0; lane < Width; ++lane) {
                        if (detail::max_pool_takes(first, widen(v.value[lane]), widen(best.value[lane]))) {
                            best.value[lane] = v.value[lane];
                            best_tap.value[lane] = static_cast<std::uint8_t>(tap);
                        }
                    }
                    first = false;
                });
        }
        store_pack<Width>(y, pack, best);
        if (taps != nullptr) store_pack<Width>(taps, pack, best_tap);
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

// Max pooling's backward from x: a window's dy goes to i when i is its argmax, searched again.
// One element per thread (a pack's lanes would search the window once each), its windows in
// output order (for_each_window_holding in each dim), as the cell gathers sum theirs.
template <typename T, bool Fast>
__global__ void max_pool_backward_kernel(PoolGeometry g, PoolLaunchLayout ops, const T* dy, const T* x, T* dx) {
    const Widened<T> values{x};
    const std::int64_t total = g.planes() * g.input_spatial();
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        Position i{};
        const std::int64_t plane = ops.in.split<Fast>(index, i);
        const PlaneStart to = ops.out.start<Fast>(plane);
        ComputeType<T> acc = 0;
        for_each_window_holding<Fast>(g, ops, 0, i[0], [&](std::int64_t od, std::int64_t) {
            for_each_window_holding<Fast>(g, ops, 1, i[1], [&](std::int64_t oh, std::int64_t) {
                for_each_window_holding<Fast>(g, ops, 2, i[2], [&](std::int64_t ow, std::int64_t) {
                    const Position o{od, oh, ow};
                    if (detail::max_pool_window_argmax(g, values, plane, o, ops.in.at.layout) == index)
                        acc += static_cast<ComputeType<T>>(dy[ops.out(to, o)]);
                });
            });
        });
        dx[index] = T(acc);
    }
}

// Max pooling's backward from the forward's argmax taps: the same windows and order of the sum as
// the searching backward, each window's test a byte compare per lane and position.
template <typename T, int Width, bool Fast>
__global__ void __launch_bounds__(kThreadsPerBlock, Fast ? kCellBlocksPerSm<Width> : 1)
    max_pool_backward_from_taps_kernel(PoolGeometry g, PoolLaunchLayout ops, const T* dy, const std::uint8_t* taps,
                                       T* dx) {
    using C = ComputeType<T>;
    gather_over_cells<T, Width, Fast>(g, ops, dx, [&](auto& acc, const CellWindow<Fast>& window) {
        // dy is read whether or not a lane's maximum is in the cell (its bytes come from L1 or
        // L2: a window's pack is read by the cells it overlaps), so that both loads are in flight
        // together and no branch separates one window's loads from the next one's.
        const std::int64_t pack = window.at / Width;
        const ElementPack<std::uint8_t, Width> recorded = load_pack<Width>(taps, pack);
        const ElementPack<T, Width> share = load_pack<Width>(dy, pack);
        C value[Width];  // widened once, not once per position (ptxas repeats it under each predicate)
        CONVKIT_UNROLL
        for (int lane = 0; lane < Width; ++lane) value[lane] = static_cast<C>(share.value[lane]);
        CONVKIT_UNROLL
        for (int a = 0; a < kCellH; ++a) {
            CONVKIT_UNROLL
            for (int b = 0; b < kCellW; ++b) {
                // Compared in 32 bits (a recorded window has at most 255 taps): in 64 bits each
                // lane's compare is two instructions. A miss (-1) matches no recorded byte.
                const int tap = window.tap(g, a, b);
                CONVKIT_UNROLL
                for (int lane = 0; lane < Width; ++lane)
                    if (recorded.value[lane] == tap) acc[a][b][lane] += value[lane];
            }
        }
    });
}

// A team of threads sharing one output's window in the mean pools' forward: 2^size_log2 members
// (up to a warp), member m summing the window's taps m, m + size, ... in (d, h, w) order, then the
// members' sums combined by a butterfly of shuffles. Each output's sum thus has one fixed order,
// whatever the layout or the pack. A warp holds kWarpSize / size teams, interleaved (member m of
// team j is lane m * teams + j), so that at each step a warp's teams read adjacent outputs:
// adjacent packs in channels-last. Size 1 is one thread an output, for small windows.
struct WindowTeam {
    int size, teams;
    int member;  // this thread's place in its team
    int slot;    // its team's place in the warp

    __device__ explicit WindowTeam(int size_log2) : size(1 << size_log2), teams(kWarpSize >> size_log2) {
        const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
        member = lane >> (5 - size_log2);
        slot = lane & (teams - 1);
    }

    // Every member's sums replaced by the team's (the same bits in each: a + b == b + a).
    // Every lane of the warp must call it.
    template <typename C, int Width>
    __device__ void all_reduce(C (&sum)[Width]) const {
        for (int mask = size / 2; mask > 0; mask /= 2) {
            CONVKIT_UNROLL
            for (int lane = 0; lane < Width; ++lane) sum[lane] += __shfl_xor_sync(0xffffffffu, sum[lane], mask * teams);
        }
    }
};

// A window of the mean pools' forward, [begin, end) along d, h and w, in the kernel's index type
// (32-bit in the Fast kernels, whose every offset fits: 64-bit positions pushed the 16-bit packed
// kernels past their 64 registers into spills).
template <typename I>
struct WindowBox {
    I begin[3], end[3];

    __device__ bool empty() const { return end[0] <= begin[0] || end[1] <= begin[1] || end[2] <= begin[2]; }
    // Moves p `steps` taps on in (d, h, w) order, steps at most a warp (the carries are loops);
    // past the last tap p[0] reaches end[0]. The box must not be empty.
    __device__ void advance(I (&p)[3], int steps) const {
        p[2] += steps;
        while (p[2] >= end[2]) {
            p[2] -= end[2] - begin[2];
            ++p[1];
        }
        while (p[1] >= end[1]) {
            p[1] -= end[1] - begin[1];
            ++p[0];
        }
    }
};

// Loads of a window's taps a thread of the mean pools' forward issues before adding them.
constexpr int kTapsInFlight = 4;

// Forward of average and adaptive pooling over Width adjacent channels of one output position,
// by a WindowTeam of 2^team_log2 threads: the box of spans summed lane by lane, and divided. The
// loop runs over a warp's outputs, so that every lane reaches the team's shuffles.
template <typename T, int Width, bool Adaptive, bool Fast>
__global__ void __launch_bounds__(kThreadsPerBlock, Fast ? kPoolBlocksPerSm : 1)
    mean_pool_forward_kernel(PoolGeometry g, PoolLaunchLayout ops, int team_log2, const T* x, T* y) {
    using C = ComputeType<T>;
    using I = KernelIndex<Fast>;
    const WindowTeam team(team_log2);
    const std::int64_t total = g.planes() * g.output_spatial() / Width;
    const std::int64_t warps = global_thread_count() / kWarpSize;
    for (std::int64_t first = global_thread_index() / kWarpSize * team.teams; first < total;
         first += warps * team.teams) {
        const std::int64_t pack = first + team.slot;
        C sum[Width] = {};
        C divisor = 1;
        if (pack < total) {
            Position o{};
            const PlaneStart from = ops.in.start<Fast>(ops.out.split<Fast>(pack * Width, o));
            WindowBox<I> box;
            std::int64_t size = 1;
            for (int s = 0; s < 3; ++s) {
                const WindowSpan span =
                    Adaptive ? detail::adaptive_pool_span(g, s, o[s]) : detail::average_pool_span(g, s, o[s]);
                box.begin[s] = static_cast<I>(span.begin);
                box.end[s] = static_cast<I>(span.end);
                size *= span.divisor_length;
            }
            divisor = static_cast<C>(size);
            I p[3] = {box.begin[0], box.begin[1], box.begin[2]};
            if (!box.empty()) box.advance(p, team.member);
            // kTapsInFlight taps found, then loaded one after another, then added (in tap order
            // all the same): a walk's carries between loads kept the loaded packs from staying in
            // their registers, so each load waited for the one before it; one load in flight a
            // thread is far from the bytes the copy rate needs. A tap past the window adds +0,
            // which changes no sum (a sum starts at +0, so it is never -0).
            while (!box.empty() && p[0] < box.end[0]) {
                I offset[kTapsInFlight] = {};
                int found = 0;
                CONVKIT_UNROLL
                for (int k = 0; k < kTapsInFlight; ++k) {
                    if (p[0] < box.end[0]) {
                        offset[k] = ops.in.offset<I>(from, p[0], p[1], p[2]);
                        found = k + 1;
                        box.advance(p, team.size);
                    }
                }
                ElementPack<T, Width> v[kTapsInFlight];
                CONVKIT_UNROLL
                for (int k = 0; k < kTapsInFlight; ++k) {
                    if (k < found) {
                        v[k] = load_pack<Width>(x, offset[k] / Width);
                    } else {
                        CONVKIT_UNROLL
                        for (int lane = 0; lane < Width; ++lane) v[k].value[lane] = T(0.0f);
                    }
                }
                CONVKIT_UNROLL
                for (int k = 0; k < kTapsInFlight; ++k) {
                    CONVKIT_UNROLL
                    for (int lane = 0; lane < Width; ++lane) sum[lane] += widen(v[k].value[lane]);
                }
            }
        }
        team.all_reduce(sum);
        if (pack < total && team.member == 0) {
            ElementPack<T, Width> mean;
            for (int lane = 0; lane < Width; ++lane) mean.value[lane] = T(sum[lane] / divisor);
            store_pack<Width>(y, pack, mean);
        }
    }
}

// The divisor of average pooling's window at output position o, as the forward divides by it.
template <typename C>
__device__ C average_divisor(const PoolGeometry& g, const Position& o) {
    return static_cast<C>(detail::average_pool_span(g, 0, o[0]).divisor_length *
                          detail::average_pool_span(g, 1, o[1]).divisor_length *
                          detail::average_pool_span(g, 2, o[2]).divisor_length);
}

template <typename T, int Width, bool Fast>
__global__ void __launch_bounds__(kThreadsPerBlock, Fast ? kCellBlocksPerSm<Width> : 1)
    avg_pool_backward_kernel(PoolGeometry g, PoolLaunchLayout ops, const T* dy, T* dx) {
    using C = ComputeType<T>;
    gather_over_cells<T, Width, Fast>(g, ops, dx, [&](auto& acc, const CellWindow<Fast>& window) {
        const C divisor = average_divisor<C>(g, window.o);
        const ElementPack<T, Width> share = load_pack<Width>(dy, window.at / Width);
        C part[Width];
        CONVKIT_UNROLL
        for (int lane = 0; lane < Width; ++lane) part[lane] = static_cast<C>(share.value[lane]) / divisor;
        CONVKIT_UNROLL
        for (int a = 0; a < kCellH; ++a) {
            CONVKIT_UNROLL
            for (int b = 0; b < kCellW; ++b) {
                if (!window.holds(a, b)) continue;
                CONVKIT_UNROLL
                for (int lane = 0; lane < Width; ++lane) acc[a][b][lane] += part[lane];
            }
        }
    });
}

// Adaptive windows along dim s that hold input i: o in [floor(i * out / in), ceil((i + 1) * out / in)),
// checked against the span itself so the two definitions cannot drift apart.
template <typename F>
__device__ void for_each_adaptive_window_holding(const PoolGeometry& g, int s, std::int64_t i, F&& f) {
    const std::int64_t first = i * g.output[s] / g.input[s];
    const std::int64_t last = ((i + 1) * g.output[s] + g.input[s] - 1) / g.input[s];
    for (std::int64_t o = first > 0 ? first - 1 : 0; o <= last && o < g.output[s]; ++o) {
        const WindowSpan span = detail::adaptive_pool_span(g, s, o);
        if (span.begin <= i && i < span.end) f(o, span.divisor_length);
    }
}

// dx at Width adjacent channels of one input position: the sum over the adaptive windows holding
// it of dy / the window's size, lane by lane in the same order (a window per output position
// along each dim, so a global average's position has one: a read of dy per pack).
template <typename T, int Width, bool Fast>
__global__ void adaptive_avg_pool_backward_kernel(PoolGeometry g, PoolLaunchLayout ops, const T* dy, T* dx) {
    using C = ComputeType<T>;
    const std::int64_t total = g.planes() * g.input_spatial() / Width;
    for (std::int64_t pack = global_thread_index(); pack < total; pack += global_thread_count()) {
        Position i{};
        const std::int64_t plane = ops.in.split<Fast>(pack * Width, i);
        C acc[Width] = {};
        for_each_adaptive_window_holding(g, 0, i[0], [&](std::int64_t od, std::int64_t ld) {
            for_each_adaptive_window_holding(g, 1, i[1], [&](std::int64_t oh, std::int64_t lh) {
                for_each_adaptive_window_holding(g, 2, i[2], [&](std::int64_t ow, std::int64_t lw) {
                    const ElementPack<T, Width> share = load_pack<Width>(dy, ops.out(plane, {od, oh, ow}) / Width);
                    const C size = static_cast<C>(ld * lh * lw);
                    CONVKIT_UNROLL
                    for (int lane = 0; lane < Width; ++lane) acc[lane] += static_cast<C>(share.value[lane]) / size;
                });
            });
        });
        ElementPack<T, Width> sums;
        CONVKIT_UNROLL
        for (int lane = 0; lane < Width; ++lane) sums.value[lane] = T(acc[lane]);
        store_pack<Width>(dx, pack, sums);
    }
}

// Cells of the backward gathers (each with all its planes' channels).
std::int64_t cells_of(const PoolGeometry& g) {
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
                            if (allow_pool_packs && layout == MemoryFormat::ChannelsLast && g.channels % width == 0 &&
                                pack_aligned<T, width>(data...) && pack_aligned<std::uint8_t, width>(taps)) {
                                launch_typed(tag, fast, PackWidth<width>{}, ops, s);
                            } else {
                                launch_typed(tag, fast, PackWidth<1>{}, ops, s);
                            }
                        });
}

// Set by set_pool_window_team_for_testing: the members of every mean pool's window team, or 0
// for the choice by shape.
std::atomic<int> forced_window_team{0};

// A mean pool's window team (as its log2): one thread an output where windows hold fewer than
// 16 taps or the outputs alone would fill an H100 (kTeamOutputLimit); otherwise 4 to 8 taps a
// member, up to a warp. A global average over ResNet's last 7x7
// at batch 32 is 8,192 outputs of 8 bf16 channels: one thread each fills a quarter of an H100's
// SMs, each thread 49 loads in one loop's chain; 8 members give every SM blocks and each member 6
// or 7 loads (docs/benchmarks.md, "Global average pooling by teams").
int window_team_log2(const PoolGeometry& g, bool adaptive) {
    // Outputs past which one thread an output (8 outputs a thread in bf16 packs) keeps every
    // thread slot of a 132-SM H100 (2,048 a SM) walking a window already. Counted in outputs, not
    // threads, so that the team, and so each sum's order, depends on the geometry alone: the
    // packed and per-element kernels give the same bits.
    constexpr std::int64_t kTeamOutputLimit = std::int64_t{132} * 2048 * 8;
    int members = forced_window_team;
    if (members == 0 && g.planes() * g.output_spatial() >= kTeamOutputLimit) members = 1;
    if (members == 0) {
        std::int64_t taps = 1;  // the largest window's, near enough: the choice is coarse
        for (int s = 0; s < 3; ++s) taps *= adaptive ? (g.input[s] + g.output[s] - 1) / g.output[s] : g.kernel[s];
        members = 1;  // then doubled while each member keeps a whole round of loads
        if (taps >= 16)
            while (members < kWarpSize && members * 2 * kTapsInFlight <= taps) members *= 2;
    }
    int log2 = 0;
    while ((1 << log2) < members) ++log2;
    return log2;
}

// Average (Adaptive false) or adaptive average pooling's forward, in packs where they fit.
template <bool Adaptive>
void mean_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream,
                       MemoryFormat layout) {
    const int team_log2 = window_team_log2(g, Adaptive);
    on_stream_in_packs(
        g, layout, dtype, stream, nullptr,
        [&](auto tag, auto fast, auto width, const PoolLaunchLayout& ops, cudaStream_t s) {
            using T = decltype(tag);
            constexpr int lanes = decltype(width)::value;
            launch<mean_pool_forward_kernel<T, lanes, Adaptive, decltype(fast)::value>>(
                {grid_for((g.planes() * g.output_spatial() / lanes) << team_log2), kThreadsPerBlock}, s, g, ops,
                team_log2, static_cast<const T*>(x), static_cast<T*>(y));
        },
        x, y);
}
}  // namespace

void max_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream, MemoryFormat layout,
                      std::uint8_t* argmax_taps) {
    CONVKIT_REQUIRE(argmax_taps == nullptr || max_pool_taps_fit(g), "max_pool_forward", "a window of ",
                    g.kernel[0] * g.kernel[1] * g.kernel[2], " taps is too large to record its argmax in a byte");
    on_stream_in_packs(
        g, layout, dtype, stream, argmax_taps,
        [&](auto tag, auto fast, auto width, const PoolLaunchLayout& ops, cudaStream_t s) {
            using T = decltype(tag);
            constexpr int lanes = decltype(width)::value;
            launch<max_pool_forward_kernel<T, lanes, decltype(fast)::value>>(
                {grid_for(g.planes() * g.output_spatial() / lanes), kThreadsPerBlock}, s, g, ops,
                static_cast<const T*>(x), static_cast<T*>(y), argmax_taps);
        },
        x, y);
}

void max_pool_backward_from_taps(const PoolGeometry& g, DType dtype, const void* dy, const std::uint8_t* argmax_taps,
                                 void* dx, Stream stream, MemoryFormat layout) {
    on_stream_in_packs(
        g, layout, dtype, stream, argmax_taps,
        [&](auto tag, auto fast, auto width, const PoolLaunchLayout& ops, cudaStream_t s) {
            using T = decltype(tag);
            constexpr int lanes = decltype(width)::value;
            launch<max_pool_backward_from_taps_kernel<T, lanes, decltype(fast)::value>>(
                {grid_for(cells_of(g) / lanes), kThreadsPerBlock}, s, g, ops, static_cast<const T*>(dy), argmax_taps,
                static_cast<T*>(dx));
        },
        dy, dx);
}

void max_pool_backward(const PoolGeometry& g, DType dtype, const void* dy, const void* x, void* dx, Stream stream,
                       MemoryFormat layout) {
    on_stream_for_dtype(g, layout, dtype, stream,
                        [&](auto tag, auto fast, const PoolLaunchLayout& ops, cudaStream_t s) {
                            using T = decltype(tag);
                            launch<max_pool_backward_kernel<T, decltype(fast)::value>>(
                                {grid_for(g.planes() * g.input_spatial()), kThreadsPerBlock}, s, g, ops,
                                static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx));
                        });
}

void avg_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream, MemoryFormat layout) {
    mean_pool_forward<false>(g, dtype, x, y, stream, layout);
}

void avg_pool_backward(const PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream,
                       MemoryFormat layout) {
    on_stream_in_packs(
        g, layout, dtype, stream, nullptr,
        [&](auto tag, auto fast, auto width, const PoolLaunchLayout& ops, cudaStream_t s) {
            using T = decltype(tag);
            constexpr int lanes = decltype(width)::value;
            launch<avg_pool_backward_kernel<T, lanes, decltype(fast)::value>>(
                {grid_for(cells_of(g) / lanes), kThreadsPerBlock}, s, g, ops, static_cast<const T*>(dy),
                static_cast<T*>(dx));
        },
        dy, dx);
}

void adaptive_avg_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream,
                               MemoryFormat layout) {
    mean_pool_forward<true>(g, dtype, x, y, stream, layout);
}

void adaptive_avg_pool_backward(const PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream,
                                MemoryFormat layout) {
    on_stream_in_packs(
        g, layout, dtype, stream, nullptr,
        [&](auto tag, auto fast, auto width, const PoolLaunchLayout& ops, cudaStream_t s) {
            using T = decltype(tag);
            constexpr int lanes = decltype(width)::value;
            launch<adaptive_avg_pool_backward_kernel<T, lanes, decltype(fast)::value>>(
                {grid_for(g.planes() * g.input_spatial() / lanes), kThreadsPerBlock}, s, g, ops,
                static_cast<const T*>(dy), static_cast<T*>(dx));
        },
        dy, dx);
}

void set_pool_64_bit_indices_for_testing(bool force) {
    force_64_bit_pool_indices = force;
}

void set_pool_packs_for_testing(bool allow) {
    allow_pool_packs = allow;
}

void set_pool_window_team_for_testing(int members) {
    CONVKIT_REQUIRE(members >= 0 && members <= kWarpSize && (members & (members - 1)) == 0,
                    "set_pool_window_team_for_testing", "members must be 0 (by shape) or a power of two up to ",
                    kWarpSize, ", got ", members);
    forced_window_team = members;
}

CONVKIT_KERNELS_END
