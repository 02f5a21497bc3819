// Average and adaptive average pooling's kernels. The forward gives a team of threads each
// output, sharing its window (one thread for windows of fewer than 16 taps; a global average's 49
// taps among 8); the backward gathers: average pooling's over a cell of 2x2 input positions a
// thread (each window that holds one of them visited once for the cell), adaptive pooling's one
// input position a thread. In channels-last, where the channels are a multiple of a 16-byte pack
// and the buffers aligned, each thread (the forward's teams each) takes a pack of adjacent
// channels instead (kernels/element_pack.cuh). 16-bit storage is summed in float. What max and
// mean pooling share is kernels/pool_support.cuh.
#include <atomic>

#include "core/check.h"
#include "kernels/pool_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using namespace pool;

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
void mean_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream, MemoryFormat layout) {
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
// The mean pools' backward kernels, each as Gather::kernel<T, Width, Fast>() for gather_backward.
struct AverageBackward {
    template <typename T, int Width, bool Fast>
    static constexpr auto kernel() {
        return &avg_pool_backward_kernel<T, Width, Fast>;
    }
};
struct AdaptiveBackward {
    template <typename T, int Width, bool Fast>
    static constexpr auto kernel() {
        return &adaptive_avg_pool_backward_kernel<T, Width, Fast>;
    }
};

// dx from dy by Gather's kernel, a thread a pack of adjacent channels (or one element) of each
// of `items` places (the input's cells, or its positions), in packs where they fit.
template <typename Gather>
void gather_backward(const PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream, MemoryFormat layout,
                     std::int64_t items) {
    on_stream_in_packs(
        g, layout, dtype, stream, nullptr,
        [&](auto tag, auto fast, auto width, const PoolLaunchLayout& ops, cudaStream_t s) {
            using T = decltype(tag);
            constexpr int lanes = decltype(width)::value;
            launch<Gather::template kernel<T, lanes, decltype(fast)::value>()>(
                {grid_for(items / lanes), kThreadsPerBlock}, s, g, ops, static_cast<const T*>(dy), static_cast<T*>(dx));
        },
        dy, dx);
}
}  // namespace

void avg_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream, MemoryFormat layout) {
    mean_pool_forward<false>(g, dtype, x, y, stream, layout);
}

void avg_pool_backward(const PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream,
                       MemoryFormat layout) {
    gather_backward<AverageBackward>(g, dtype, dy, dx, stream, layout, cells_of(g));
}

void adaptive_avg_pool_forward(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream,
                               MemoryFormat layout) {
    mean_pool_forward<true>(g, dtype, x, y, stream, layout);
}

void adaptive_avg_pool_backward(const PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream,
                                MemoryFormat layout) {
    gather_backward<AdaptiveBackward>(g, dtype, dy, dx, stream, layout, g.planes() * g.input_spatial());
}

void set_pool_window_team_for_testing(int members) {
    CONVKIT_REQUIRE(members >= 0 && members <= kWarpSize && (members & (members - 1)) == 0,
                    "set_pool_window_team_for_testing", "members must be 0 (by shape) or a power of two up to ",
                    kWarpSize, ", got ", members);
    forced_window_team = members;
}

CONVKIT_KERNELS_END
