#pragma once
// The resolved geometry of one convolution or pooling call: every shape and parameter checked
// once, padding resolved, and spatial dims widened to three (unused dims have size 1, kernel 1,
// stride 1, padding 0) so that every backend writes one loop nest for 1-D, 2-D and 3-D.
// Computed in src/ops and handed to whichever backend runs the call.
//
// Alignment: in ConvParams/PoolParams, SpatialDims index 0 is the op's first spatial dim (H of a
// 2-D op). In the geometries they are right-aligned: index 0 is always D, 1 is H, 2 is W, so a
// 2-D op has D = 1. The index math below is shared by every backend (constexpr, so CUDA kernels
// compiled with --expt-relaxed-constexpr call it too): backends write only the arithmetic.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "convkit/conv_params.h"
#include "convkit/memory_format.h"
#include "convkit/shape.h"

namespace convkit::detail {

struct ConvGeometry {
    int spatial_rank = 2;
    std::int64_t batch = 1;
    std::int64_t in_channels = 1;   // of the convolution's input
    std::int64_t out_channels = 1;  // of the convolution's output
    std::int64_t groups = 1;
    SpatialDims input{1, 1, 1};
    SpatialDims output{1, 1, 1};
    SpatialDims kernel{1, 1, 1};
    SpatialDims stride{1, 1, 1};
    SpatialDims dilation{1, 1, 1};
    SpatialDims pad_begin{0, 0, 0};
    SpatialDims pad_end{0, 0, 0};
    PaddingMode padding_mode = PaddingMode::Zeros;

    constexpr std::int64_t in_channels_per_group() const { return in_channels / groups; }
    constexpr std::int64_t out_channels_per_group() const { return out_channels / groups; }
    constexpr std::int64_t input_spatial() const { return input[0] * input[1] * input[2]; }
    constexpr std::int64_t output_spatial() const { return output[0] * output[1] * output[2]; }
    constexpr std::int64_t kernel_spatial() const { return kernel[0] * kernel[1] * kernel[2]; }
    Shape input_shape() const;   // [N, C_in, spatial...]
    Shape output_shape() const;  // [N, C_out, spatial...]
    Shape weight_shape() const;  // [C_out, C_in / groups, kernel...]
};

// A convolution: input [N, C_in, in...], weight [C_out, C_in / groups, kernel...].
ConvGeometry conv_geometry(std::string_view op, const Shape& input, const Shape& weight, const ConvParams& params);

// A transposed convolution, described as the convolution it is the adjoint of: that
// convolution's input is the transposed convolution's output and vice versa, and the weight
// [C_in, C_out / groups, kernel...] reads as that convolution's [C_out', C_in' / groups, ...].
// Backends must use the stored sizes: when output_padding >= stride (allowed below the
// dilation), `output` is smaller than conv_output_size(`input`), i.e. the adjoint convolution
// is evaluated at its first `output` positions only (e.g. in 5, k 2, d 3, p 1, op 2: the
// transposed output is 8, and a convolution of 8 would give 7 positions, not 5).
ConvGeometry conv_transpose_geometry(std::string_view op, const Shape& input, const Shape& weight,
                                     const ConvParams& params);

struct PoolGeometry {
    int spatial_rank = 2;
    std::int64_t batch = 1;
    std::int64_t channels = 1;
    SpatialDims input{1, 1, 1};
    SpatialDims output{1, 1, 1};
    SpatialDims kernel{1, 1, 1};
    SpatialDims stride{1, 1, 1};
    SpatialDims padding{0, 0, 0};
    SpatialDims dilation{1, 1, 1};
    bool count_include_pad = true;

    constexpr std::int64_t planes() const { return batch * channels; }
    constexpr std::int64_t input_spatial() const { return input[0] * input[1] * input[2]; }
    constexpr std::int64_t output_spatial() const { return output[0] * output[1] * output[2]; }
    Shape output_shape() const;
};

PoolGeometry pool_geometry(std::string_view op, const Shape& input, const PoolParams& params, PoolKind kind);

// Adaptive pooling: only input and output sizes matter; kernel/stride/padding are unused.
PoolGeometry adaptive_pool_geometry(std::string_view op, const Shape& input,
                                    const std::vector<std::int64_t>& output_size);

// Checks that `shape` is an image batch [N, C, spatial...] of the given spatial rank with every
// dimension at least 1; `what` names the tensor in the message ("input", "grad_output").
void check_image_shape(std::string_view op, const char* what, const Shape& shape, int spatial_rank);

// Why a convolution does not fit kernels that pad with zeros, equally on both sides, and compute
// every output position of the padded input (cuDNN's legacy API, the tensor-core implicit GEMM):
// empty when it fits. Not every transposed convolution does: an output_padding of a stride or more
// gives an output no such convolution maps to.
std::string symmetric_zero_padding_reason(const ConvGeometry& g);

// Whether the convolution is one matrix product: its one output position reads the whole input,
// unpadded and undilated (kernel == input in every dim), so y[n, k] = sum over (c, tap) of
// x[n, c, tap] w[k, c, tap], with x's rows [N, C x taps] in its contiguous order. A fully
// connected layer written as a convolution, a squeeze-excitation 1x1 on pooled features, and the
// adjoint of DCGAN's first transposed layer (1x1 to 4x4) are.
bool is_matrix_product(const ConvGeometry& g);

// "3x3": the first spatial_rank entries, for messages and test names.
std::string spatial_dims_text(const SpatialDims& dims, int spatial_rank);

// Copies one value per spatial dim into `dims`; `owner` and `what` name them in the message.
void assign_per_dim(SpatialDims& dims, std::initializer_list<std::int64_t> values, int spatial_rank,
                    const char* owner, const char* what);

// "W" / "H" / "D" for spatial dim `dim` of a tensor with `spatial_rank` spatial dims.
const char* spatial_dim_name(int spatial_rank, int dim);

// [N, C, spatial...] from right-aligned spatial dims: the last `spatial_rank` entries of `dims`.
Shape image_shape(std::int64_t batch, std::int64_t channels, const SpatialDims& dims, int spatial_rank);

// Where position `position` of a dim of `size`, padded on both sides, reads its value from:
// an index in [0, size), or -1 for a zero. Valid for positions within one size of the edges,
// which the padding limits checked in conv_geometry guarantee.
constexpr std::int64_t padded_source_index(std::int64_t position, std::int64_t size, PaddingMode mode) {
    if (position >= 0 && position < size) return position;
    switch (mode) {
        case PaddingMode::Zeros: return -1;
        case PaddingMode::Reflect: return position < 0 ? -position : 2 * (size - 1) - position;
        case PaddingMode::Replicate: return position < 0 ? 0 : size - 1;
        case PaddingMode::Circular: return position < 0 ? position + size : position - size;
    }
    return -1;
}

// The input position that tap k of output position o reads along geometry dim s, or -1 where
// it reads a zero of the padding.
constexpr std::int64_t conv_tap_source(const ConvGeometry& g, int s, std::int64_t o, std::int64_t k) {
    const std::int64_t position = o * g.stride[s] - g.pad_begin[s] + k * g.dilation[s];
    return padded_source_index(position, g.input[s], g.padding_mode);
}

// Calls f(o, k) for every output position o and tap k that read input position i along geometry
// dim s, i.e. conv_tap_source(g, s, o, k) == i: its inverse, for gathers that sum what the taps
// read (col2im). The padded positions that hold i are i itself and, for the padding modes that
// copy the input, those of the padding that padded_source_index maps to i (at most the padding's
// width on each side); each gives at most one output position per tap. Calls come in a fixed
// order (position, then tap), so a gather summing in it is deterministic.
template <typename F>
constexpr void for_each_tap_reading(const ConvGeometry& g, int s, std::int64_t i, F&& f) {
    // Candidate 0 is i; then the padding's positions, before the input and after it. One loop
    // with one call of f: a kernel nesting this per dim inlines f once, not once per case.
    const std::int64_t before = g.pad_begin[s] > 0 ? g.pad_begin[s] : 0;
    const std::int64_t after = g.pad_end[s] > 0 ? g.pad_end[s] : 0;
    const std::int64_t candidates = g.padding_mode == PaddingMode::Zeros ? 1 : 1 + before + after;
    for (std::int64_t c = 0; c < candidates; ++c) {
        const std::int64_t position = c == 0        ? i
                                      : c <= before ? c - 1 - before
                                                    : g.input[s] + c - 1 - before;
        if (c > 0 && padded_source_index(position, g.input[s], g.padding_mode) != i) continue;
        for (std::int64_t k = 0; k < g.kernel[s]; ++k) {
            const std::int64_t scaled = position + g.pad_begin[s] - k * g.dilation[s];  // o * stride
            if (scaled < 0) continue;
            // Stride 1 (most dims) needs no division, which 64-bit integers pay dearly for on a GPU.
            const bool unit = g.stride[s] == 1;
            if (!unit && scaled % g.stride[s] != 0) continue;
            const std::int64_t o = unit ? scaled : scaled / g.stride[s];
            if (o < g.output[s]) f(o, k);
        }
    }
}

// The input position that tap k of a max-pooling window at output o covers along dim s; it may
// lie outside [0, input) (in the padding, or past it in ceil mode).
constexpr std::int64_t pool_tap_position(const PoolGeometry& g, int s, std::int64_t o, std::int64_t k) {
    return o * g.stride[s] - g.padding[s] + k * g.dilation[s];
}

// The flat number of tap (kd, kh, kw) of a pooling window, row-major over the kernel's extents.
constexpr std::int64_t max_pool_tap(const PoolGeometry& g, std::int64_t kd, std::int64_t kh, std::int64_t kw) {
    return (kd * g.kernel[1] + kh) * g.kernel[2] + kw;
}

// Offsets of the elements (plane, d, h, w) of a pooling operand of spatial `size`, plane =
// n * channels + c, in either memory format (NCDHW or NDHWC).
struct PlaneOffsets {
    SpatialDims size;
    std::int64_t channels = 1;
    MemoryFormat layout = MemoryFormat::Contiguous;

    constexpr std::int64_t operator()(std::int64_t plane, std::int64_t d, std::int64_t h, std::int64_t w) const {
        const std::int64_t spatial = size[0] * size[1] * size[2];
        const std::int64_t s = (d * size[1] + h) * size[2] + w;
        if (layout == MemoryFormat::Contiguous) return plane * spatial + s;
        return (plane / channels * spatial + s) * channels + plane % channels;
    }
};

// Calls f(d, h, w, tap) for each tap of the max-pooling window of output position `o` that lands
// in the input, in the window's order (d, then h, then w), tap being max_pool_tap(g, kd, kh, kw).
// The one walk of a max-pooling window, so that every scan over it (the host's, a kernel's over
// one element or over a pack of adjacent channels) meets the taps in the same order.
template <typename F>
constexpr void for_each_max_pool_window_tap(const PoolGeometry& g, const std::array<std::int64_t, 3>& o, F&& f) {
    for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd) {
        const std::int64_t d = pool_tap_position(g, 0, o[0], kd);
        if (d < 0 || d >= g.input[0]) continue;
        for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh) {
            const std::int64_t h = pool_tap_position(g, 1, o[1], kh);
            if (h < 0 || h >= g.input[1]) continue;
            for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw) {
                const std::int64_t w = pool_tap_position(g, 2, o[2], kw);
                if (w < 0 || w >= g.input[2]) continue;
                f(d, h, w, max_pool_tap(g, kd, kh, kw));
            }
        }
    }
}

// Whether a max-pooling scan takes `v` as the window's maximum so far (`best`, none yet when
// `first`): the first maximum on ties and the last NaN if there is one (PyTorch's scan,
// `v > max || isnan(v)`).
template <typename T>
constexpr bool max_pool_takes(bool first, T v, T best) {
    const bool is_nan = v != v;
    return first || v > best || is_nan;
}

// The offset in x (of `layout`) of the maximum of the window of output position `o` in
// `plane` (max_pool_takes over the window's walk); -1 if the window holds no input element
// (possible only with dilation).
// Shared by every backend so that all of them send a max-pool gradient to the same element.
// `x` is anything indexed by offset that gives comparable values: a pointer to float or double,
// or a kernel's view that widens 16-bit storage. Given `tap`, it also receives the maximum's tap
// in the window, max_pool_tap(g, kd, kh, kw) (-1 with the offset), for a backward pass that
// reads the taps instead of x.
template <typename Values>
constexpr std::int64_t max_pool_window_argmax(const PoolGeometry& g, const Values& x, std::int64_t plane,
                                              const std::array<std::int64_t, 3>& o,
                                              MemoryFormat layout = MemoryFormat::Contiguous,
                                              std::int64_t* tap = nullptr) {
    using T = std::remove_cvref_t<decltype(x[0])>;
    const PlaneOffsets at{g.input, g.channels, layout};
    std::int64_t best = -1;
    std::int64_t best_tap = -1;
    T best_value = T(0);
    for_each_max_pool_window_tap(g, o, [&](std::int64_t d, std::int64_t h, std::int64_t w, std::int64_t t) {
        const std::int64_t i = at(plane, d, h, w);
        const T v = x[i];
        if (max_pool_takes(best < 0, v, best_value)) {
            best = i;
            best_tap = t;
            best_value = v;
        }
    });
    if (tap != nullptr) *tap = best_tap;
    return best;
}

// The input range [begin, end) of one averaging window along one dim, and its length as it
// counts in the divisor.
struct WindowSpan {
    std::int64_t begin;
    std::int64_t end;
    std::int64_t divisor_length;
};

// Average pooling, PyTorch's rule: the window is clipped to input + padding for the divisor
// (count_include_pad), then to the input for the elements summed.
constexpr WindowSpan average_pool_span(const PoolGeometry& g, int s, std::int64_t o) {
    const std::int64_t start = o * g.stride[s] - g.padding[s];
    const std::int64_t stop = start + g.kernel[s] < g.input[s] + g.padding[s] ? start + g.kernel[s]
                                                                              : g.input[s] + g.padding[s];
    const std::int64_t begin = start > 0 ? start : 0;
    const std::int64_t end = stop < g.input[s] ? stop : g.input[s];
    return {begin, end, g.count_include_pad ? stop - start : end - begin};
}

// Adaptive pooling: window o of `out` over `in` covers [floor(o * in / out), ceil((o + 1) * in / out)).
constexpr WindowSpan adaptive_pool_span(const PoolGeometry& g, int s, std::int64_t o) {
    const std::int64_t begin = o * g.input[s] / g.output[s];
    const std::int64_t end = ((o + 1) * g.input[s] + g.output[s] - 1) / g.output[s];
    return {begin, end, end - begin};
}

}  // namespace convkit::detail
