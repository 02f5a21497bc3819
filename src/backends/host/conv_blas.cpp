#include "backends/host/conv_blas.h"

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "backends/host/blas.h"
#include "core/check.h"
#include "ops/backend_registry.h"
#include "ops/op_support.h"

namespace convkit::host {

namespace {
using detail::ConvGeometry;

// Where tap k of output position o reads along one geometry dim (-1: a zero of the padding),
// tabulated once per call because the unfolding asks for every patch entry.
class TapSources {
public:
    TapSources(const ConvGeometry& g, int s)
        : outputs_(g.output[s]), source_(static_cast<std::size_t>(g.kernel[s] * g.output[s])) {
        for (std::int64_t k = 0; k < g.kernel[s]; ++k)
            for (std::int64_t o = 0; o < outputs_; ++o)
                source_[static_cast<std::size_t>(k * outputs_ + o)] = detail::conv_tap_source(g, s, o, k);
    }
    std::int64_t operator()(std::int64_t k, std::int64_t o) const {
        return source_[static_cast<std::size_t>(k * outputs_ + o)];
    }

private:
    std::int64_t outputs_;
    std::vector<std::int64_t> source_;
};

// A block of columns of the patch matrix: [first, first + count) of the flattened index
// j = n * P + p over (image n, output position p), P = output positions per image.
struct ColumnBlock {
    std::int64_t first;
    std::int64_t count;
};

// The geometry of one call with its tap tables and the per-group matrix sizes.
class Unfolding {
public:
    explicit Unfolding(const ConvGeometry& geometry)
        : g(geometry), taps_{TapSources(geometry, 0), TapSources(geometry, 1), TapSources(geometry, 2)} {}

    const ConvGeometry& g;
    std::int64_t taps() const { return g.kernel_spatial(); }
    std::int64_t rows() const { return g.in_channels_per_group() * taps(); }  // of the patch matrix
    std::int64_t positions() const { return g.output_spatial(); }             // P

    // Calls visit(k, p, source) for every tap k and output position p in [p_begin, p_end):
    // `source` is the offset of the element read within one input channel, or -1 for a zero of
    // the padding. Walks the positions in runs along W, looking D and H up once per run.
    template <typename Visit>
    void for_each_tap(std::int64_t p_begin, std::int64_t p_end, Visit&& visit) const {
        const std::int64_t out_h = g.output[1];
        const std::int64_t out_w = g.output[2];
        std::int64_t k = 0;
        for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
            for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh)
                for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw, ++k) {
                    for (std::int64_t p = p_begin; p < p_end;) {
                        const std::int64_t line = p / out_w;  // (od, oh) flattened
                        const std::int64_t run_end = std::min(p_end, (line + 1) * out_w);
                        const std::int64_t id = taps_[0](kd, line / out_h);
                        const std::int64_t ih = taps_[1](kh, line % out_h);
                        if (id < 0 || ih < 0) {
                            for (; p < run_end; ++p) visit(k, p, std::int64_t{-1});
                            continue;
                        }
                        const std::int64_t line_start = (id * g.input[1] + ih) * g.input[2];
                        for (std::int64_t ow = p - line * out_w; p < run_end; ++p, ++ow) {
                            const std::int64_t iw = taps_[2](kw, ow);
                            visit(k, p, iw < 0 ? std::int64_t{-1} : line_start + iw);
                        }
                    }
                }
    }

private:
    std::array<TapSources, 3> taps_;
};

// Calls f(n, c, p_begin, p_end, offset) for every image n with columns in the block and every
// c in [0, channels), where positions [p_begin, p_end) of image n are in the block and position
// p is block column offset + p. The pairs run in parallel: every pass below touches a distinct
// channel plane of one image per pair, so they never write the same element.
template <typename F>
void parallel_over_images_and_channels(const Unfolding& u, const ColumnBlock& block, std::int64_t channels, F&& f) {
    const std::int64_t positions = u.positions();
    const std::int64_t first_image = block.first / positions;
    const std::int64_t end_image = (block.first + block.count - 1) / positions + 1;
#pragma omp parallel for collapse(2) schedule(static)
    for (std::int64_t n = first_image; n < end_image; ++n) {
        for (std::int64_t c = 0; c < channels; ++c) {
            const std::int64_t offset = n * positions - block.first;
            f(n, c, std::max<std::int64_t>(-offset, 0), std::min(block.count - offset, positions), offset);
        }
    }
}

// im2col: patches[(ci, k), column] for the block, over the group's input channels.
template <typename T>
void unfold(const Unfolding& u, const T* input, std::int64_t group, const ColumnBlock& block, T* patches) {
    const ConvGeometry& g = u.g;
    parallel_over_images_and_channels(u, block, g.in_channels_per_group(), [&](auto n, auto ci, auto p_begin,
                                                                               auto p_end, auto offset) {
        const T* plane = input + (n * g.in_channels + group * g.in_channels_per_group() + ci) * g.input_spatial();
        T* rows = patches + ci * u.taps() * block.count + offset;
        u.for_each_tap(p_begin, p_end, [&](std::int64_t k, std::int64_t p, std::int64_t source) {
            rows[k * block.count + p] = source < 0 ? T(0) : plane[source];
        });
    });
}

// col2im: adds every patch entry onto the input element it was read from. Several taps may
// name one element (overlapping windows; reflect, replicate and circular padding); each adds.
template <typename T>
void fold(const Unfolding& u, const T* patches, std::int64_t group, const ColumnBlock& block, T* grad_input) {
    const ConvGeometry& g = u.g;
    parallel_over_images_and_channels(u, block, g.in_channels_per_group(), [&](auto n, auto ci, auto p_begin,
                                                                               auto p_end, auto offset) {
        T* plane = grad_input + (n * g.in_channels + group * g.in_channels_per_group() + ci) * g.input_spatial();
        const T* rows = patches + ci * u.taps() * block.count + offset;
        u.for_each_tap(p_begin, p_end, [&](std::int64_t k, std::int64_t p, std::int64_t source) {
            if (source >= 0) plane[source] += rows[k * block.count + p];
        });
    });
}

// The block's columns of the group's output channels: y[n, group * Og + co, p] <-> block[co, column].
template <typename T>
void scatter_output(const Unfolding& u, const T* block_values, const T* bias, std::int64_t group,
                    const ColumnBlock& block, T* output) {
    const ConvGeometry& g = u.g;
    parallel_over_images_and_channels(u, block, g.out_channels_per_group(), [&](auto n, auto co, auto p_begin,
                                                                                auto p_end, auto offset) {
        const std::int64_t channel = group * g.out_channels_per_group() + co;
        T* row = output + (n * g.out_channels + channel) * u.positions();
        const T* values = block_values + co * block.count + offset;
        const T b = bias != nullptr ? bias[channel] : T(0);
        for (std::int64_t p = p_begin; p < p_end; ++p) row[p] = values[p] + b;
    });
}

template <typename T>
void gather_output(const Unfolding& u, const T* output, std::int64_t group, const ColumnBlock& block,
                   T* block_values) {
    const ConvGeometry& g = u.g;
    parallel_over_images_and_channels(u, block, g.out_channels_per_group(), [&](auto n, auto co, auto p_begin,
                                                                                auto p_end, auto offset) {
        const std::int64_t channel = group * g.out_channels_per_group() + co;
        const T* row = output + (n * g.out_channels + channel) * u.positions();
        T* values = block_values + co * block.count + offset;
        for (std::int64_t p = p_begin; p < p_end; ++p) values[p] = row[p];
    });
}

// The scratch of one call: a patch matrix [rows, columns] and an output block [Og, columns],
// with as many columns as fit in `scratch_bytes` (at least one; whole images where one fits,
// so that blocks split the batch evenly).
template <typename T>
class Scratch {
public:
    Scratch(const Unfolding& u, std::size_t scratch_bytes)
        : columns(conv_blas_block_columns(u.g, sizeof(T), scratch_bytes)) {
        // Uninitialised: every entry is written before it is read.
        patches = std::make_unique_for_overwrite<T[]>(static_cast<std::size_t>(u.rows() * columns));
        outputs = std::make_unique_for_overwrite<T[]>(static_cast<std::size_t>(u.g.out_channels_per_group() * columns));
    }

    template <typename F>
    void for_each_block(const Unfolding& u, F&& f) const {
        const std::int64_t total = u.g.batch * u.positions();
        for (std::int64_t first = 0; first < total; first += columns) f(ColumnBlock{first, std::min(columns, total - first)});
    }

    std::int64_t columns;
    std::unique_ptr<T[]> patches;
    std::unique_ptr<T[]> outputs;
};

// The group's rows of a weight [C_out, C_in / groups, kernel...]: a [Og, rows] matrix.
template <typename T>
const T* group_weight(const Unfolding& u, const T* weight, std::int64_t group) {
    return weight + group * u.g.out_channels_per_group() * u.rows();
}
}  // namespace

std::int64_t conv_blas_block_columns(const ConvGeometry& g, std::size_t element_size, std::size_t scratch_bytes) {
    const std::int64_t positions = g.output_spatial();
    const std::int64_t total = g.batch * positions;
    const std::int64_t rows = g.in_channels_per_group() * g.kernel_spatial() + g.out_channels_per_group();
    const std::size_t per_column = static_cast<std::size_t>(rows) * element_size;
    std::int64_t columns = static_cast<std::int64_t>(std::min<std::size_t>(scratch_bytes / per_column,
                                                                           static_cast<std::size_t>(total)));
    // Whole images keep the blocks of a batch alike and every (image, channel) task complete.
    if (columns >= positions) columns -= columns % positions;
    return std::clamp<std::int64_t>(columns, 1, blas_index_limit());
}

std::string conv_blas_unsupported_reason(const ConvGeometry& g) {
    const std::int64_t rows = g.in_channels_per_group() * g.kernel_spatial();
    const std::int64_t limit = blas_index_limit();
    if (rows > limit || g.out_channels_per_group() > limit) {
        return detail::concat("cannot run this convolution: its matrix product would have ", rows,
                              " rows of patches (C_in / groups x kernel taps) and ", g.out_channels_per_group(),
                              " output channels per group, past the BLAS integer limit ", limit);
    }
    return {};
}

template <typename T>
void conv_forward_blas(const ConvGeometry& g, const T* input, const T* weight, const T* bias, T* output,
                       std::size_t scratch_bytes) {
    const Unfolding u(g);
    Scratch<T> scratch(u, scratch_bytes);
    const std::int64_t out_per_group = g.out_channels_per_group();
    scratch.for_each_block(u, [&](const ColumnBlock& block) {
        for (std::int64_t group = 0; group < g.groups; ++group) {
            unfold(u, input, group, block, scratch.patches.get());
            blas_gemm<T>(false, false, out_per_group, block.count, u.rows(), group_weight(u, weight, group), u.rows(),
                         scratch.patches.get(), block.count, T(0), scratch.outputs.get(), block.count);
            scatter_output(u, scratch.outputs.get(), bias, group, block, output);
        }
    });
}

template <typename T>
void conv_backward_data_blas(const ConvGeometry& g, const T* grad_output, const T* weight, const T* bias,
                             T* grad_input, std::size_t scratch_bytes) {
    const Unfolding u(g);
    Scratch<T> scratch(u, scratch_bytes);
    // Every element starts at its bias (a transposed convolution's) or zero; the folds add the rest.
    const std::int64_t planes = g.batch * g.in_channels;
#pragma omp parallel for schedule(static)
    for (std::int64_t plane = 0; plane < planes; ++plane) {
        const T start = bias != nullptr ? bias[plane % g.in_channels] : T(0);
        std::fill_n(grad_input + plane * g.input_spatial(), g.input_spatial(), start);
    }
    const std::int64_t out_per_group = g.out_channels_per_group();
    scratch.for_each_block(u, [&](const ColumnBlock& block) {
        for (std::int64_t group = 0; group < g.groups; ++group) {
            gather_output(u, grad_output, group, block, scratch.outputs.get());
            blas_gemm<T>(true, false, u.rows(), block.count, out_per_group, group_weight(u, weight, group), u.rows(),
                         scratch.outputs.get(), block.count, T(0), scratch.patches.get(), block.count);
            fold(u, scratch.patches.get(), group, block, grad_input);
        }
    });
}

template <typename T>
void conv_backward_filter_blas(const ConvGeometry& g, const T* grad_output, const T* input, T* grad_weight,
                               std::size_t scratch_bytes) {
    const Unfolding u(g);
    Scratch<T> scratch(u, scratch_bytes);
    const std::int64_t out_per_group = g.out_channels_per_group();
    bool first_block = true;
    scratch.for_each_block(u, [&](const ColumnBlock& block) {
        for (std::int64_t group = 0; group < g.groups; ++group) {
            gather_output(u, grad_output, group, block, scratch.outputs.get());
            unfold(u, input, group, block, scratch.patches.get());
            // The first block overwrites (beta 0), the others add theirs.
            blas_gemm<T>(false, true, out_per_group, u.rows(), block.count, scratch.outputs.get(), block.count,
                         scratch.patches.get(), block.count, first_block ? T(0) : T(1),
                         grad_weight + group * out_per_group * u.rows(), u.rows());
        }
        first_block = false;
    });
}

#define CONVKIT_INSTANTIATE_CONV_BLAS(T)                                                                        \
    template void conv_forward_blas<T>(const ConvGeometry&, const T*, const T*, const T*, T*, std::size_t);   \
    template void conv_backward_data_blas<T>(const ConvGeometry&, const T*, const T*, const T*, T*,           \
                                             std::size_t);                                                     \
    template void conv_backward_filter_blas<T>(const ConvGeometry&, const T*, const T*, T*, std::size_t);
CONVKIT_INSTANTIATE_CONV_BLAS(float)
CONVKIT_INSTANTIATE_CONV_BLAS(double)
#undef CONVKIT_INSTANTIATE_CONV_BLAS

}  // namespace convkit::host

namespace convkit::detail {

namespace {
std::string unsupported_reason(const ConvGeometry& g, DType) { return host::conv_blas_unsupported_reason(g); }

void forward(const ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias, void* y, Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::conv_forward_blas<T>(g, static_cast<const T*>(x), static_cast<const T*>(w),
                                   static_cast<const T*>(bias), static_cast<T*>(y));
    });
}

void backward_data(const ConvGeometry& g, DType dtype, const void* dy, const void* w, const void* bias, void* dx,
                   Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::conv_backward_data_blas<T>(g, static_cast<const T*>(dy), static_cast<const T*>(w),
                                         static_cast<const T*>(bias), static_cast<T*>(dx));
    });
}

void backward_filter(const ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw, Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::conv_backward_filter_blas<T>(g, static_cast<const T*>(dy), static_cast<const T*>(x),
                                           static_cast<T*>(dw));
    });
}
}  // namespace

const ConvBackendOps& host_blas_conv_backend() {
    // The bias gradient is a plain sum with no matrix product in it: the reference's.
    static const ConvBackendOps ops{unsupported_reason, forward, backward_data, backward_filter,
                                    host_conv_backend().backward_bias};
    return ops;
}

}  // namespace convkit::detail
