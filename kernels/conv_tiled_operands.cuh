#pragma once
// The operands of the tiled implicit-GEMM convolution (kernels/conv_tiled.cu): how each pass reads
// element (m, k) of A and (k, n) of B out of the convolution's tensors and where result (m, n)
// goes, and the geometry in 32-bit integers they index with. Private to conv_tiled.cu, which holds
// the GEMM kernel that runs them, the plan and the launchers.
#include <type_traits>

#include "kernels/fast_division.h"
#include "kernels/kernels_namespace.h"
#include "kernels/launch.cuh"

CONVKIT_KERNELS_BEGIN
namespace tiled {

struct Dims {
    int d = 1, h = 1, w = 1;
    __host__ __device__ int size() const { return d * h * w; }
};

// An extent whose flat positions split into coordinates by multiplications (FastDivisor), so no
// kernel here runs an integer division.
struct FastDims {
    Dims size;
    FastDivisor count, h, w;  // dividing by d·h·w, by h, by w
};

// Splits a flat position (W fastest) into its coordinates.
struct Position {
    int d, h, w;
};
__device__ inline Position split_position(int index, const FastDims& s) {
    const int rest = s.w.divide(index);
    const int d = s.h.divide(rest);
    return {d, rest - d * s.size.h, index - rest * s.size.w};
}

// The geometry in 32-bit integers (conv_tiled_unsupported_reason checks that they fit).
struct ConvIndex {
    int batch = 0, in_channels = 0, out_channels = 0, groups = 1;
    int in_group = 0, out_group = 0;  // channels per group
    Dims input, output, kernel, stride, dilation, pad;
    int taps = 0, in_spatial = 0, out_spatial = 0;
    FastDims inputs, outputs, kernel_taps;  // input, output and kernel, for splitting flat indices
};

// A GEMM per group: rows m, columns n, reduction k.
struct GemmSize {
    int m = 0, n = 0, k = 0;
};

// Whether 0 <= v < size, in one comparison.
__device__ inline bool inside(int v, int size) {
    return static_cast<unsigned>(v) < static_cast<unsigned>(size);
}

// Where the results of GEMM row m go in an [N, channels, spatial] activation: the offset of
// (image, channel 0, position), or -1 past the last row.
__device__ inline int activation_row(int m, int rows, const FastDivisor& spatial, int channels) {
    if (m >= rows) return -1;
    const int image = spatial.divide(m);
    return image * channels * spatial.divisor() + (m - image * spatial.divisor());
}

// Result `value` at column n of `group` in that row, plus its channel's bias when there is one.
template <typename T>
__device__ inline void store_activation(T* out, const T* bias, int row, int spatial, int group_channels, int n,
                                        int group, T value) {
    const int channel = group * group_channels + n;
    out[row + channel * spatial] = bias != nullptr ? value + bias[channel] : value;
}

// A pointwise row (a 1x1 kernel at stride 1 without padding: input and output positions are the
// same): the offset of (image, first_channel, position) in an [N, channels, spatial] activation for
// row m = image · spatial + position, -1 past the last row.
__device__ inline int pointwise_row(int m, int rows, const FastDivisor& spatial, int channels, int first_channel) {
    const int row = activation_row(m, rows, spatial, channels);
    return row < 0 ? -1 : row + first_channel * spatial.divisor();
}

// ---- the three passes as operands -------------------------------------------------------------
// The GEMM's element (m, k) of A and (k, n) of B are gathered from the tensors (zero where a tap
// falls in the padding); what depends on one index is worked out once for it (a thread loads
// four consecutive k of one A row and two or four of one B column each step):
//   Row row(m, group)   an A row, once per thread;
//   ACol a_col(k)       A's reduction index: its channel and tap, by multiply-and-shift;
//   T a(Row, ACol)      the element: additions and bounds checks only;
//   BCol b_col(n, group), BRow b_row(k, group), T b(BRow, BCol): the same for B;
//   int out_row(m, group), store(row, n, group, value): where result (m, n) goes;
// and kAAlongK: whether A's consecutive addresses run along k (else along m).

// A tap's reach along each dim and the offset of its channel: what one reduction index of a
// patch gathers.
struct TapColumn {
    int offset = 0;  // channel x the spatial size of the tensor gathered
    int d = 0, h = 0, w = 0;
};

// Patch index k = channel · taps + tap, split by multiply-and-shift: the channel's offset in a
// tensor of `spatial` positions a channel, and the tap's dilated reach per dim.
__device__ inline TapColumn dilated_tap(const ConvIndex& c, int k, int spatial) {
    const int channel = c.kernel_taps.count.divide(k);
    const Position t = split_position(k - channel * c.taps, c.kernel_taps);
    return {channel * spatial, t.d * c.dilation.d, t.h * c.dilation.h, t.w * c.dilation.w};
}

// A patch row: the offset of (image, the group's first channel) and a position per dim (each
// operand says which). A row past the last has positions no tap brings into range (extents are
// below 2^30, conv_tiled_unsupported_reason), so every element of it reads as zero with no
// separate flag to keep in a register.
struct PatchRow {
    static constexpr int kOutside = -(1 << 30);
    int base = 0;
    int d = kOutside, h = kOutside, w = kOutside;
};

// Forward: A = x-patches [n·P, C/g·taps] (k = channel · taps + tap, the weight's order), B = w^T.
// Pointwise (a 1x1 kernel at stride 1 without padding, conv_tiled_plan's `pointwise`): A is x
// itself, [n·S, C/g], its rows one offset each and every element in range.
template <typename T, bool Pointwise = false>
struct ForwardOperands {
    ConvIndex c;
    const T* x;
    const T* w;
    const T* bias;
    T* y;
    static constexpr bool kAAlongK = false;

    // General: d, h, w the window's first input coordinate (may be in the padding). Pointwise: x's
    // offset of (image, the group's first channel, position), -1 past the last row.
    using Row = std::conditional_t<Pointwise, int, PatchRow>;
    using ACol = std::conditional_t<Pointwise, int, TapColumn>;  // pointwise: the channel's offset
    using BRow = int;                                            // k
    using BCol = int;  // w's offset of the output channel's row, -1 past the last
    __host__ __device__ GemmSize size() const { return {c.batch * c.out_spatial, c.out_group, c.in_group * c.taps}; }
    __device__ Row row(int m, int group) const {
        if constexpr (Pointwise) {
            return pointwise_row(m, c.batch * c.out_spatial, c.outputs.count, c.in_channels, group * c.in_group);
        } else {
            if (m >= c.batch * c.out_spatial) return {};
            const int image = c.outputs.count.divide(m);
            const Position o = split_position(m - image * c.out_spatial, c.outputs);
            return {(image * c.in_channels + group * c.in_group) * c.in_spatial, o.d * c.stride.d - c.pad.d,
                    o.h * c.stride.h - c.pad.h, o.w * c.stride.w - c.pad.w};
        }
    }
    __device__ ACol a_col(int k) const {
        if constexpr (Pointwise) {
            return k * c.in_spatial;
        } else {
            return dilated_tap(c, k, c.in_spatial);
        }
    }
    __device__ T a(const Row& r, const ACol& t) const {
        if constexpr (Pointwise) {
            return r < 0 ? T(0) : x[r + t];
        } else {
            const int d = r.d + t.d, h = r.h + t.h, col = r.w + t.w;
            if (!inside(d, c.input.d) || !inside(h, c.input.h) || !inside(col, c.input.w)) return T(0);
            return x[r.base + t.offset + (d * c.input.h + h) * c.input.w + col];
        }
    }
    __device__ BCol b_col(int n, int group) const {
        return n < c.out_group ? (group * c.out_group + n) * (c.in_group * c.taps) : -1;
    }
    __device__ BRow b_row(int k, int /*group*/) const { return k; }
    __device__ T b(BRow k, BCol row) const { return row < 0 ? T(0) : w[row + k]; }
    __device__ int out_row(int m, int /*group*/) const {
        return activation_row(m, c.batch * c.out_spatial, c.outputs.count, c.out_channels);
    }
    __device__ void store(int row, int n, int group, T value) const {
        store_activation(y, bias, row, c.out_spatial, c.out_group, n, group, value);
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

// What both backward-data operands share: A's element, dy at a row's position less a tap's
// reach (zero outside dy); B[k, n] = the weight of output channel k / taps, input channel n, the
// tap of k (BCol n · taps, BRow the rest of the offset); and the store into dx.
template <typename T>
struct BackwardDataStore {
    __device__ static T a(const ConvIndex& c, const BackwardDataTensors<T>& t, const PatchRow& r,
                          const TapColumn& reach) {
        const int d = r.d - reach.d, h = r.h - reach.h, col = r.w - reach.w;
        if (!inside(d, c.output.d) || !inside(h, c.output.h) || !inside(col, c.output.w)) return T(0);
        return t.dy[r.base + reach.offset + (d * c.output.h + h) * c.output.w + col];
    }
    __device__ static int b_col(const ConvIndex& c, int n) { return n < c.in_group ? n * c.taps : -1; }
    __device__ static int b_row(const ConvIndex& c, int out_channel, int tap, int group) {
        return (group * c.out_group + out_channel) * c.in_group * c.taps + tap;
    }
    __device__ static T b(const BackwardDataTensors<T>& t, int row, int col) { return col < 0 ? T(0) : t.w[row + col]; }
    __device__ static void store(const ConvIndex& c, const BackwardDataTensors<T>& t, int row, int n, int group,
                                 T value) {
        store_activation(t.dx, t.bias, row, c.in_spatial, c.in_group, n, group, value);
    }
};

// Backward-data at stride 1 (a stride runs per phase, below): A = dy-patches [n·I, K/g·taps]
// (k = output channel · taps + tap). Tap t of input position i reads dy at i + pad - t·dilation.
// Pointwise (1x1, no padding): A is dy itself, [n·S, K/g].
template <typename T, bool Pointwise = false>
struct BackwardDataOperands {
    ConvIndex c;
    BackwardDataTensors<T> tensors;
    static constexpr bool kAAlongK = false;
    using Store = BackwardDataStore<T>;

    // General: d, h, w the input position, counted from the start of the padding. Pointwise: dy's
    // offset of (image, the group's first output channel, position), -1 past the last row.
    using Row = std::conditional_t<Pointwise, int, PatchRow>;
    using ACol = std::conditional_t<Pointwise, int, TapColumn>;  // pointwise: the channel's offset
    using BRow = int;
    using BCol = int;
    __host__ __device__ GemmSize size() const { return {c.batch * c.in_spatial, c.in_group, c.out_group * c.taps}; }
    __device__ Row row(int m, int group) const {
        if constexpr (Pointwise) {
            return pointwise_row(m, c.batch * c.in_spatial, c.inputs.count, c.out_channels, group * c.out_group);
        } else {
            if (m >= c.batch * c.in_spatial) return {};
            const int image = c.inputs.count.divide(m);
            const Position i = split_position(m - image * c.in_spatial, c.inputs);
            return {(image * c.out_channels + group * c.out_group) * c.out_spatial, i.d + c.pad.d, i.h + c.pad.h,
                    i.w + c.pad.w};
        }
    }
    __device__ ACol a_col(int k) const {
        if constexpr (Pointwise) {
            return k * c.out_spatial;
        } else {
            return dilated_tap(c, k, c.out_spatial);
        }
    }
    __device__ T a(const Row& r, const ACol& t) const {
        if constexpr (Pointwise) {
            return r < 0 ? T(0) : tensors.dy[r + t];
        } else {
            return Store::a(c, tensors, r, t);
        }
    }
    __device__ BCol b_col(int n, int /*group*/) const { return Store::b_col(c, n); }
    __device__ BRow b_row(int k, int group) const {
        if constexpr (Pointwise) {
            return Store::b_row(c, k, 0, group);
        } else {
            const int out_channel = c.kernel_taps.count.divide(k);
            return Store::b_row(c, out_channel, k - out_channel * c.taps, group);
        }
    }
    __device__ T b(BRow row, BCol col) const { return Store::b(tensors, row, col); }
    __device__ int out_row(int m, int /*group*/) const {
        return activation_row(m, c.batch * c.in_spatial, c.inputs.count, c.in_channels);
    }
    __device__ void store(int row, int n, int group, T value) const { Store::store(c, tensors, row, n, group, value); }
};

// Sub-pixel backward-data, one phase: the dx positions i = phase + stride·j (per dim, j < rows)
// and only the taps that reach them. Along one dim those taps are an arithmetic progression,
// tap = first_tap + u·tap_step (u < taps), and tap u of row j reads dy at j + offset - u·offset_step:
// from (i + pad - tap·dilation) / stride, exact for these taps. The launcher computes them once
// per phase on the host (phase_taps), with multipliers for every division left, so a gathered
// element costs no modulo or division by the stride.
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
    using Store = BackwardDataStore<T>;

    using Row = PatchRow;  // d, h, w: the dy position tap u = 0 reads (may be outside dy)
    using ACol = TapColumn;
    using BRow = int;
    using BCol = int;
    __host__ __device__ GemmSize size() const {
        return {c.batch * p.rows.size.size(), c.in_group, c.out_group * p.taps.size.size()};
    }
    __device__ Row row(int m, int group) const {
        if (m >= c.batch * p.rows.size.size()) return {};
        const int image = p.rows.count.divide(m);
        const Position j = split_position(m - image * p.rows.size.size(), p.rows);
        return {(image * c.out_channels + group * c.out_group) * c.out_spatial, j.d + p.offset.d, j.h + p.offset.h,
                j.w + p.offset.w};
    }
    __device__ ACol a_col(int k) const {
        const int channel = p.taps.count.divide(k);
        const Position u = split_position(k - channel * p.taps.size.size(), p.taps);
        return {channel * c.out_spatial, u.d * p.offset_step.d, u.h * p.offset_step.h, u.w * p.offset_step.w};
    }
    __device__ T a(const Row& r, const ACol& u) const { return Store::a(c, tensors, r, u); }
    __device__ BCol b_col(int n, int /*group*/) const { return Store::b_col(c, n); }
    __device__ BRow b_row(int k, int group) const {
        const int out_channel = p.taps.count.divide(k);
        const Position u = split_position(k - out_channel * p.taps.size.size(), p.taps);
        const int tap =
            ((p.first_tap.d + u.d * p.tap_step.d) * c.kernel.h + p.first_tap.h + u.h * p.tap_step.h) * c.kernel.w +
            p.first_tap.w + u.w * p.tap_step.w;
        return Store::b_row(c, out_channel, tap, group);
    }
    __device__ T b(BRow row, BCol col) const { return Store::b(tensors, row, col); }
    __device__ int out_row(int m, int /*group*/) const {
        if (m >= c.batch * p.rows.size.size()) return -1;
        const int image = p.rows.count.divide(m);
        const Position j = split_position(m - image * p.rows.size.size(), p.rows);
        const int position = ((p.phase.d + c.stride.d * j.d) * c.input.h + p.phase.h + c.stride.h * j.h) * c.input.w +
                             p.phase.w + c.stride.w * j.w;
        return image * c.in_channels * c.in_spatial + position;
    }
    __device__ void store(int row, int n, int group, T value) const { Store::store(c, tensors, row, n, group, value); }
};

// The two factors of the filter gradient, each a matrix over the reduction index k = image · P +
// output position: dy (a row per output channel) and the x-patches (a row per channel · taps +
// tap, the weight's order). The group's offset goes with the row (per thread, once), the rest with
// k (per load).
struct DyFactor {
    // dy's offset of output channel n of `group`, -1 past the last.
    __device__ static int channel(const ConvIndex& c, int n, int group) {
        return n < c.out_group ? (group * c.out_group + n) * c.out_spatial : -1;
    }
    // dy's offset of (image, channel 0, position) for reduction index k.
    __device__ static int position(const ConvIndex& c, int k) {
        const int image = c.outputs.count.divide(k);
        return image * c.out_channels * c.out_spatial + (k - image * c.out_spatial);
    }
    template <typename T>
    __device__ static T at(const T* dy, int channel, int position) {
        return channel < 0 ? T(0) : dy[channel + position];
    }
};

// Pointwise (1x1, stride 1, no padding): a patch row is x's channel offset, a window x's offset of
// (image, channel 0, position), every element in range.
template <bool Pointwise>
struct PatchFactor {
    using Column = std::conditional_t<Pointwise, int, TapColumn>;
    using Window = std::conditional_t<Pointwise, int, PatchRow>;
    // Patch row n = channel · taps + tap of `group`: the channel's offset in x and the tap's reach
    // per dim; offset -1 past the last.
    __device__ static Column tap(const ConvIndex& c, int n, int group) {
        if constexpr (Pointwise) {
            return n < c.in_group ? (group * c.in_group + n) * c.in_spatial : -1;
        } else {
            if (n >= c.in_group * c.taps) return {-1, 0, 0, 0};
            TapColumn t = dilated_tap(c, n, c.in_spatial);
            t.offset += group * c.in_group * c.in_spatial;
            return t;
        }
    }
    // Reduction index k: x's offset of (image, channel 0) and the window's first coordinate.
    __device__ static Window window(const ConvIndex& c, int k) {
        if constexpr (Pointwise) {
            return activation_row(k, c.batch * c.out_spatial, c.outputs.count, c.in_channels);
        } else {
            const int image = c.outputs.count.divide(k);
            const Position o = split_position(k - image * c.out_spatial, c.outputs);
            return {image * c.in_channels * c.in_spatial, o.d * c.stride.d - c.pad.d, o.h * c.stride.h - c.pad.h,
                    o.w * c.stride.w - c.pad.w};
        }
    }
    template <typename T>
    __device__ static T at(const ConvIndex& c, const T* x, const Window& r, const Column& t) {
        if constexpr (Pointwise) {
            return t < 0 ? T(0) : x[r + t];
        } else {
            const int d = r.d + t.d, h = r.h + t.h, col = r.w + t.w;
            if (t.offset < 0 || !inside(d, c.input.d) || !inside(h, c.input.h) || !inside(col, c.input.w)) {
                return T(0);
            }
            return x[r.base + t.offset + (d * c.input.h + h) * c.input.w + col];
        }
    }
};

// Backward-filter: A = dy^T [K/g, n·P], B = x-patches [n·P, C/g·taps]: dw's rows are the GEMM's.
template <typename T, bool Pointwise = false>
struct BackwardFilterOperands {
    using Patches = PatchFactor<Pointwise>;
    ConvIndex c;
    const T* dy;
    const T* x;
    T* dw;
    static constexpr bool kAAlongK = true;

    using Row = int;   // DyFactor::channel
    using ACol = int;  // DyFactor::position
    using BRow = typename Patches::Window;
    using BCol = typename Patches::Column;
    __host__ __device__ GemmSize size() const { return {c.out_group, c.in_group * c.taps, c.batch * c.out_spatial}; }
    __device__ Row row(int m, int group) const { return DyFactor::channel(c, m, group); }
    __device__ ACol a_col(int k) const { return DyFactor::position(c, k); }
    __device__ T a(Row r, ACol k) const { return DyFactor::at(dy, r, k); }
    __device__ BCol b_col(int n, int group) const { return Patches::tap(c, n, group); }
    __device__ BRow b_row(int k, int /*group*/) const { return Patches::window(c, k); }
    __device__ T b(const BRow& r, const BCol& t) const { return Patches::at(c, x, r, t); }
    __device__ int out_row(int m, int group) const {
        return m < c.out_group ? (group * c.out_group + m) * (c.in_group * c.taps) : -1;
    }
    __device__ void store(int row, int n, int /*group*/, T value) const { dw[row + n] = value; }
};

// Backward-filter transposed: dw^T = x-patches^T [C/g·taps, n·P] · dy [n·P, K/g], for filters of
// few output channels (K/g <= 64, ResNet's first layers: 64 rows of a 128-row tile would idle).
// The same factors, the same sums in the same order: only the tile that computes each differs.
template <typename T, bool Pointwise = false>
struct BackwardFilterTransposedOperands {
    using Patches = PatchFactor<Pointwise>;
    ConvIndex c;
    const T* dy;
    const T* x;
    T* dw;
    static constexpr bool kAAlongK = true;  // consecutive positions: consecutive x (stride 1)

    using Row = typename Patches::Column;
    using ACol = typename Patches::Window;
    using BRow = int;  // DyFactor::position
    using BCol = int;  // DyFactor::channel
    __host__ __device__ GemmSize size() const { return {c.in_group * c.taps, c.out_group, c.batch * c.out_spatial}; }
    __device__ Row row(int m, int group) const { return Patches::tap(c, m, group); }
    __device__ ACol a_col(int k) const { return Patches::window(c, k); }
    __device__ T a(const Row& t, const ACol& r) const { return Patches::at(c, x, r, t); }
    __device__ BCol b_col(int n, int group) const { return DyFactor::channel(c, n, group); }
    __device__ BRow b_row(int k, int /*group*/) const { return DyFactor::position(c, k); }
    __device__ T b(BRow k, BCol channel) const { return DyFactor::at(dy, channel, k); }
    __device__ int out_row(int m, int /*group*/) const { return m < c.in_group * c.taps ? m : -1; }
    __device__ void store(int row, int n, int group, T value) const {
        dw[(group * c.out_group + n) * (c.in_group * c.taps) + row] = value;
    }
};

}  // namespace tiled
CONVKIT_KERNELS_END
