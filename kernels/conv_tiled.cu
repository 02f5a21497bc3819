// The tiled implicit-GEMM convolution (kernels/conv_tiled.h). One kernel template runs all three
// passes: a pass is an "operand" struct (kernels/conv_tiled_operands.cuh) that says how to read
// element (m, k) of A and (k, n) of B out of the convolution's tensors (zero where a tap falls in
// the padding) and where result (m, n) goes. The GEMM is the classic register-blocked SIMT design:
//
//   - a block of 256 threads computes a 128 x 128 tile of the output (128 x 64 for GEMMs of at
//     most 64 columns or too few wide tiles, and for float64), over the reduction in steps of 8: each step's A (128 x
//     8) and B (8 x 128) tiles are gathered from global memory into registers while the previous step's tiles, in
//     shared memory, are being multiplied (double buffering: one barrier per step);
//   - each thread accumulates 8 x 8 results in registers (8 x 4 in the narrow tile): two runs of
//     4 rows, 64 apart, by two runs of 4 columns, so that every k of a step costs it 4 16-byte
//     shared loads for 64 multiply-adds (the 128 x 64 design before 2026-12-05: 12 scalar loads
//     for 32);
//   - loads are spread over the threads so that consecutive threads read consecutive addresses
//     (along the rows for the forward and backward-data patches, along the reduction for dy in
//     backward-filter and for the weights), and so that each thread loads consecutive k of one A
//     row and of one B column: the row's and the column's coordinates are split once per block,
//     each k into channel and tap once per load, by multiply-and-shift (FastDivisor). No kernel
//     here divides but once a thread (before: 33-153 div/rem in a GEMM kernel's PTX, each some
//     20 instructions; FFMA was 19-41% of a step's SASS, now 50-70%).
//
// Backward-data with a stride runs one such GEMM per phase of the stride (BackwardDataPhaseOperands:
// only the taps that land on the phase, no zero taps gathered).
//
// Floors and predictions are in docs/benchmarks.md ("Tiled implicit GEMM").
#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>

#include "cuda/cuda_runtime.h"
#include "kernels/conv_phase.h"
#include "kernels/conv_tiled.h"
#include "kernels/conv_tiled_operands.cuh"
#include "kernels/fast_division.h"
#include "kernels/kernel_support.cuh"
#include "kernels/launch.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::ConvGeometry;
using namespace tiled;

// The block tile: 128 rows x TileN columns (128, or 64 for GEMMs of at most 64 columns, whose
// second half would be idle, for GEMMs whose wide tiles are too few, tile_width, and for
// float64), over the reduction in steps of 8. 256 threads, 16 x 16: thread
// (tm, tn) holds rows tm·4 + 64r + i and columns tn·4 + 64c + j (i, j < 4), runs of 4 so that
// each step reads them from shared memory as 16-byte vectors.
constexpr int kTileM = 128, kTileK = 8, kTiledThreads = 256;
constexpr int kLanes = 16;      // threads along the rows, and along the columns
constexpr int kRun = 4;         // consecutive rows (columns) a thread holds: one vector
constexpr int kRunStride = 64;  // where its next run starts: kLanes runs apart
constexpr int kRowRuns = kTileM / kRunStride;
constexpr int kALoads = kTileM * kTileK / kTiledThreads;  // 4 A elements a thread per step
constexpr int kAThreadsPerRow = kTileK / kALoads;         // 2
constexpr int kWideTileN = 128, kNarrowTileN = 64;        // the two column widths
// Float: two blocks an SM (16 warps to hide the global loads' latency), 128 registers a thread,
// which the 64 accumulators, 16 operands and 8 loads in flight fit (ptxas spills a few values of
// some wide kernels: a handful of L1 loads a step; tiled.ptxas_resources bounds the stack).
// Double (not a speed path): one, so that its 32 accumulators of two registers each do not spill.
template <typename T>
constexpr int kTiledBlocksPerSM = sizeof(T) == sizeof(float) ? 2 : 1;
static_assert(kLanes * kRun == kRunStride);
// Enough blocks for about two per SM of a 132-SM H100; below it the reduction is split.
constexpr std::int64_t kTargetBlocks = 264;
constexpr std::int64_t kMaxSplits = 64;
// Each slice of a split reduction is at least this many steps long.
constexpr std::int64_t kMinStepsPerSplit = 16;
// The slices' scratch stays under this (the split count halves until it fits).
constexpr std::size_t kMaxWorkspaceBytes = std::size_t{256} << 20;
// The largest GEMM extent a launch indexes in int with a tile's worth of headroom.
constexpr int kMaxGemmExtent = std::numeric_limits<int>::max() - (1 << 16);

// The column width a GEMM of n columns runs with: double runs the narrow tile always (64
// double accumulators a thread in the wide one do not fit its 128 registers).
constexpr int tile_columns(std::int64_t n, std::size_t element_bytes) {
    return n <= kNarrowTileN || element_bytes > sizeof(float) ? kNarrowTileN : kWideTileN;
}

FastDims fast_dims(const Dims& size) {
    return {size, FastDivisor(size.size()), FastDivisor(size.h), FastDivisor(size.w)};
}

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
    c.inputs = fast_dims(c.input);
    c.outputs = fast_dims(c.output);
    c.kernel_taps = fast_dims(c.kernel);
    return c;
}

// ---- the kernels ---------------------------------------------------------------------------

// kRun consecutive values of a tile row: one 16-byte shared-memory load for float (two for
// double). A tile row holds one spare vector: with rows kTileM + kRun values apart, the 8 k rows a
// load pass of consecutive threads stores into start on different banks (without it, 128 floats
// apart, all 8 on one bank).
template <typename T>
struct alignas(kRun * sizeof(T)) Vector {
    T v[kRun];
};

// A TileN-column tile of the kernel below: the B elements a thread loads per step, the column
// runs it multiplies.
template <int TileN>
struct TiledColumns {
    static constexpr int kBLoads = TileN * kTileK / kTiledThreads;  // 4 or 2
    static constexpr int kThreadsPerColumn = kTileK / kBLoads;      // 2 or 4
    static constexpr int kColRuns = TileN / kRunStride;             // 2 or 1
    static constexpr int kCols = kColRuns * kRun;                   // 8 or 4 results per thread per row
    static_assert(TileN % kRunStride == 0);
};

// One 128 x TileN tile of one group's GEMM, over the reduction slice `split` (blockIdx.z =
// split · groups + group). With one slice the results go to op.store; with several, to this
// slice's float/double partial sums in `partial` ([slice][group][m][n]).
template <typename T, typename Op, int TileN>
__global__ void __launch_bounds__(kTiledThreads, kTiledBlocksPerSM<T>)
    conv_tiled_kernel(Op op, int k_per_split, T* partial) {
    using Columns = TiledColumns<TileN>;
    __shared__ Vector<T> a_tile[2][kTileK][kTileM / kRun + 1];
    __shared__ Vector<T> b_tile[2][kTileK][TileN / kRun + 1];
    const int tid = static_cast<int>(threadIdx.x);
    const int groups = op.c.groups;
    const int group = static_cast<int>(blockIdx.z) % groups;
    const int split = static_cast<int>(blockIdx.z) / groups;
    const GemmSize size = op.size();
    const int m0 = static_cast<int>(blockIdx.x) * kTileM, n0 = static_cast<int>(blockIdx.y) * TileN;
    const int k_begin = split * k_per_split;
    // k_begin + k_per_split may pass 2^31 in the last slice: compared as a difference.
    const int k_end = size.k - k_begin <= k_per_split ? size.k : k_begin + k_per_split;

    // What this thread loads each step: kALoads consecutive k of one A row, kBLoads of one B
    // column, so that it keeps one row's and one column's coordinates (registers for the
    // accumulators) and works out each k's once. Consecutive threads read consecutive addresses:
    // A along m (threads tid and tid + 128 share a row), or, for backward-filter's dy^T, along k
    // like B (threads 2i and 2i + 1 share a row or column, reading 8 consecutive values).
    const int a_m = Op::kAAlongK ? tid / kAThreadsPerRow : tid % kTileM;
    const int a_k = (Op::kAAlongK ? tid % kAThreadsPerRow : tid / kTileM) * kALoads;
    const typename Op::Row a_row = op.row(m0 + a_m, group);
    const int b_n = tid / Columns::kThreadsPerColumn, b_k = tid % Columns::kThreadsPerColumn * Columns::kBLoads;
    const typename Op::BCol b_column = op.b_col(n0 + b_n, group);

    T a_next[kALoads], b_next[Columns::kBLoads];
    const auto fetch = [&](int k0) {
        for (int j = 0; j < kALoads; ++j) {
            const int k = k0 + a_k + j;
            a_next[j] = k < k_end ? op.a(a_row, op.a_col(k)) : T(0);
        }
        for (int j = 0; j < Columns::kBLoads; ++j) {
            const int k = k0 + b_k + j;
            b_next[j] = k < k_end ? op.b(op.b_row(k, group), b_column) : T(0);
        }
    };
    const auto stash = [&](int buffer) {
        for (int j = 0; j < kALoads; ++j) a_tile[buffer][a_k + j][a_m / kRun].v[a_m % kRun] = a_next[j];
        for (int j = 0; j < Columns::kBLoads; ++j) b_tile[buffer][b_k + j][b_n / kRun].v[b_n % kRun] = b_next[j];
    };

    const int tm = tid % kLanes, tn = tid / kLanes;
    T acc[kRowRuns * kRun][Columns::kCols];
    for (auto& row : acc) {
        for (T& v : row) v = T(0);
    }
    fetch(k_begin);
    stash(0);
    __syncthreads();
    int buffer = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
        const bool more = k_end - k0 > kTileK;
        if (more) fetch(k0 + kTileK);  // global loads in flight during the products below
        CONVKIT_UNROLL
        for (int kk = 0; kk < kTileK; ++kk) {
            Vector<T> a[kRowRuns], b[Columns::kColRuns];
            for (int r = 0; r < kRowRuns; ++r) a[r] = a_tile[buffer][kk][tm + kLanes * r];
            for (int r = 0; r < Columns::kColRuns; ++r) b[r] = b_tile[buffer][kk][tn + kLanes * r];
            for (int i = 0; i < kRowRuns * kRun; ++i) {
                for (int j = 0; j < Columns::kCols; ++j) acc[i][j] += a[i / kRun].v[i % kRun] * b[j / kRun].v[j % kRun];
            }
        }
        // The other buffer was last read before the previous barrier: free to fill.
        if (more) stash(buffer ^ 1);
        __syncthreads();
        buffer ^= 1;
        if (!more) break;  // k0 + kTileK could pass 2^31 after the last step
    }

    for (int i = 0; i < kRowRuns * kRun; ++i) {
        const int m = m0 + tm * kRun + kRunStride * (i / kRun) + i % kRun;
        if (m >= size.m) continue;
        const int row = partial == nullptr ? op.out_row(m, group) : 0;
        for (int j = 0; j < Columns::kCols; ++j) {
            const int n = n0 + tn * kRun + kRunStride * (j / kRun) + j % kRun;
            if (n >= size.n) continue;
            if (partial == nullptr) {
                op.store(row, n, group, acc[i][j]);
            } else {
                partial[((static_cast<std::int64_t>(split) * groups + group) * size.m + m) * size.n + n] = acc[i][j];
            }
        }
    }
}

// Adds the slices of each result in slice order and stores the sum. Results are fewer than 2^31
// (conv_tiled_unsupported_reason), so an index splits into group, row and column by the
// launcher's multipliers: per_group = m · n results, columns = n.
template <typename T, typename Op>
__global__ void conv_tiled_split_sum_kernel(Op op, int splits, const T* partial, FastDivisor per_group,
                                            FastDivisor columns) {
    const auto total = static_cast<int>(std::int64_t{per_group.divisor()} * op.c.groups);
    for (std::int64_t at = global_thread_index(); at < total; at += global_thread_count()) {
        const auto index = static_cast<int>(at);
        T sum = T(0);
        for (int split = 0; split < splits; ++split) sum += partial[static_cast<std::int64_t>(split) * total + index];
        const int group = per_group.divide(index);
        const int rest = index - group * per_group.divisor();
        const int m = columns.divide(rest);
        op.store(op.out_row(m, group), rest - m * columns.divisor(), group, sum);
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
// The column width a GEMM runs with: tile_columns', except that a wide tile too few to keep the
// GPU busy even split kMaxSplits ways (a small filter gradient over a long reduction: one 128 x
// 128 tile, 64 blocks on 132 SMs) gives way to the narrow one, which doubles the blocks.
int tile_width(const GemmSize& s, int groups, std::size_t element_bytes) {
    const int width = tile_columns(s.n, element_bytes);
    const std::int64_t wide_tiles = ceil_div(s.m, kTileM) * ceil_div(s.n, kWideTileN) * groups;
    return width == kWideTileN && wide_tiles * kMaxSplits < kTargetBlocks ? kNarrowTileN : width;
}

SplitPlan split_plan(const GemmSize& s, int groups, std::size_t element_bytes) {
    const std::int64_t tiles = ceil_div(s.m, kTileM) * ceil_div(s.n, tile_width(s, groups, element_bytes)) * groups;
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

// A 1x1 kernel at stride 1 without padding, in float32: each pass's operands are the tensors
// themselves (the operands' Pointwise form; float64 keeps the general gather, one instantiation
// fewer per pass for a dtype that is not a speed path).
bool runs_pointwise(const ConvIndex& c, DType dtype) {
    const auto unit = [](const Dims& d) { return d.d == 1 && d.h == 1 && d.w == 1; };
    const auto none = [](const Dims& d) { return d.d == 0 && d.h == 0 && d.w == 0; };
    const bool same_positions = c.input.d == c.output.d && c.input.h == c.output.h && c.input.w == c.output.w;
    return dtype == DType::Float32 && c.taps == 1 && unit(c.stride) && none(c.pad) && same_positions;
}

// Backward-data runs per phase whenever a stride is above 1; at stride 1 every tap reaches every
// position and the dense gather is the GEMM.
bool runs_per_phase(const ConvIndex& c, TiledConvPass pass) {
    return pass == TiledConvPass::BackwardData && c.stride.size() > 1;
}

// The elements of the whole tiles a GEMM runs (its rows and columns rounded up to the tile).
std::int64_t tile_area(const GemmSize& size, int groups, DType dtype) {
    const int width = tile_width(size, groups, element_bytes(dtype));
    return ceil_div(size.m, kTileM) * kTileM * ceil_div(size.n, width) * width;
}

TiledGemmLaunch planned_launch(const GemmSize& size, int groups, DType dtype) {
    const SplitPlan split = split_plan(size, groups, element_bytes(dtype));
    return {.m = size.m,
            .n = size.n,
            .k = size.k,
            .tile_n = tile_width(size, groups, element_bytes(dtype)),
            .splits = split.splits,
            .k_per_split = split.k_per_split};
}

// The GEMM of one planned launch at its column width, its slices added by the split-sum kernel
// when it has several.
template <typename T, typename Op, int TileN>
void run_gemm_tile(const Op& op, const TiledGemmLaunch& plan, void* workspace, cudaStream_t s) {
    const GemmSize size = op.size();
    const dim3 grid(static_cast<unsigned>(ceil_div(size.m, kTileM)), static_cast<unsigned>(ceil_div(size.n, TileN)),
                    static_cast<unsigned>(plan.splits * op.c.groups));
    if (plan.splits == 1) {
        launch<conv_tiled_kernel<T, Op, TileN>>({grid, kTiledThreads}, s, op, plan.k_per_split,
                                                static_cast<T*>(nullptr));
        return;
    }
    if (workspace == nullptr) throw InvalidArgument("conv_tiled: a split reduction needs its workspace");
    T* partial = static_cast<T*>(workspace);
    launch<conv_tiled_kernel<T, Op, TileN>>({grid, kTiledThreads}, s, op, plan.k_per_split, partial);
    const std::int64_t results = static_cast<std::int64_t>(size.m) * size.n * op.c.groups;
    launch<conv_tiled_split_sum_kernel<T, Op>>(
        {grid_stride_blocks(ceil_div(results, kThreadsPerBlock)), kThreadsPerBlock}, s, op, plan.splits,
        static_cast<const T*>(partial), FastDivisor(size.m * size.n), FastDivisor(size.n));
}

template <typename T, typename Op>
void run_gemm(const Op& op, const TiledGemmLaunch& plan, void* workspace, Stream stream) {
    const GemmSize size = op.size();
    if (size.m == 0 || size.n == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    if constexpr (tile_columns(kWideTileN, sizeof(T)) == kWideTileN) {
        if (plan.tile_n == kWideTileN) return run_gemm_tile<T, Op, kWideTileN>(op, plan, workspace, s);
    }
    run_gemm_tile<T, Op, kNarrowTileN>(op, plan, workspace, s);
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
        const GemmSize size = gemm_size(g, pass);
        if (ceil_div(size.n, kNarrowTileN) > 65535) return "has too many channels per group for the grid's y";
        // A block's rows and columns (m0 + 127) and a step's k (k0 + 7) stay within int.
        if (std::max({size.m, size.n, size.k}) > kMaxGemmExtent) {
            return "runs GEMMs of at most 2^31 - 2^16 rows, columns and reduction, not " +
                   std::to_string(std::max({size.m, size.n, size.k}));
        }
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
    if (pass == TiledConvPass::BackwardFilter) {
        const GemmSize normal = gemm_size(g, pass);
        const GemmSize transposed = BackwardFilterTransposedOperands<float>{c, nullptr, nullptr, nullptr}.size();
        const bool transpose = tile_area(transposed, c.groups, dtype) < tile_area(normal, c.groups, dtype);
        TiledGemmLaunch launch = planned_launch(transpose ? transposed : normal, c.groups, dtype);
        launch.transposed = transpose;
        plan.launches.push_back(launch);
    } else if (!runs_per_phase(c, pass)) {
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
    if (runs_pointwise(c, dtype)) {
        for (TiledGemmLaunch& l : plan.launches) l.pointwise = true;
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
        const ConvIndex c = conv_index(g);
        const auto* x_elements = static_cast<const T*>(x);
        const auto* w_elements = static_cast<const T*>(w);
        const auto* bias_elements = static_cast<const T*>(bias);
        auto* y_elements = static_cast<T*>(y);
        const TiledGemmLaunch& launch = plan.launches.front();
        if constexpr (std::is_same_v<T, float>) {
            if (launch.pointwise) {
                return run_gemm<T>(ForwardOperands<T, true>{c, x_elements, w_elements, bias_elements, y_elements},
                                   launch, workspace, stream);
            }
        }
        run_gemm<T>(ForwardOperands<T>{c, x_elements, w_elements, bias_elements, y_elements}, launch, workspace,
                    stream);
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
            if constexpr (std::is_same_v<T, float>) {
                if (launch.pointwise) {
                    run_gemm<T>(BackwardDataOperands<T, true>{c, tensors}, launch, workspace, stream);
                    continue;
                }
            }
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
        const TiledGemmLaunch& launch = plan.launches.front();
        const ConvIndex c = conv_index(g);
        const auto* dy_elements = static_cast<const T*>(dy);
        const auto* x_elements = static_cast<const T*>(x);
        auto* dw_elements = static_cast<T*>(dw);
        // The orientation and the gather's form (pointwise: float32 only) as the plan chose them.
        const auto run = [&](auto pointwise) {
            constexpr bool kPointwise = decltype(pointwise)::value;
            if (launch.transposed) {
                run_gemm<T>(BackwardFilterTransposedOperands<T, kPointwise>{c, dy_elements, x_elements, dw_elements},
                            launch, workspace, stream);
            } else {
                run_gemm<T>(BackwardFilterOperands<T, kPointwise>{c, dy_elements, x_elements, dw_elements}, launch,
                            workspace, stream);
            }
        };
        if constexpr (std::is_same_v<T, float>) {
            if (launch.pointwise) return run(std::true_type{});
        }
        run(std::false_type{});
    });
}

CONVKIT_KERNELS_END
