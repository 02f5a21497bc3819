#pragma once
// The index math of the shape ops (concat, slice, split, nearest upsampling), shared by the host
// loops and the CUDA kernels (constexpr, so .cu files call it too): backends differ only in how
// they spread the elements over threads.
#include <array>
#include <cstdint>

namespace convkit::detail {

// A copy of a run of positions along one dim, for every index of the dims before it (`outer`)
// and after it (`inner`): viewing both tensors as [outer, dim, inner],
//   dest[o, dest_start + j, i] = source[o, source_start + j, i]  for j in [0, length).
// concat copies each input into its place in the output (source_start 0); slice copies a window
// of the input (dest_start 0); slice's backward copies the gradient back into the window of a
// zero tensor (source_start 0).
struct BlockCopyGeometry {
    std::int64_t outer = 1;
    std::int64_t inner = 1;
    std::int64_t length = 0;  // positions copied along the dim
    std::int64_t source_dim = 0;
    std::int64_t source_start = 0;
    std::int64_t dest_dim = 0;
    std::int64_t dest_start = 0;
    constexpr std::int64_t count() const { return outer * length * inner; }
};

struct CopyOffsets {
    std::int64_t source = 0;
    std::int64_t dest = 0;
};

// The offsets of copied element `index` (in [0, count()), row-major over [outer, length, inner],
// so consecutive indices are consecutive in both tensors along `inner`).
constexpr CopyOffsets block_copy_offsets(const BlockCopyGeometry& g, std::int64_t index) {
    const std::int64_t i = index % g.inner;
    const std::int64_t rest = index / g.inner;
    const std::int64_t j = rest % g.length;
    const std::int64_t o = rest / g.length;
    return {(o * g.source_dim + g.source_start + j) * g.inner + i, (o * g.dest_dim + g.dest_start + j) * g.inner + i};
}

// Rows of `from` elements copied into rows of `to` (a channels-last tensor's positions, a KRSC
// weight's (output channel, tap) rows), widened with zeros or narrowed:
//   dest[r, c] = c < from ? source[r, c] : 0  for c in [0, to).
// cuda.igemm pads a convolution's input channels to its 16-byte vectors this way, and narrows
// the gradients back.
struct ChannelRowsGeometry {
    std::int64_t rows = 0;
    std::int64_t from = 0;  // elements a source row holds
    std::int64_t to = 0;    // elements a destination row holds
    constexpr std::int64_t count() const { return rows * to; }
};

// The source offset of destination element `index` (row-major over [rows, to]), or -1 where the
// destination gets a zero.
constexpr std::int64_t channel_rows_source(const ChannelRowsGeometry& g, std::int64_t index) {
    const std::int64_t c = index % g.to;
    return c < g.from ? index / g.to * g.from + c : -1;
}

// Nearest-neighbour resampling of [planes, D, H, W] (unused spatial dims of size 1) from `input`
// to `output` sizes. Output position o along a dim reads input floor(o * in / out), PyTorch's
// 'nearest' rule; for an integer scale factor s (out = in * s) that is floor(o / s).
struct UpsampleGeometry {
    std::int64_t planes = 0;  // N * C
    std::array<std::int64_t, 3> input{1, 1, 1};
    std::array<std::int64_t, 3> output{1, 1, 1};
    constexpr std::int64_t input_spatial() const { return input[0] * input[1] * input[2]; }
    constexpr std::int64_t output_spatial() const { return output[0] * output[1] * output[2]; }
};

// Exact integer arithmetic: PyTorch computes this in float (o * (in / out)), which agrees for
// every size we compared (docs/norm-and-shape.md) and cannot drift for sizes past 2^24.
constexpr std::int64_t nearest_source_index(std::int64_t o, std::int64_t in, std::int64_t out) {
    return o * in / out;
}

// The output positions [begin, end) that read input position i: floor(o * in / out) == i exactly
// when i * out <= o * in < (i + 1) * out, i.e. o in [ceil(i * out / in), ceil((i + 1) * out / in)).
// Empty for inputs that a downsampling skips.
struct IndexSpan {
    std::int64_t begin = 0;
    std::int64_t end = 0;
};
constexpr IndexSpan nearest_targets(std::int64_t i, std::int64_t in, std::int64_t out) {
    return {(i * out + in - 1) / in, ((i + 1) * out + in - 1) / in};
}

// The input offset that output element `index` (row-major over [planes, output...]) reads.
constexpr std::int64_t upsample_source_offset(const UpsampleGeometry& g, std::int64_t index) {
    const std::int64_t w = index % g.output[2];
    index /= g.output[2];
    const std::int64_t h = index % g.output[1];
    index /= g.output[1];
    const std::int64_t d = index % g.output[0];
    const std::int64_t plane = index / g.output[0];
    const std::int64_t sd = nearest_source_index(d, g.input[0], g.output[0]);
    const std::int64_t sh = nearest_source_index(h, g.input[1], g.output[1]);
    const std::int64_t sw = nearest_source_index(w, g.input[2], g.output[2]);
    return ((plane * g.input[0] + sd) * g.input[1] + sh) * g.input[2] + sw;
}

// The gradient of input element `index` (row-major over [planes, input...]): the sum of the
// output gradients that read it, visited in a fixed order (deterministic on every backend).
template <typename Acc, typename T>
constexpr Acc upsample_gradient_sum(const UpsampleGeometry& g, const T* grad_output, std::int64_t index) {
    const std::int64_t w = index % g.input[2];
    index /= g.input[2];
    const std::int64_t h = index % g.input[1];
    index /= g.input[1];
    const std::int64_t d = index % g.input[0];
    const std::int64_t plane = index / g.input[0];
    const IndexSpan sd = nearest_targets(d, g.input[0], g.output[0]);
    const IndexSpan sh = nearest_targets(h, g.input[1], g.output[1]);
    const IndexSpan sw = nearest_targets(w, g.input[2], g.output[2]);
    Acc sum = Acc(0);
    for (std::int64_t od = sd.begin; od < sd.end; ++od) {
        for (std::int64_t oh = sh.begin; oh < sh.end; ++oh) {
            const std::int64_t row = ((plane * g.output[0] + od) * g.output[1] + oh) * g.output[2];
            for (std::int64_t ow = sw.begin; ow < sw.end; ++ow) sum += static_cast<Acc>(grad_output[row + ow]);
        }
    }
    return sum;
}

}  // namespace convkit::detail
