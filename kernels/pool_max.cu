// Max pooling's kernels: the forward one thread per output position, the backward from the
// forward's argmax taps (one byte an output) and the backward that searches each window in x
// again. In channels-last, where the channels are a multiple of a 16-byte pack and the buffers
// aligned, the forward and the backward from the taps give each thread a pack of adjacent
// channels instead (kernels/element_pack.cuh): a 2-byte access per element moves too few bytes
// per warp to approach the copy rate. 16-bit storage is compared in float, by the host's rule
// (detail::max_pool_takes), and y keeps x's stored bits. What max and mean pooling share (layouts,
// the backward gathers over cells, the launch helpers) is kernels/pool_support.cuh.
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "kernels/pool_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using namespace pool;

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

CONVKIT_KERNELS_END
