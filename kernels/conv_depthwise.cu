// Depthwise convolution (groups == in_channels): forward, backward-data and backward-filter,
// 1-D/2-D/3-D, every stride, dilation and padding mode, float32 and float64. Each output
// channel reads one input channel, so the work per element moved is a few multiply-adds and the
// kernels are bandwidth-bound: each block stages one tile of an operand plane plus its halo in
// shared memory once and reads it from there for every tap (docs/benchmarks.md, "Depthwise").
//
// Forward: a block per (group of planes (n, c_out), output tile of one depth slice, tile_h
// rows, tile_w columns); the input window of the tile and the plane's filter in shared memory;
// each thread computes kOutputsPerThread outputs of one row, blockDim.x apart (so a warp reads
// consecutive shared-memory words and writes consecutive outputs).
// Backward data: the same structure over dx, gathering dy through the flipped filter; with a
// stride, only the taps whose output position is an integer are added. Padding modes other
// than zeros first compute the gradient of the padded input in the workspace (the same kernel,
// run on the padded geometry with zeros padding) and fold it back (conv_direct's fold kernel).
// Backward filter: a block per (c_out, split of the batch x output tiles, group of up to 256
// taps): each tap's lanes sum dy * x over the staged tiles of the split, the lanes are added in
// lane order, and a second kernel adds the splits' partial sums (workspace) in split order, so
// dw is the same bit for bit on every run.
//
// Index math comes from backend_api/geometry.h (padded_source_index), shared with the host
// reference: a staged window position reads the input through the padding mode there.
#include "kernels/conv_depthwise.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "cuda/cuda_runtime.h"
#include "kernels/conv_depthwise_widths.h"
#include "kernels/conv_direct.h"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::ConvGeometry;

// Outputs per thread along W (register blocking) in the forward and backward-data kernels.
constexpr int kOutputsPerThread = 4;
constexpr int kBlockThreads = 256;
constexpr int kMaxPlanesPerBlock = 64;  // a block's z extent
// Backward filter: the (channel, split, tap group) units aimed at, about four waves of what an
// H100 holds at once (132 SMs x 4 blocks of 256 threads at 64 registers), so the last wave's
// tail is short; splits never go below one tile step.
constexpr std::int64_t kFilterUnitsTarget = 2048;
// Backward filter: output positions per staged tile, at most.
constexpr int kFilterTileOutputs = 1024;

// The tiling of one pass. The tiled tensor (y forward, dx backward data, dy backward filter)
// is cut into tiles of tile[d] positions per dim (D, H, W; tile[0] is always 1), and each
// tile's window of the other operand, staged[d] positions per dim, sits in shared memory.
struct Tiling {
    int block[3] = {1, 1, 1};  // threads along W, rows, planes (x, y, z)
    int tile[3] = {1, 1, 1};
    int staged[3] = {1, 1, 1};
    std::int64_t tiles[3] = {1, 1, 1};  // per dim, ceil(size / tile)
    std::int64_t units = 0;             // block-sized pieces of work
    int taps = 1;                       // kernel[0] * kernel[1] * kernel[2]
    int plane_elements = 0;             // shared memory elements per plane
    std::size_t shared_bytes = 0;
    bool fits = false;  // within kMaxDynamicSharedBytes
    // Backward filter only.
    std::int64_t splits = 1, steps_per_split = 1, tap_groups = 1;

    constexpr int staged_count() const { return staged[0] * staged[1] * staged[2]; }
    constexpr int tile_count() const { return tile[0] * tile[1] * tile[2]; }
};

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// floor(a / b) for b > 0 and any a.
__host__ __device__ inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// The smallest power of two >= n, at most cap (a power of two).
int power_of_two_at_least(std::int64_t n, int cap) {
    int p = 1;
    while (p < n && p < cap) p *= 2;
    return p;
}

// Input positions a tile of `tile` outputs reads along one dim (forward, backward filter).
std::int64_t input_window(std::int64_t tile, std::int64_t stride, std::int64_t kernel, std::int64_t dilation) {
    return (tile - 1) * stride + (kernel - 1) * dilation + 1;
}
// Output positions whose taps reach a tile of `tile` inputs along one dim (backward data): from
// ceil((q0 - (k - 1) d) / s) to floor((q0 + tile - 1) / s), at most this many.
std::int64_t output_window(std::int64_t tile, std::int64_t stride, std::int64_t kernel, std::int64_t dilation) {
    return (tile - 1 + (kernel - 1) * dilation) / stride + 1;
}

// Sets t.staged from t.tile: the windows each tile stages, input positions a tile of outputs
// reads (forward, backward filter) or output positions whose taps reach a tile of inputs
// (backward data). Returns their product, as a double (no overflow on absurd geometries).
double stage_windows(Tiling& t, const ConvGeometry& g, bool backward_data) {
    double window = 1;
    for (int d = 0; d < 3; ++d) {
        const std::int64_t w = backward_data ? output_window(t.tile[d], g.stride[d], g.kernel[d], g.dilation[d])
                                             : input_window(t.tile[d], g.stride[d], g.kernel[d], g.dilation[d]);
        t.staged[d] = static_cast<int>(std::min<std::int64_t>(w, 1 << 30));
        window *= static_cast<double>(w);
    }
    return window;
}

// Halves the first of `sizes` above 1, in order, until `bytes()` (which recomputes the tiling
// from them) fits the dynamic shared memory a block gets; sets t.shared_bytes and t.fits, or
// leaves t.fits false when every size is 1 and it still does not fit.
template <typename Bytes>
void shrink_to_fit(Tiling& t, std::initializer_list<int*> sizes, Bytes&& bytes) {
    for (;;) {
        const double b = bytes();
        if (b <= static_cast<double>(kMaxDynamicSharedBytes)) {
            t.shared_bytes = static_cast<std::size_t>(b);
            t.fits = true;
            return;
        }
        int* const* next = std::find_if(sizes.begin(), sizes.end(), [](const int* size) { return *size > 1; });
        if (next == sizes.end()) return;
        **next /= 2;
    }
}

// The forward (over y, staging x) and backward-data (over dx, staging dy) tiling: tiles of one
// depth slice, rows of block[0] * kOutputsPerThread positions, and as many planes per block as
// leave no thread idle on small planes; shrunk (planes, rows, then columns) until the windows
// and filters fit in shared memory.
Tiling spatial_tiling(const ConvGeometry& g, const SpatialDims& tiled, std::int64_t planes, bool backward_data,
                      std::size_t element) {
    Tiling t;
    t.taps = static_cast<int>(g.kernel_spatial());
    t.block[0] = power_of_two_at_least(ceil_div(tiled[2], kOutputsPerThread), kBlockThreads);
    t.block[1] = power_of_two_at_least(tiled[1], kBlockThreads / t.block[0]);
    t.block[2] = power_of_two_at_least(planes, std::min(kMaxPlanesPerBlock, kBlockThreads / (t.block[0] * t.block[1])));
    shrink_to_fit(t, {&t.block[2], &t.block[1], &t.block[0]}, [&] {
        t.tile[1] = t.block[1];
        t.tile[2] = t.block[0] * kOutputsPerThread;
        const double elements = stage_windows(t, g, backward_data) + t.taps;
        t.plane_elements = static_cast<int>(std::min(elements, 1e9));
        return elements * static_cast<double>(element) * t.block[2];
    });
    if (!t.fits) return t;
    for (int d = 0; d < 3; ++d) t.tiles[d] = ceil_div(tiled[d], t.tile[d]);
    t.units = ceil_div(planes, t.block[2]) * t.tiles[0] * t.tiles[1] * t.tiles[2];
    return t;
}

Tiling forward_tiling(const ConvGeometry& g, std::size_t element) {
    return spatial_tiling(g, g.output, g.batch * g.out_channels, false, element);
}

// Padding modes other than zeros run backward data on the padded input with zeros padding.
ConvGeometry zeros_padded(const ConvGeometry& g) {
    if (g.padding_mode == PaddingMode::Zeros) return g;
    ConvGeometry padded = g;
    padded.input = padded_input_dims(g);
    padded.pad_begin = padded.pad_end = SpatialDims{0, 0, 0};
    padded.padding_mode = PaddingMode::Zeros;
    return padded;
}

Tiling backward_data_tiling(const ConvGeometry& zeros, std::size_t element) {
    return spatial_tiling(zeros, zeros.input, zeros.batch * zeros.in_channels, true, element);
}

// Backward filter: tiles of up to kFilterTileOutputs outputs (one depth slice, power-of-two
// rows and columns) with their input window and the lanes' sums in shared memory; the batch x
// tile steps split so that the units fill the GPU.
Tiling filter_tiling(const ConvGeometry& g, std::size_t element) {
    Tiling t;
    t.taps = static_cast<int>(g.kernel_spatial());
    t.block[0] = kBlockThreads;
    t.tile[2] = power_of_two_at_least(g.output[2], kFilterTileOutputs);
    t.tile[1] = power_of_two_at_least(g.output[1], kFilterTileOutputs / t.tile[2]);
    shrink_to_fit(t, {&t.tile[1], &t.tile[2]}, [&] {
        return (t.tile_count() + stage_windows(t, g, false) + kBlockThreads) * static_cast<double>(element);
    });
    if (!t.fits) return t;
    for (int d = 0; d < 3; ++d) t.tiles[d] = ceil_div(g.output[d], t.tile[d]);
    const std::int64_t steps = g.batch * t.tiles[0] * t.tiles[1] * t.tiles[2];
    t.tap_groups = ceil_div(t.taps, kBlockThreads);
    const std::int64_t wanted = std::clamp<std::int64_t>(
        ceil_div(kFilterUnitsTarget, g.out_channels * t.tap_groups), 1, steps);
    t.steps_per_split = ceil_div(steps, wanted);
    t.splits = ceil_div(steps, t.steps_per_split);
    t.units = g.out_channels * t.splits * t.tap_groups;
    return t;
}

// ---- device code ------------------------------------------------------------------------------

// Where a unit of the spatial tiling sits: its group of planes and its tile's first position.
struct TileOrigin {
    std::int64_t group;
    std::int64_t at[3];
};
__device__ inline TileOrigin locate(const Tiling& t, std::int64_t unit) {
    TileOrigin o{};
    for (int d = 2; d >= 0; --d) {
        o.at[d] = unit % t.tiles[d] * t.tile[d];
        unit /= t.tiles[d];
    }
    o.group = unit;
    return o;
}

// The input element that position j of the window of the output tile starting at o0 reads
// along dim s, through the padding mode; -1 for a zero (padding, or past the last position
// any output reads, where a tile overhangs the output).
__device__ inline std::int64_t window_source(const ConvGeometry& g, int s, std::int64_t o0, int j) {
    const std::int64_t position = o0 * g.stride[s] - g.pad_begin[s] + j;
    const std::int64_t last = (g.output[s] - 1) * g.stride[s] - g.pad_begin[s] + (g.kernel[s] - 1) * g.dilation[s];
    return position > last ? -1 : detail::padded_source_index(position, g.input[s], g.padding_mode);
}

// Fills a window of depth x height rows of `width` elements: element (jd, jh, jw) is
// src[row(jd, jh) + column(jw)], or zero where either offset is negative. Threads take
// consecutive columns (coalesced reads, each column's source computed once) and, where a row is
// narrower than the block, several rows at once; no division per element.
template <typename T, typename Row, typename Column>
__device__ void stage_window(const T* src, T* window, int depth, int height, int width, Row&& row, Column&& column,
                             int thread, int threads) {
    const int rows = depth * height;
    const int row_lanes = threads > width ? threads / width : 1;
    const int first_row = thread / width;
    if (first_row >= row_lanes) return;
    for (int jw = thread % width; jw < width; jw += threads) {
        const std::int64_t c = column(jw);
        int jd = first_row / height, jh = first_row % height;
        for (int r = first_row; r < rows; r += row_lanes) {
            const std::int64_t offset = row(jd, jh);
            window[r * width + jw] = offset < 0 || c < 0 ? T(0) : src[offset + c];
            jh += row_lanes;
            if (jh >= height) {
                jd += jh / height;
                jh %= height;
            }
        }
    }
}

// Stages the input window of the output tile at `origin` from one input plane; every position
// is written (zeros where the window reads none).
template <typename T>
__device__ void stage_input_window(const ConvGeometry& g, const Tiling& t, const std::int64_t (&origin)[3],
                                   const T* x_plane, T* window, int thread, int threads) {
    stage_window(
        x_plane, window, t.staged[0], t.staged[1], t.staged[2],
        [&](int jd, int jh) -> std::int64_t {
            const std::int64_t d = window_source(g, 0, origin[0], jd), h = window_source(g, 1, origin[1], jh);
            return d < 0 || h < 0 ? -1 : (d * g.input[1] + h) * g.input[2];
        },
        [&](int jw) { return window_source(g, 2, origin[2], jw); }, thread, threads);
}

// A thread's place in a block of the spatial tiling (x along W, y rows, z planes), and its
// plane's staged window and filter in shared memory.
template <typename T>
struct PlaneSlot {
    int tx, ty, columns;  // columns: threads along W
    int thread, threads;  // within the plane's threads
    T* window;
    T* filter;
};
template <typename T>
__device__ inline PlaneSlot<T> plane_slot(const Tiling& t) {
    PlaneSlot<T> slot{};
    slot.tx = static_cast<int>(threadIdx.x);
    slot.ty = static_cast<int>(threadIdx.y);
    slot.columns = static_cast<int>(blockDim.x);
    slot.thread = slot.ty * slot.columns + slot.tx;
    slot.threads = slot.columns * static_cast<int>(blockDim.y);
    slot.window = dynamic_shared_memory<T>() + threadIdx.z * t.plane_elements;
    slot.filter = slot.window + t.staged_count();
    return slot;
}

// Width: the kernel's width where dispatch_kernel_width has an instantiation for it (the tap
// loop along W unrolled), else 0 (a loop over g.kernel[2]).
template <typename T, int Width>
__global__ void depthwise_forward_kernel(ConvGeometry g, Tiling t, const T* x, const T* w, const T* bias, T* y) {
    const auto [tx, ty, columns, thread, threads, window, filter] = plane_slot<T>(t);
    const std::int64_t planes = g.batch * g.out_channels, multiplier = g.out_channels / g.in_channels;
    const int kd_count = static_cast<int>(g.kernel[0]), kh_count = static_cast<int>(g.kernel[1]),
              kw_count = Width > 0 ? Width : static_cast<int>(g.kernel[2]);
    const int row_step = static_cast<int>(g.dilation[1]) * t.staged[2];
    const int slice_step = static_cast<int>(g.dilation[0]) * t.staged[1] * t.staged[2];
    const int tap_step = static_cast<int>(g.dilation[2]);
    const int column_step = columns * static_cast<int>(g.stride[2]);
    for (std::int64_t unit = blockIdx.x; unit < t.units; unit += gridDim.x) {
        const TileOrigin o = locate(t, unit);
        const std::int64_t plane = o.group * blockDim.z + threadIdx.z;
        const bool active = plane < planes;
        const std::int64_t n = plane / g.out_channels, co = plane % g.out_channels, ci = co / multiplier;
        __syncthreads();  // every thread has finished reading the previous tile
        if (active) {
            stage_input_window(g, t, o.at, x + (n * g.in_channels + ci) * g.input_spatial(), window, thread, threads);
            for (int k = thread; k < t.taps; k += threads) filter[k] = w[co * t.taps + k];
        }
        __syncthreads();
        const std::int64_t oh = o.at[1] + ty;
        if (!active || oh >= g.output[1]) continue;
        T acc[kOutputsPerThread];
        for (T& a : acc) a = bias != nullptr ? bias[co] : T(0);
        const T* taps = filter;
        for (int kd = 0; kd < kd_count; ++kd) {
            const T* row = window + kd * slice_step + ty * static_cast<int>(g.stride[1]) * t.staged[2] +
                           tx * static_cast<int>(g.stride[2]);
            for (int kh = 0; kh < kh_count; ++kh, row += row_step, taps += kw_count) {
                for (int kw = 0; kw < kw_count; ++kw) {
                    const T weight = taps[kw];
                    const T* in = row + kw * tap_step;
                    for (int r = 0; r < kOutputsPerThread; ++r) acc[r] += in[r * column_step] * weight;
                }
            }
        }
        T* out = y + plane * g.output_spatial() + (o.at[0] * g.output[1] + oh) * g.output[2];
        for (int r = 0; r < kOutputsPerThread; ++r) {
            const std::int64_t ow = o.at[2] + tx + r * columns;
            if (ow < g.output[2]) out[ow] = acc[r];
        }
    }
}

// Backward data on a geometry with zeros padding: dx position i is padded position
// q = i + pad_begin, which tap k of output o reads where o * stride + k * dilation == q.
// Width as for the forward kernel.
template <typename T, int Width>
__global__ void depthwise_backward_data_kernel(ConvGeometry g, Tiling t, const T* dy, const T* w, const T* bias,
                                               T* dx) {
    const auto [tx, ty, columns, thread, threads, window, filter] = plane_slot<T>(t);
    const std::int64_t planes = g.batch * g.in_channels, multiplier = g.out_channels / g.in_channels;
    const int kd_count = static_cast<int>(g.kernel[0]), kh_count = static_cast<int>(g.kernel[1]),
              kw_count = Width > 0 ? Width : static_cast<int>(g.kernel[2]);
    const std::int64_t sd = g.stride[0], sh = g.stride[1], sw = g.stride[2];
    for (std::int64_t unit = blockIdx.x; unit < t.units; unit += gridDim.x) {
        const TileOrigin o = locate(t, unit);
        const std::int64_t plane = o.group * blockDim.z + threadIdx.z;
        const std::int64_t n = plane / g.in_channels, ci = plane % g.in_channels;
        const bool active = plane < planes;
        const bool computes = active && o.at[1] + ty < g.input[1];
        // The first output position of the staged dy window per dim: ceil((q0 - (k - 1) d) / s).
        std::int64_t first[3];
        for (int d = 0; d < 3; ++d) {
            const std::int64_t q0 = o.at[d] + g.pad_begin[d];
            first[d] = -floor_div((g.kernel[d] - 1) * g.dilation[d] - q0, g.stride[d]);
        }
        const std::int64_t qd = o.at[0] + g.pad_begin[0], qh = o.at[1] + ty + g.pad_begin[1];
        const std::int64_t qw = o.at[2] + tx + g.pad_begin[2];  // of r = 0; r adds r * columns
        T acc[kOutputsPerThread];
        for (T& a : acc) a = bias != nullptr && active ? bias[ci] : T(0);
        for (std::int64_t j = 0; j < multiplier; ++j) {
            const std::int64_t co = ci * multiplier + j;
            __syncthreads();  // every thread has finished reading the previous window
            if (active) {
                stage_window(
                    dy + (n * g.out_channels + co) * g.output_spatial(), window, t.staged[0], t.staged[1],
                    t.staged[2],
                    [&](int jd, int jh) -> std::int64_t {
                        const std::int64_t od = first[0] + jd, oh = first[1] + jh;
                        const bool inside = od >= 0 && od < g.output[0] && oh >= 0 && oh < g.output[1];
                        return inside ? (od * g.output[1] + oh) * g.output[2] : -1;
                    },
                    [&](int jw) -> std::int64_t {
                        const std::int64_t ow = first[2] + jw;
                        return ow >= 0 && ow < g.output[2] ? ow : -1;
                    },
                    thread, threads);
                for (int k = thread; k < t.taps; k += threads) filter[k] = w[co * t.taps + k];
            }
            __syncthreads();
            if (!computes) continue;
            for (int kd = 0; kd < kd_count; ++kd) {
                const std::int64_t nd = qd - kd * g.dilation[0];
                if (nd % sd != 0) continue;
                for (int kh = 0; kh < kh_count; ++kh) {
                    const std::int64_t nh = qh - kh * g.dilation[1];
                    if (nh % sh != 0) continue;
                    const T* row = window + ((nd / sd - first[0]) * t.staged[1] + (nh / sh - first[1])) * t.staged[2];
                    const T* taps = filter + (kd * kh_count + kh) * kw_count;
                    if (sw == 1) {
                        // Every tap hits: a correlation of the dy row with the flipped filter row.
                        const T* in = row + (qw - first[2]);
                        for (int kw = 0; kw < kw_count; ++kw) {
                            const T weight = taps[kw];
                            const T* at = in - kw * g.dilation[2];
                            for (int r = 0; r < kOutputsPerThread; ++r) acc[r] += at[r * columns] * weight;
                        }
                    } else {
                        // Only the taps whose output position is an integer.
                        for (int kw = 0; kw < kw_count; ++kw) {
                            const T weight = taps[kw];
                            for (int r = 0; r < kOutputsPerThread; ++r) {
                                const std::int64_t nw = qw + r * columns - kw * g.dilation[2];
                                if (nw % sw == 0) acc[r] += row[nw / sw - first[2]] * weight;
                            }
                        }
                    }
                }
            }
        }
        if (!computes) continue;
        T* out = dx + plane * g.input_spatial() + (o.at[0] * g.input[1] + o.at[1] + ty) * g.input[2];
        for (int r = 0; r < kOutputsPerThread; ++r) {
            const std::int64_t iw = o.at[2] + tx + r * columns;
            if (iw < g.input[2]) out[iw] = acc[r];
        }
    }
}

// Backward filter, step 1: partial[(co * splits + split) * taps + tap], the sum of dy * x over
// one split of the batch x output-tile steps, for the taps of one group.
template <typename T>
__global__ void depthwise_filter_partials_kernel(ConvGeometry g, Tiling t, const T* dy, const T* x, T* partial) {
    const int thread = static_cast<int>(threadIdx.x);
    const int tile_count = t.tile_count();
    T* dy_tile = dynamic_shared_memory<T>();
    T* window = dy_tile + tile_count;
    T* lane_sums = window + t.staged_count();
    const std::int64_t multiplier = g.out_channels / g.in_channels;
    const std::int64_t steps = g.batch * t.tiles[0] * t.tiles[1] * t.tiles[2];
    const int kh_count = static_cast<int>(g.kernel[1]), kw_count = static_cast<int>(g.kernel[2]);
    const int row_stride = static_cast<int>(g.stride[1]) * t.staged[2];
    const int column_stride = static_cast<int>(g.stride[2]);
    // A tap's lanes split into row lanes and column lanes (1-D tiles have one row).
    const int row_lanes_max = t.tile[1];
    for (std::int64_t unit = blockIdx.x; unit < t.units; unit += gridDim.x) {
        const std::int64_t group = unit % t.tap_groups;
        const std::int64_t split = unit / t.tap_groups % t.splits;
        const std::int64_t co = unit / t.tap_groups / t.splits, ci = co / multiplier;
        const int first_tap = static_cast<int>(group) * kBlockThreads;
        const int group_taps = t.taps - first_tap < kBlockThreads ? t.taps - first_tap : kBlockThreads;
        const int lanes = kBlockThreads / group_taps;  // threads per tap
        const int row_lanes = lanes < row_lanes_max ? lanes : row_lanes_max, column_lanes = lanes / row_lanes;
        const int tap = first_tap + thread % group_taps, lane = thread / group_taps;
        const bool computes = lane < row_lanes * column_lanes;
        const int row_lane = lane % row_lanes, column_lane = lane / row_lanes;
        const int kw = tap % kw_count, kh = tap / kw_count % kh_count, kd = tap / (kw_count * kh_count);
        const int tap_offset =
            ((kd * static_cast<int>(g.dilation[0])) * t.staged[1] + kh * static_cast<int>(g.dilation[1])) *
                t.staged[2] +
            kw * static_cast<int>(g.dilation[2]);
        T acc = T(0);
        const std::int64_t step_end = std::min(steps, (split + 1) * t.steps_per_split);
        for (std::int64_t step = split * t.steps_per_split; step < step_end; ++step) {
            const TileOrigin o = locate(t, step);  // o.group is the batch index
            const std::int64_t n = o.group;
            __syncthreads();  // every thread has finished reading the previous tile
            stage_window(
                dy + (n * g.out_channels + co) * g.output_spatial(), dy_tile, 1, t.tile[1], t.tile[2],
                [&](int, int jh) -> std::int64_t {
                    const std::int64_t oh = o.at[1] + jh;
                    return oh < g.output[1] ? (o.at[0] * g.output[1] + oh) * g.output[2] : -1;
                },
                [&](int jw) -> std::int64_t { return o.at[2] + jw < g.output[2] ? o.at[2] + jw : -1; }, thread,
                kBlockThreads);
            stage_input_window(g, t, o.at, x + (n * g.in_channels + ci) * g.input_spatial(), window, thread,
                               kBlockThreads);
            __syncthreads();
            if (!computes) continue;
            // Only the tile's positions that are outputs (a tile may overhang the output).
            const std::int64_t rows_left = g.output[1] - o.at[1], columns_left = g.output[2] - o.at[2];
            const int rows = rows_left < t.tile[1] ? static_cast<int>(rows_left) : t.tile[1];
            const int columns = columns_left < t.tile[2] ? static_cast<int>(columns_left) : t.tile[2];
            for (int r = row_lane; r < rows; r += row_lanes) {
                const T* d = dy_tile + r * t.tile[2];
                const T* in = window + tap_offset + r * row_stride;
                for (int c = column_lane; c < columns; c += column_lanes) acc += d[c] * in[c * column_stride];
            }
        }
        // The tap's lanes, added in lane order.
        __syncthreads();
        lane_sums[thread] = acc;
        __syncthreads();
        if (thread < group_taps) {
            T sum = T(0);
            for (int l = 0; l < lanes; ++l) sum += lane_sums[l * group_taps + thread];
            partial[(co * t.splits + split) * t.taps + first_tap + thread] = sum;
        }
    }
}

// Backward filter, step 2: dw[co, tap] = the splits' partial sums added in split order.
template <typename T>
__global__ void depthwise_filter_sum_kernel(std::int64_t weights, std::int64_t splits, std::int64_t taps,
                                            const T* partial, T* dw) {
    for (std::int64_t index = global_thread_index(); index < weights; index += global_thread_count()) {
        const std::int64_t co = index / taps, tap = index % taps;
        T sum = T(0);
        for (std::int64_t s = 0; s < splits; ++s) sum += partial[(co * splits + s) * taps + tap];
        dw[index] = sum;
    }
}

LaunchShape spatial_launch(const Tiling& t) {
    return {grid_stride_blocks(t.units),
            dim3(static_cast<unsigned>(t.block[0]), static_cast<unsigned>(t.block[1]),
                 static_cast<unsigned>(t.block[2])),
            t.shared_bytes};
}

void check_fits(const Tiling& t, const ConvGeometry& g, DType dtype) {
    if (!t.fits) throw NotSupported("cuda.depthwise " + depthwise_unsupported_reason(g, dtype));
}
}  // namespace

std::string depthwise_groups_unsupported_reason(const ConvGeometry& g) {
    if (g.groups == g.in_channels) return {};
    return "runs depthwise convolutions only (groups == input channels), not " + std::to_string(g.groups) +
           (g.groups == 1 ? " group of " : " groups of ") + std::to_string(g.in_channels) + " input channels";
}

std::string depthwise_unsupported_reason(const ConvGeometry& g, DType dtype) {
    if (dtype != DType::Float32 && dtype != DType::Float64) {
        return std::string("runs float32 and float64 only, not ") + dtype_name(dtype);
    }
    if (std::string reason = depthwise_groups_unsupported_reason(g); !reason.empty()) return reason;
    const std::size_t element = dtype_size(dtype);
    if (!forward_tiling(g, element).fits || !backward_data_tiling(zeros_padded(g), element).fits ||
        !filter_tiling(g, element).fits) {
        return "has no tile of a " + detail::spatial_dims_text(g.kernel, g.spatial_rank) + " kernel in " +
               dtype_name(dtype) + " within the " + std::to_string(kMaxDynamicSharedBytes / 1024) +
               " KiB of shared memory a block gets";
    }
    return {};
}

std::size_t depthwise_backward_data_workspace(const ConvGeometry& g, DType dtype) {
    if (g.padding_mode == PaddingMode::Zeros) return 0;
    const SpatialDims padded = padded_input_dims(g);
    return static_cast<std::size_t>(g.batch * g.in_channels * padded[0] * padded[1] * padded[2]) * dtype_size(dtype);
}

std::size_t depthwise_backward_filter_workspace(const ConvGeometry& g, DType dtype) {
    const Tiling t = filter_tiling(g, dtype_size(dtype));
    return static_cast<std::size_t>(g.out_channels * t.splits * t.taps) * dtype_size(dtype);
}

void conv_forward_depthwise(const ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias,
                            void* y, Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    const Tiling t = forward_tiling(g, dtype_size(dtype));
    check_fits(t, g, dtype);
    dispatch_float_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        dispatch_kernel_width(g.kernel[2], [&](auto width) {
            launch<depthwise_forward_kernel<T, decltype(width)::value>>(
                spatial_launch(t), detail::to_cuda(stream), g, t, static_cast<const T*>(x), static_cast<const T*>(w),
                static_cast<const T*>(bias), static_cast<T*>(y));
        });
    });
}

void conv_backward_data_depthwise(const ConvGeometry& g, DType dtype, const void* dy, const void* w,
                                  const void* bias, void* dx, void* workspace, Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    const ConvGeometry zeros = zeros_padded(g);
    const Tiling t = backward_data_tiling(zeros, dtype_size(dtype));
    check_fits(t, g, dtype);
    const bool fold = g.padding_mode != PaddingMode::Zeros;
    dispatch_float_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        dispatch_kernel_width(g.kernel[2], [&](auto width) {
            launch<depthwise_backward_data_kernel<T, decltype(width)::value>>(
                spatial_launch(t), detail::to_cuda(stream), zeros, t, static_cast<const T*>(dy),
                static_cast<const T*>(w), fold ? nullptr : static_cast<const T*>(bias),
                static_cast<T*>(fold ? workspace : dx));
        });
    });
    if (fold) fold_padded_input_gradient(g, dtype, workspace, bias, dx, stream);
}

void conv_backward_filter_depthwise(const ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw,
                                    void* workspace, Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    const Tiling t = filter_tiling(g, dtype_size(dtype));
    check_fits(t, g, dtype);
    const std::int64_t weights = g.out_channels * t.taps;
    dispatch_float_types(dtype, [&](auto tag) {
        using T = decltype(tag);
        const cudaStream_t s = detail::to_cuda(stream);
        T* partial = static_cast<T*>(workspace);
        launch<depthwise_filter_partials_kernel<T>>(
            {grid_stride_blocks(t.units), kBlockThreads, t.shared_bytes}, s, g, t, static_cast<const T*>(dy),
            static_cast<const T*>(x), partial);
        launch<depthwise_filter_sum_kernel<T>>({grid_for(weights), kThreadsPerBlock}, s, weights, t.splits,
                                               std::int64_t{t.taps}, static_cast<const T*>(partial),
                                               static_cast<T*>(dw));
    });
}

CONVKIT_KERNELS_END
