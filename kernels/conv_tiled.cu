// The tiled implicit-GEMM convolution (kernels/conv_tiled.h). One kernel template runs all three
// passes: a pass is an "operand" struct that says how to read element (m, k) of A and (k, n) of
// B out of the convolution's tensors (zero where a tap falls in the padding) and where result
// (m, n) goes. The GEMM is the classic register-blocked SIMT design:
//
//   - a block of 256 threads computes a 128 x 64 tile of the output, over the reduction in steps
//     of 8: each step's A (128 x 8) and B (8 x 64) tiles are gathered from global memory into
//     registers while the previous step's tiles, in shared memory, are being multiplied (double
//     buffering: one barrier per step);
//   - each thread accumulates 8 x 4 results in registers, rows tm + 16 i and columns 4 tn + j,
//     so a warp's 16 row lanes read 16 consecutive A values from shared memory (no bank
//     conflict) and store 16 consecutive output positions (coalesced in NCDHW);
//   - loads are spread over the threads so that consecutive threads read consecutive addresses:
//     along the rows for the forward and backward-data patches (consecutive output or input
//     positions), along the reduction for dy in backward-filter and for the weights.
//
// Backward-data with a stride runs one such GEMM per phase of the stride (BackwardDataPhaseOperands:
// only the taps that land on the phase, no zero taps gathered).
//
// Per thread and step: 12 shared-memory loads for 32 multiply-adds. Floors and predictions are in
// docs/benchmarks.md ("Tiled implicit GEMM").
#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>

#include "cuda/cuda_runtime.h"
#include "kernels/conv_phase.h"
#include "kernels/conv_tiled.h"
#include "kernels/fast_division.h"
#include "kernels/kernel_support.cuh"
#include "kernels/launch.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::ConvGeometry;

constexpr int kTileM = 128, kTileN = 64, kTileK = 8, kTiledThreads = 256;
constexpr int kRowLanes = 16;                        // threads along the tile's rows
constexpr int kRowsPerThread = kTileM / kRowLanes;   // 8
constexpr int kColsPerThread = 4;                    // kTileN / (kTiledThreads / kRowLanes)
constexpr int kALoads = kTileM * kTileK / kTiledThreads;  // 4
constexpr int kBLoads = kTileK * kTileN / kTiledThreads;  // 2
// Enough blocks for about two per SM of a 132-SM H100; below it the reduction is split.
constexpr std::int64_t kTargetBlocks = 264;
constexpr std::int64_t kMaxSplits = 64;
// Each slice of a split reduction is at least this many steps long.
constexpr std::int64_t kMinStepsPerSplit = 16;
// The slices' scratch stays under this (the split count halves until it fits).
constexpr std::size_t kMaxWorkspaceBytes = std::size_t{256} << 20;

struct Dims {
    int d = 1, h = 1, w = 1;
    __host__ __device__ int size() const { return d * h * w; }
};

// The geometry in 32-bit integers (conv_tiled_unsupported_reason checks that they fit).
struct ConvIndex {
    int batch = 0, in_channels = 0, out_channels = 0, groups = 1;
    int in_group = 0, out_group = 0;  // channels per group
    Dims input, output, kernel, stride, dilation, pad;
    int taps = 0, in_spatial = 0, out_spatial = 0;
};

Dims dims_of(const SpatialDims& s) {
    return {static_cast<int>(s[0]), static_cast<int>(s[1]), static_cast<int>(s[2])};
}

ConvIndex conv_index(const ConvGeometry& g) {
    ConvIndex c;
    c.batch = static_cast<int>(g.batch);
    c.in_channels = static_cast<int>(g.in_channels);
    c.out_channels = static_cast<int>(g.out_channels);
    c.groups = static_cast<int>(g.groups);
    c.in_group = static_cast<int>(g.in_channels_per_group());
    c.out_group = static_cast<int>(g.out_channels_per_group());
    c.input = dims_of(g.input);
    c.output = dims_of(g.output);
    c.kernel = dims_of(g.kernel);
    c.stride = dims_of(g.stride);
    c.dilation = dims_of(g.dilation);
    c.pad = dims_of(g.pad_begin);
    c.taps = c.kernel.size();
    c.in_spatial = c.input.size();
    c.out_spatial = c.output.size();
    return c;
}

// A GEMM per group: rows m, columns n, reduction k.
struct GemmSize {
    int m = 0, n = 0, k = 0;
};

// Splits a flat position over `size` (W fastest) into its coordinates.
struct Position {
    int d, h, w;
};
__device__ inline Position split_position(int index, const Dims& size) {
    const int w = index % size.w;
    index /= size.w;
    return {index / size.h, index % size.h, w};
}

// Whether 0 <= v < size, in one comparison.
__device__ inline bool inside(int v, int size) { return static_cast<unsigned>(v) < static_cast<unsigned>(size); }

// Result (image, spatial position, column n of `group`) into an [N, channels, spatial]
// activation, plus its channel's bias when there is one.
template <typename T>
__device__ inline void store_activation_at(T* out, const T* bias, int channels, int group_channels, int spatial,
                                           int image, int position, int n, int group, T value) {
    const int channel = group * group_channels + n;
    out[(image * channels + channel) * spatial + position] = bias != nullptr ? value + bias[channel] : value;
}
// The same for row m = image x spatial + position.
template <typename T>
__device__ inline void store_activation(T* out, const T* bias, int channels, int group_channels, int spatial, int m,
                                        int n, int group, T value) {
    const int image = m / spatial;
    store_activation_at(out, bias, channels, group_channels, spatial, image, m - image * spatial, n, group, value);
}

// ---- the three passes as operands -------------------------------------------------------------
// Each provides: size(); Row row(m, group) (what a thread precomputes for one row it loads);
// a(row, k); b(k, n, group); store(m, n, group, value); and kAAlongK: whether A's consecutive
// addresses run along k (else along m).

// Forward: A = x-patches [n·P, C/g·taps] (k = channel · taps + tap, the weight's order), B = w^T.
template <typename T>
struct ForwardOperands {
    ConvIndex c;
    const T* x;
    const T* w;
    const T* bias;
    T* y;
    static constexpr bool kAAlongK = false;

    struct Row {
        int base = 0;  // x offset of (image, the group's first channel)
        int d = 0, h = 0, w = 0;  // the window's first input coordinate (may be in the padding)
        bool valid = false;
    };
    __host__ __device__ GemmSize size() const {
        return {c.batch * c.out_spatial, c.out_group, c.in_group * c.taps};
    }
    __device__ Row row(int m, int group) const {
        if (m >= c.batch * c.out_spatial) return {};
        const int image = m / c.out_spatial;
        const Position o = split_position(m - image * c.out_spatial, c.output);
        return {(image * c.in_channels + group * c.in_group) * c.in_spatial, o.d * c.stride.d - c.pad.d,
                o.h * c.stride.h - c.pad.h, o.w * c.stride.w - c.pad.w, true};
    }
    __device__ T a(const Row& r, int k) const {
        if (!r.valid) return T(0);
        const int channel = k / c.taps;
        const Position t = split_position(k - channel * c.taps, c.kernel);
        const int d = r.d + t.d * c.dilation.d, h = r.h + t.h * c.dilation.h, col = r.w + t.w * c.dilation.w;
        if (!inside(d, c.input.d) || !inside(h, c.input.h) || !inside(col, c.input.w)) return T(0);
        return x[r.base + channel * c.in_spatial + (d * c.input.h + h) * c.input.w + col];
    }
    __device__ T b(int k, int n, int group) const {
        if (n >= c.out_group) return T(0);
        return w[(group * c.out_group + n) * (c.in_group * c.taps) + k];
    }
    __device__ void store(int m, int n, int group, T value) const {
        store_activation(y, bias, c.out_channels, c.out_group, c.out_spatial, m, n, group, value);
    }
};

// The tensors of backward-data: dy and w read, dx written plus its channel's bias (may be null).
template <typename T>
struct BackwardDataTensors {
    const T* dy;
    const T* w;
    const T* bias;
    T* dx;
};

// A row of dy-patches, as the backward-data operands precompute it for the rows a thread loads.
struct DyRow {
    int base = 0;             // dy offset of (image, the group's first output channel)
    int d = 0, h = 0, w = 0;  // a position per dim, each operand says which
    bool valid = false;       // false past the last row
};

// Backward-data: A = dy-patches [n·I, K/g·taps] (k = output channel · taps + tap), B[k, n] = the
// weight of output channel k / taps, input channel n, tap k % taps. A tap reads dy where the
// input position it would have read is this row's: d + pad - tap·dilation = o·stride.
template <typename T>
struct BackwardDataOperands {
    ConvIndex c;
    BackwardDataTensors<T> tensors;
    static constexpr bool kAAlongK = false;

    // d, h, w: the input position, counted from the start of the padding.
    using Row = DyRow;
    __host__ __device__ GemmSize size() const {
        return {c.batch * c.in_spatial, c.in_group, c.out_group * c.taps};
    }
    __device__ Row row(int m, int group) const {
        if (m >= c.batch * c.in_spatial) return {};
        const int image = m / c.in_spatial;
        const Position i = split_position(m - image * c.in_spatial, c.input);
        return {(image * c.out_channels + group * c.out_group) * c.out_spatial, i.d + c.pad.d, i.h + c.pad.h,
                i.w + c.pad.w, true};
    }
    // The output position along one dim whose tap t reads padded position q, or -1.
    __device__ static int source(int q, int t, int dilation, int stride, int size) {
        const int numerator = q - t * dilation;
        if (numerator < 0 || numerator % stride != 0) return -1;
        const int o = numerator / stride;
        return o < size ? o : -1;
    }
    __device__ T a(const Row& r, int k) const {
        if (!r.valid) return T(0);
        const int channel = k / c.taps;
        const Position t = split_position(k - channel * c.taps, c.kernel);
        const int d = source(r.d, t.d, c.dilation.d, c.stride.d, c.output.d);
        const int h = source(r.h, t.h, c.dilation.h, c.stride.h, c.output.h);
        const int col = source(r.w, t.w, c.dilation.w, c.stride.w, c.output.w);
        if (d < 0 || h < 0 || col < 0) return T(0);
        return tensors.dy[r.base + channel * c.out_spatial + (d * c.output.h + h) * c.output.w + col];
    }
    __device__ T b(int k, int n, int group) const {
        if (n >= c.in_group) return T(0);
        const int out_channel = k / c.taps;
        return tensors.w[((group * c.out_group + out_channel) * c.in_group + n) * c.taps + (k - out_channel * c.taps)];
    }
    __device__ void store(int m, int n, int group, T value) const {
        store_activation(tensors.dx, tensors.bias, c.in_channels, c.in_group, c.in_spatial, m, n, group, value);
    }
};

// An extent whose flat positions split into coordinates by multiplications (FastDivisor).
struct FastDims {
    Dims size;
    FastDivisor count, h, w;  // dividing by d·h·w, by h, by w
};
FastDims fast_dims(const Dims& size) {
    return {size, FastDivisor(size.size()), FastDivisor(size.h), FastDivisor(size.w)};
}
__device__ inline Position split_position(int index, const FastDims& s) {
    const int rest = s.w.divide(index);
    const int d = s.h.divide(rest);
    return {d, rest - d * s.size.h, index - rest * s.size.w};
}

// Sub-pixel backward-data, one phase: the dx positions i = phase + stride·j (per dim, j < rows)
// and only the taps that reach them. Along one dim those taps are an arithmetic progression,
// tap = first_tap + u·tap_step (u < taps), and tap u of row j reads dy at j + offset - u·offset_step:
// from (i + pad - tap·dilation) / stride, exact for these taps. The launcher computes them once
// per phase on the host (phase_taps), with multipliers for every division left, so a gathered
// element costs no modulo or division by the stride and no division instruction at all: the
// split of k into (channel, tap) is three multiply-shifts, then multiply-adds and three bounds
// checks (the dense gather spends about nine integer divisions an element here).
struct PhaseTaps {
    Dims phase;
    FastDims rows, taps;
    Dims first_tap, tap_step, offset, offset_step;
};

template <typename T>
struct BackwardDataPhaseOperands {
    ConvIndex c;
    PhaseTaps p;
    BackwardDataTensors<T> tensors;
    static constexpr bool kAAlongK = false;

    // d, h, w: the dy position tap u = 0 reads (may be outside dy).
    using Row = DyRow;
    __host__ __device__ GemmSize size() const {
        return {c.batch * p.rows.size.size(), c.in_group, c.out_group * p.taps.size.size()};
    }
    __device__ Row row(int m, int group) const {
        if (m >= c.batch * p.rows.size.size()) return {};
        const int image = p.rows.count.divide(m);
        const Position j = split_position(m - image * p.rows.size.size(), p.rows);
        return {(image * c.out_channels + group * c.out_group) * c.out_spatial, j.d + p.offset.d, j.h + p.offset.h,
                j.w + p.offset.w, true};
    }
    __device__ T a(const Row& r, int k) const {
        if (!r.valid) return T(0);
        const int channel = p.taps.count.divide(k);
        const Position u = split_position(k - channel * p.taps.size.size(), p.taps);
        const int d = r.d - u.d * p.offset_step.d, h = r.h - u.h * p.offset_step.h, col = r.w - u.w * p.offset_step.w;
        if (!inside(d, c.output.d) || !inside(h, c.output.h) || !inside(col, c.output.w)) return T(0);
        return tensors.dy[r.base + channel * c.out_spatial + (d * c.output.h + h) * c.output.w + col];
    }
    __device__ T b(int k, int n, int group) const {
        if (n >= c.in_group) return T(0);
        const int out_channel = p.taps.count.divide(k);
        const Position u = split_position(k - out_channel * p.taps.size.size(), p.taps);
        const int tap =
            ((p.first_tap.d + u.d * p.tap_step.d) * c.kernel.h + p.first_tap.h + u.h * p.tap_step.h) * c.kernel.w +
            p.first_tap.w + u.w * p.tap_step.w;
        return tensors.w[((group * c.out_group + out_channel) * c.in_group + n) * c.taps + tap];
    }
    __device__ void store(int m, int n, int group, T value) const {
        const int image = p.rows.count.divide(m);
        const Position j = split_position(m - image * p.rows.size.size(), p.rows);
        const int position = ((p.phase.d + c.stride.d * j.d) * c.input.h + p.phase.h + c.stride.h * j.h) * c.input.w +
                             p.phase.w + c.stride.w * j.w;
        store_activation_at(tensors.dx, tensors.bias, c.in_channels, c.in_group, c.in_spatial, image, position, n,
                            group, value);
    }
};

// Backward-filter: A = dy^T [K/g, n·P], B = x-patches [n·P, C/g·taps] (n = channel · taps + tap,
// the weight's order).
template <typename T>
struct BackwardFilterOperands {
    ConvIndex c;
    const T* dy;
    const T* x;
    T* dw;
    static constexpr bool kAAlongK = true;

    struct Row {
        int channel = -1;  // the output channel, -1 past the last
    };
    __host__ __device__ GemmSize size() const {
        return {c.out_group, c.in_group * c.taps, c.batch * c.out_spatial};
    }
    __device__ Row row(int m, int group) const { return {m < c.out_group ? group * c.out_group + m : -1}; }
    __device__ T a(const Row& r, int k) const {
        if (r.channel < 0) return T(0);
        const int image = k / c.out_spatial;
        return dy[(image * c.out_channels + r.channel) * c.out_spatial + (k - image * c.out_spatial)];
    }
    __device__ T b(int k, int n, int group) const {
        if (n >= c.in_group * c.taps) return T(0);
        const int image = k / c.out_spatial;
        const Position o = split_position(k - image * c.out_spatial, c.output);
        const int channel = n / c.taps;
        const Position t = split_position(n - channel * c.taps, c.kernel);
        const int d = o.d * c.stride.d - c.pad.d + t.d * c.dilation.d;
        const int h = o.h * c.stride.h - c.pad.h + t.h * c.dilation.h;
        const int col = o.w * c.stride.w - c.pad.w + t.w * c.dilation.w;
        if (!inside(d, c.input.d) || !inside(h, c.input.h) || !inside(col, c.input.w)) return T(0);
        return x[((image * c.in_channels + group * c.in_group + channel) * c.input.d + d) * c.input.h * c.input.w +
                 h * c.input.w + col];
    }
    __device__ void store(int m, int n, int group, T value) const {
        dw[(group * c.out_group + m) * (c.in_group * c.taps) + n] = value;
    }
};

// ---- the kernels ---------------------------------------------------------------------------

// One 128 x 64 tile of one group's GEMM, over the reduction slice `split` (blockIdx.z =
// split · groups + group). With one slice the results go to op.store; with several, to this
// slice's float/double partial sums in `partial` ([slice][group][m][n]).
template <typename T, typename Op>
__global__ void __launch_bounds__(kTiledThreads)
    conv_tiled_kernel(Op op, int k_per_split, T* partial) {
    __shared__ T a_tile[2][kTileK][kTileM];
    __shared__ T b_tile[2][kTileK][kTileN];
    const int tid = static_cast<int>(threadIdx.x);
    const int groups = op.c.groups;
    const int group = static_cast<int>(blockIdx.z) % groups;
    const int split = static_cast<int>(blockIdx.z) / groups;
    const GemmSize size = op.size();
    const int m0 = static_cast<int>(blockIdx.x) * kTileM, n0 = static_cast<int>(blockIdx.y) * kTileN;
    const int k_begin = split * k_per_split;
    const int k_end = size.k < k_begin + k_per_split ? size.k : k_begin + k_per_split;

    // What this thread loads: kALoads elements of each A tile, kBLoads of each B tile.
    int a_m[kALoads], a_k[kALoads];
    typename Op::Row rows[kALoads];
    for (int j = 0; j < kALoads; ++j) {
        if constexpr (Op::kAAlongK) {
            a_k[j] = tid % kTileK;
            a_m[j] = tid / kTileK + j * (kTiledThreads / kTileK);
        } else {
            a_m[j] = tid % kTileM;
            a_k[j] = tid / kTileM + j * (kTiledThreads / kTileM);
        }
        rows[j] = op.row(m0 + a_m[j], group);
    }
    const int b_k = tid % kTileK;
    int b_n[kBLoads];
    for (int j = 0; j < kBLoads; ++j) b_n[j] = tid / kTileK + j * (kTiledThreads / kTileK);

    T a_next[kALoads], b_next[kBLoads];
    const auto fetch = [&](int k0) {
        for (int j = 0; j < kALoads; ++j) {
            const int k = k0 + a_k[j];
            a_next[j] = k < k_end ? op.a(rows[j], k) : T(0);
        }
        for (int j = 0; j < kBLoads; ++j) {
            const int k = k0 + b_k;
            b_next[j] = k < k_end ? op.b(k, n0 + b_n[j], group) : T(0);
        }
    };
    const auto stash = [&](int buffer) {
        for (int j = 0; j < kALoads; ++j) a_tile[buffer][a_k[j]][a_m[j]] = a_next[j];
        for (int j = 0; j < kBLoads; ++j) b_tile[buffer][b_k][b_n[j]] = b_next[j];
    };

    const int tm = tid % kRowLanes, tn = tid / kRowLanes;
    T acc[kRowsPerThread][kColsPerThread];
    for (auto& row : acc) {
        for (T& v : row) v = T(0);
    }
    fetch(k_begin);
    stash(0);
    __syncthreads();
    int buffer = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
        const bool more = k0 + kTileK < k_end;
        if (more) fetch(k0 + kTileK);  // global loads in flight during the products below
        for (int kk = 0; kk < kTileK; ++kk) {
            T a[kRowsPerThread], b[kColsPerThread];
            for (int i = 0; i < kRowsPerThread; ++i) a[i] = a_tile[buffer][kk][tm + kRowLanes * i];
            for (int j = 0; j < kColsPerThread; ++j) b[j] = b_tile[buffer][kk][tn * kColsPerThread + j];
            for (int i = 0; i < kRowsPerThread; ++i) {
                for (int j = 0; j < kColsPerThread; ++j) acc[i][j] += a[i] * b[j];
            }
        }
        // The other buffer was last read before the previous barrier: free to fill.
        if (more) stash(buffer ^ 1);
        __syncthreads();
        buffer ^= 1;
    }

    for (int i = 0; i < kRowsPerThread; ++i) {
        const int m = m0 + tm + kRowLanes * i;
        if (m >= size.m) continue;
        for (int j = 0; j < kColsPerThread; ++j) {
            const int n = n0 + tn * kColsPerThread + j;
            if (n >= size.n) continue;
            if (partial == nullptr) {
                op.store(m, n, group, acc[i][j]);
            } else {
                partial[((static_cast<std::int64_t>(split) * groups + group) * size.m + m) * size.n + n] = acc[i][j];
            }
        }
    }
}

// Adds the slices of each result in slice order and stores the sum.
template <typename T, typename Op>
__global__ void conv_tiled_split_sum_kernel(Op op, int splits, const T* partial) {
    const GemmSize size = op.size();
    const std::int64_t per_group = static_cast<std::int64_t>(size.m) * size.n;
    const std::int64_t total = per_group * op.c.groups;
    for (std::int64_t index = global_thread_index(); index < total; index += global_thread_count()) {
        T sum = T(0);
        for (int split = 0; split < splits; ++split) sum += partial[split * total + index];
        const auto group = static_cast<int>(index / per_group);
        const std::int64_t rest = index - group * per_group;
        op.store(static_cast<int>(rest / size.n), static_cast<int>(rest % size.n), group, sum);
    }
}

// ---- host side -----------------------------------------------------------------------------

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

struct SplitPlan {
    int splits = 1;
    int k_per_split = 0;
};

// One slice when the output tiles alone give enough blocks; else as many slices as bring the
// blocks to kTargetBlocks, each at least kMinStepsPerSplit steps, within the scratch bound.
SplitPlan split_plan(const GemmSize& s, int groups, std::size_t element_bytes) {
    const std::int64_t tiles = ceil_div(s.m, kTileM) * ceil_div(s.n, kTileN) * groups;
    const std::int64_t steps = ceil_div(std::max(s.k, 1), kTileK);
    std::int64_t splits = 1;
    if (tiles < kTargetBlocks) {
        splits = std::clamp<std::int64_t>(std::min(ceil_div(kTargetBlocks, tiles), steps / kMinStepsPerSplit), 1,
                                          kMaxSplits);
    }
    const auto slice_bytes = static_cast<std::size_t>(s.m) * static_cast<std::size_t>(s.n) *
                             static_cast<std::size_t>(groups) * element_bytes;
    while (splits > 1 && static_cast<std::size_t>(splits) * slice_bytes > kMaxWorkspaceBytes) splits /= 2;
    // Whole steps per slice, and no empty slice.
    const std::int64_t steps_per_split = ceil_div(steps, splits);
    splits = ceil_div(steps, steps_per_split);
    return {static_cast<int>(splits), static_cast<int>(steps_per_split * kTileK)};
}

std::size_t element_bytes(DType dtype) { return dtype == DType::Float64 ? sizeof(double) : sizeof(float); }

GemmSize gemm_size(const ConvGeometry& g, TiledConvPass pass) {
    const ConvIndex c = conv_index(g);
    switch (pass) {
        case TiledConvPass::Forward: return ForwardOperands<float>{c, nullptr, nullptr, nullptr, nullptr}.size();
        case TiledConvPass::BackwardData:
            return BackwardDataOperands<float>{c, {}}.size();
        case TiledConvPass::BackwardFilter: return BackwardFilterOperands<float>{c, nullptr, nullptr, nullptr}.size();
    }
    return {};
}

// The phase's positions and taps per dim (kernels/conv_phase.h), with multipliers for the
// divisions the gather has left.
PhaseTaps phase_taps(const ConvIndex& c, const Dims& phase) {
    const PhaseAxis d = phase_axis(phase.d, c.input.d, c.kernel.d, c.stride.d, c.dilation.d, c.pad.d);
    const PhaseAxis h = phase_axis(phase.h, c.input.h, c.kernel.h, c.stride.h, c.dilation.h, c.pad.h);
    const PhaseAxis w = phase_axis(phase.w, c.input.w, c.kernel.w, c.stride.w, c.dilation.w, c.pad.w);
    return {phase,
            fast_dims({d.rows, h.rows, w.rows}),
            fast_dims({d.taps, h.taps, w.taps}),
            {d.first_tap, h.first_tap, w.first_tap},
            {d.tap_step, h.tap_step, w.tap_step},
            {d.offset, h.offset, w.offset},
            {d.offset_step, h.offset_step, w.offset_step}};
}

// Backward-data runs per phase whenever a stride is above 1; at stride 1 every tap reaches every
// position and the dense gather is the GEMM.
bool runs_per_phase(const ConvIndex& c, TiledConvPass pass) {
    return pass == TiledConvPass::BackwardData && c.stride.size() > 1;
}

TiledGemmLaunch planned_launch(const GemmSize& size, int groups, DType dtype) {
    const SplitPlan split = split_plan(size, groups, element_bytes(dtype));
    return {.m = size.m, .n = size.n, .k = size.k, .splits = split.splits, .k_per_split = split.k_per_split};
}

// The GEMM of one planned launch, its slices added by the split-sum kernel when it has several.
template <typename T, typename Op>
void run_gemm(const Op& op, const TiledGemmLaunch& plan, void* workspace, Stream stream) {
    const GemmSize size = op.size();
    if (size.m == 0 || size.n == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    const dim3 grid(static_cast<unsigned>(ceil_div(size.m, kTileM)), static_cast<unsigned>(ceil_div(size.n, kTileN)),
                    static_cast<unsigned>(plan.splits * op.c.groups));
    if (plan.splits == 1) {
        launch<conv_tiled_kernel<T, Op>>({grid, kTiledThreads}, s, op, plan.k_per_split, static_cast<T*>(nullptr));
        return;
    }
    if (workspace == nullptr) throw InvalidArgument("conv_tiled: a split reduction needs its workspace");
    T* partial = static_cast<T*>(workspace);
    launch<conv_tiled_kernel<T, Op>>({grid, kTiledThreads}, s, op, plan.k_per_split, partial);
    const std::int64_t results = static_cast<std::int64_t>(size.m) * size.n * op.c.groups;
    launch<conv_tiled_split_sum_kernel<T, Op>>({grid_stride_blocks(ceil_div(results, kThreadsPerBlock)), kThreadsPerBlock},
                                               s, op, plan.splits, static_cast<const T*>(partial));
}

template <typename F>
void dispatch_tiled_types(DType dtype, F&& f) {
    dispatch_float_types("conv_tiled", dtype, std::forward<F>(f));
}
}  // namespace

std::string conv_tiled_unsupported_reason(const ConvGeometry& g) {
    if (g.padding_mode != PaddingMode::Zeros) {
        return std::string("runs zeros padding only, not ") + padding_mode_name(g.padding_mode);
    }
    constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
    const std::int64_t x = g.batch * g.in_channels * g.input_spatial();
    const std::int64_t y = g.batch * g.out_channels * g.output_spatial();
    const std::int64_t w = g.out_channels * g.in_channels_per_group() * g.kernel_spatial();
    if (std::max({x, y, w}) > kIntMax) {
        return "runs tensors of at most 2^31 - 1 elements (32-bit indices), not " + std::to_string(std::max({x, y, w}));
    }
    for (int s = 0; s < 3; ++s) {
        const auto d = static_cast<std::size_t>(s);
        if (g.input[d] + g.pad_begin[d] + g.pad_end[d] + g.dilation[d] * g.kernel[d] > kIntMax / 2) {
            return "runs spatial extents within 32-bit coordinates only";
        }
    }
    if (g.groups * kMaxSplits > 65535) return "runs at most " + std::to_string(65535 / kMaxSplits) + " groups";
    for (TiledConvPass pass : {TiledConvPass::Forward, TiledConvPass::BackwardData, TiledConvPass::BackwardFilter}) {
        if (ceil_div(gemm_size(g, pass).n, kTileN) > 65535) return "has too many channels per group for the grid's y";
    }
    return {};
}

std::int64_t TiledConvPlan::multiply_adds() const {
    std::int64_t sum = 0;
    for (const TiledGemmLaunch& l : launches) sum += l.m * l.n * l.k;
    return groups * sum;
}

TiledConvPlan conv_tiled_plan(const ConvGeometry& g, TiledConvPass pass, DType dtype) {
    const ConvIndex c = conv_index(g);
    TiledConvPlan plan;
    plan.groups = g.groups;
    if (!runs_per_phase(c, pass)) {
        plan.launches.push_back(planned_launch(gemm_size(g, pass), c.groups, dtype));
    } else {
        for (int d = 0; d < c.stride.d; ++d) {
            for (int h = 0; h < c.stride.h; ++h) {
                for (int w = 0; w < c.stride.w; ++w) {
                    const PhaseTaps p = phase_taps(c, {d, h, w});
                    if (p.rows.size.size() == 0) continue;  // a stride past the input's size
                    TiledGemmLaunch launch =
                        planned_launch(BackwardDataPhaseOperands<float>{c, p, {}}.size(), c.groups, dtype);
                    launch.per_phase = true;
                    launch.phase = {d, h, w};
                    plan.launches.push_back(launch);
                }
            }
        }
    }
    for (const TiledGemmLaunch& l : plan.launches) {
        if (l.splits == 1) continue;
        plan.workspace_bytes =
            std::max(plan.workspace_bytes, static_cast<std::size_t>(l.splits * l.m * l.n) *
                                               static_cast<std::size_t>(g.groups) * element_bytes(dtype));
    }
    return plan;
}

std::size_t conv_tiled_workspace_bytes(const ConvGeometry& g, TiledConvPass pass, DType dtype) {
    return conv_tiled_plan(g, pass, dtype).workspace_bytes;
}

void conv_forward_tiled(const ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias, void* y,
                        void* workspace, Stream stream) {
    const TiledConvPlan plan = conv_tiled_plan(g, TiledConvPass::Forward, dtype);
    dispatch_tiled_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        run_gemm<T>(ForwardOperands<T>{conv_index(g), static_cast<const T*>(x), static_cast<const T*>(w),
                                       static_cast<const T*>(bias), static_cast<T*>(y)},
                    plan.launches.front(), workspace, stream);
    });
}

void conv_backward_data_tiled(const ConvGeometry& g, DType dtype, const void* dy, const void* w, const void* bias,
                              void* dx, void* workspace, Stream stream) {
    const TiledConvPlan plan = conv_tiled_plan(g, TiledConvPass::BackwardData, dtype);
    const ConvIndex c = conv_index(g);
    dispatch_tiled_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        const BackwardDataTensors<T> tensors{static_cast<const T*>(dy), static_cast<const T*>(w),
                                             static_cast<const T*>(bias), static_cast<T*>(dx)};
        for (const TiledGemmLaunch& launch : plan.launches) {
            if (!launch.per_phase) {
                run_gemm<T>(BackwardDataOperands<T>{c, tensors}, launch, workspace, stream);
            } else {
                run_gemm<T>(BackwardDataPhaseOperands<T>{c, phase_taps(c, dims_of(launch.phase)), tensors}, launch,
                            workspace, stream);
            }
        }
    });
}

void conv_backward_filter_tiled(const ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw,
                                void* workspace, Stream stream) {
    const TiledConvPlan plan = conv_tiled_plan(g, TiledConvPass::BackwardFilter, dtype);
    dispatch_tiled_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        run_gemm<T>(BackwardFilterOperands<T>{conv_index(g), static_cast<const T*>(dy), static_cast<const T*>(x),
                                              static_cast<T*>(dw)},
                    plan.launches.front(), workspace, stream);
    });
}

CONVKIT_KERNELS_END
