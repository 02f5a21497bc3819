#include "backends/host/conv_blas.h"

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "backends/host/blas.h"
#include "backends/host/thread_pool.h"
#include "core/check.h"
#include "backend_api/variant.h"
#include "backends/host/conv_reference.h"
#include "backend_api/dtype_dispatch.h"
#include "backend_api/unfold_blocks.h"

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

// The geometry of one call with its tap tables and the matrix sizes of one group.
class Unfolding {
public:
    explicit Unfolding(const ConvGeometry& geometry)
        : g(geometry), taps_{TapSources(geometry, 0), TapSources(geometry, 1), TapSources(geometry, 2)} {}

    const ConvGeometry& g;
    std::int64_t taps() const { return g.kernel_spatial(); }
    std::int64_t rows() const { return g.in_channels_per_group() * taps(); }  // of the patch matrix
    std::int64_t positions() const { return g.output_spatial(); }             // P, of one image

    // Calls segment(k, p, count, source) for every tap k over the output positions [p_begin,
    // p_end), cut into segments of `count` consecutive positions from p whose sources are
    // consecutive too: `source` is the offset, within one input channel, of the element the
    // first of them reads, or -1 for `count` zeros of the padding. Walks the positions in runs
    // along W, looking D and H up once per run. With zero padding and stride 1 along W (nearly
    // every convolution) a run is at most three segments (padding, input, padding), which the
    // unfold and fold then move as contiguous rows; otherwise segments are single positions.
    template <typename Segment>
    void for_each_segment(std::int64_t p_begin, std::int64_t p_end, Segment&& segment) const {
        const std::int64_t out_h = g.output[1];
        const std::int64_t out_w = g.output[2];
        const bool contiguous_w = g.padding_mode == PaddingMode::Zeros && g.stride[2] == 1;
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
                            segment(k, p, run_end - p, std::int64_t{-1});
                            p = run_end;
                            continue;
                        }
                        const std::int64_t line_start = (id * g.input[1] + ih) * g.input[2];
                        const std::int64_t ow_begin = p - line * out_w;
                        const std::int64_t ow_end = ow_begin + (run_end - p);
                        if (contiguous_w) {
                            // Output column ow reads input column ow + shift where that is inside.
                            const std::int64_t shift = kw * g.dilation[2] - g.pad_begin[2];
                            const std::int64_t lo = std::clamp(-shift, ow_begin, ow_end);
                            const std::int64_t hi = std::clamp(g.input[2] - shift, lo, ow_end);
                            const std::int64_t base = line * out_w;
                            if (lo > ow_begin) segment(k, p, lo - ow_begin, std::int64_t{-1});
                            if (hi > lo) segment(k, base + lo, hi - lo, line_start + lo + shift);
                            if (ow_end > hi) segment(k, base + hi, ow_end - hi, std::int64_t{-1});
                            p = run_end;
                            continue;
                        }
                        for (std::int64_t ow = ow_begin; p < run_end; ++p, ++ow) {
                            const std::int64_t iw = taps_[2](kw, ow);
                            segment(k, p, std::int64_t{1}, iw < 0 ? std::int64_t{-1} : line_start + iw);
                        }
                    }
                }
    }

private:
    std::array<TapSources, 3> taps_;
};

// One work item: positions [begin, end) of image n, group `group`.
struct Block {
    std::int64_t image;
    std::int64_t group;
    std::int64_t begin;
    std::int64_t end;
    std::int64_t columns() const { return end - begin; }
};

// The work of one call: (image, group, block of positions) blocks, and one patch matrix of
// `columns` columns per thread. A pass runs `items` work items (blocks, or whole images) on at
// most that many threads, so a small call does not pay for idle threads' scratch.
template <typename T>
class Plan {
public:
    Plan(const Unfolding& unfolding, std::size_t scratch_bytes_per_thread, bool items_are_images = false)
        : u(unfolding),
          columns(conv_blas_block_columns(unfolding.g, sizeof(T), scratch_bytes_per_thread)),
          blocks_per_image((unfolding.positions() + columns - 1) / columns),
          items(u.g.batch * u.g.groups * (items_are_images ? 1 : blocks_per_image)),
          threads(static_cast<int>(std::clamp<std::int64_t>(host_threads(), 1, items))),
          // Allocated before any parallel region, so running out is a bad_alloc the caller turns
          // into OutOfMemory, never an exception inside OpenMP. Uninitialised: every entry is
          // written before it is read.
          patches_(std::make_unique_for_overwrite<T[]>(static_cast<std::size_t>(threads * u.rows() * columns))) {
        keep_blas_single_threaded();
    }

    Block block(std::int64_t item) const {
        const std::int64_t b = item % blocks_per_image;
        const std::int64_t image_group = item / blocks_per_image;
        return {image_group / u.g.groups, image_group % u.g.groups, b * columns,
                std::min(u.positions(), (b + 1) * columns)};
    }
    // Thread `thread`'s patch matrix [rows, columns].
    T* patches(int thread) const { return patches_.get() + static_cast<std::int64_t>(thread) * u.rows() * columns; }

    const Unfolding& u;
    const std::int64_t columns;
    const std::int64_t blocks_per_image;
    const std::int64_t items;
    const int threads;

private:
    std::unique_ptr<T[]> patches_;
};

// Offsets of the tensors' pieces that one block reads or writes.
struct Offsets {
    const ConvGeometry& g;
    // The first input channel of the block's group in its image.
    std::int64_t input(const Block& b) const {
        return (b.image * g.in_channels + b.group * g.in_channels_per_group()) * g.input_spatial();
    }
    // The block's first position in the first output channel of its group: a matrix
    // [C_out / groups, columns] whose rows are P apart.
    std::int64_t output(const Block& b) const {
        return (b.image * g.out_channels + b.group * g.out_channels_per_group()) * g.output_spatial() + b.begin;
    }
    // The group's rows of a weight [C_out, C_in / groups, kernel...]: a [Og, Cg K] matrix.
    std::int64_t weight(std::int64_t group) const {
        return group * g.out_channels_per_group() * g.in_channels_per_group() * g.kernel_spatial();
    }
};

// im2col: patches[(ci, k), p - begin] for the block's group of input channels, from `input`
// at Offsets::input.
template <typename T>
void unfold(const Unfolding& u, const T* input, const Block& b, T* patches) {
    const std::int64_t columns = b.columns();
    for (std::int64_t ci = 0; ci < u.g.in_channels_per_group(); ++ci) {
        const T* plane = input + ci * u.g.input_spatial();
        T* rows = patches + ci * u.taps() * columns - b.begin;
        u.for_each_segment(b.begin, b.end, [&](std::int64_t k, std::int64_t p, std::int64_t count, std::int64_t source) {
            T* to = rows + k * columns + p;
            if (source < 0) {
                std::fill_n(to, count, T(0));
            } else {
                std::copy_n(plane + source, count, to);
            }
        });
    }
}

// col2im: adds every patch entry onto the input element it was read from. Several taps may
// name one element (overlapping windows; reflect, replicate and circular padding); each adds.
template <typename T>
void fold(const Unfolding& u, const T* patches, const Block& b, T* grad_input) {
    const std::int64_t columns = b.columns();
    for (std::int64_t ci = 0; ci < u.g.in_channels_per_group(); ++ci) {
        T* plane = grad_input + ci * u.g.input_spatial();
        const T* rows = patches + ci * u.taps() * columns - b.begin;
        u.for_each_segment(b.begin, b.end, [&](std::int64_t k, std::int64_t p, std::int64_t count, std::int64_t source) {
            if (source < 0) return;
            const T* from = rows + k * columns + p;
            T* to = plane + source;
            for (std::int64_t i = 0; i < count; ++i) to[i] += from[i];
        });
    }
}
}  // namespace

std::int64_t conv_blas_block_columns(const ConvGeometry& g, std::size_t element_size, std::size_t scratch_bytes) {
    const auto per_column = static_cast<std::size_t>(g.in_channels_per_group() * g.kernel_spatial()) * element_size;
    return detail::units_within_budget(per_column, scratch_bytes, g.output_spatial());
}

std::string conv_blas_unsupported_reason(const ConvGeometry& g) {
    const std::int64_t rows = g.in_channels_per_group() * g.kernel_spatial();
    const std::int64_t limit = blas_index_limit();
    if (rows > limit || g.out_channels_per_group() > limit || g.output_spatial() > limit) {
        return detail::concat("cannot run this convolution: its matrix products would have ", rows,
                              " rows of patches (C_in / groups x kernel taps), ", g.out_channels_per_group(),
                              " output channels per group and ", g.output_spatial(),
                              " output positions per image, past the BLAS integer limit ", limit);
    }
    return {};
}

template <typename T>
void conv_forward_blas(const ConvGeometry& g, const T* input, const T* weight, const T* bias, T* output,
                       std::size_t scratch_bytes_per_thread) {
    const Unfolding u(g);
    const Plan<T> plan(u, scratch_bytes_per_thread);
    const Offsets at{g};
    const std::int64_t out_per_group = g.out_channels_per_group();
    const std::int64_t positions = u.positions();
    parallel_for(plan.items, plan.threads, [&](std::int64_t item, int thread) {
        const Block b = plan.block(item);
        T* patches = plan.patches(thread);
        unfold(u, input + at.input(b), b, patches);
        T* y = output + at.output(b);
        blas_gemm<T>(false, false, out_per_group, b.columns(), u.rows(), weight + at.weight(b.group), u.rows(),
                     patches, b.columns(), T(0), y, positions);
        if (bias == nullptr) return;
        for (std::int64_t co = 0; co < out_per_group; ++co) {
            const T value = bias[b.group * out_per_group + co];
            for (std::int64_t p = 0; p < b.columns(); ++p) y[co * positions + p] += value;
        }
    });
}

template <typename T>
void conv_backward_data_blas(const ConvGeometry& g, const T* grad_output, const T* weight, const T* bias,
                             T* grad_input, std::size_t scratch_bytes_per_thread) {
    const Unfolding u(g);
    // One item per (image, group): the blocks of an image fold onto overlapping input elements,
    // so one thread takes them all, in order. Different groups write different channels.
    const Plan<T> plan(u, scratch_bytes_per_thread, true);
    const Offsets at{g};
    const std::int64_t in_per_group = g.in_channels_per_group();
    parallel_for(plan.items, plan.threads, [&](std::int64_t item, int thread) {
        T* patches = plan.patches(thread);
        T* dx = grad_input + at.input(Block{item / g.groups, item % g.groups, 0, 0});
        // Every element starts at its bias (a transposed convolution's) or zero; the folds add.
        for (std::int64_t ci = 0; ci < in_per_group; ++ci) {
            const T start = bias != nullptr ? bias[item % g.groups * in_per_group + ci] : T(0);
            std::fill_n(dx + ci * g.input_spatial(), g.input_spatial(), start);
        }
        for (std::int64_t block = 0; block < plan.blocks_per_image; ++block) {
            const Block b = plan.block(item * plan.blocks_per_image + block);
            blas_gemm<T>(true, false, u.rows(), b.columns(), g.out_channels_per_group(), weight + at.weight(b.group),
                         u.rows(), grad_output + at.output(b), u.positions(), T(0), patches, b.columns());
            fold(u, patches, b, dx);
        }
    });
}

template <typename T>
void conv_backward_filter_blas(const ConvGeometry& g, const T* grad_output, const T* input, T* grad_weight,
                               std::size_t scratch_bytes_per_thread) {
    const Unfolding u(g);
    const Plan<T> plan(u, scratch_bytes_per_thread);
    const Offsets at{g};
    // Each thread sums its items' products into its own weight-sized accumulator; the
    // accumulators are then added in thread order. parallel_for gives each thread the same
    // items every call, so the result is the same for the same thread count.
    const std::int64_t weights = g.out_channels * u.rows();
    std::vector<T> partial(static_cast<std::size_t>(plan.threads * weights), T(0));
    parallel_for(plan.items, plan.threads, [&](std::int64_t item, int thread) {
        const Block b = plan.block(item);
        T* patches = plan.patches(thread);
        unfold(u, input + at.input(b), b, patches);
        T* dw = partial.data() + thread * weights + at.weight(b.group);
        blas_gemm<T>(false, true, g.out_channels_per_group(), u.rows(), b.columns(), grad_output + at.output(b),
                     u.positions(), patches, b.columns(), T(1), dw, u.rows());
    });
    // A weight-sized sum per thread: small next to the products, not worth a parallel loop.
    for (std::int64_t i = 0; i < weights; ++i) {
        T sum = partial[static_cast<std::size_t>(i)];
        for (int t = 1; t < plan.threads; ++t) sum += partial[static_cast<std::size_t>(t * weights + i)];
        grad_weight[i] = sum;
    }
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
// `host.blas`: convolution as unfolded patches times an OpenBLAS product. The bias gradient is
// a plain sum with no matrix product in it: the reference's.
class HostBlasConv final : public ConvVariant {
public:
    const char* name() const override { return "host.blas"; }
    DeviceType device_type() const override { return DeviceType::Host; }
    std::string unsupported_reason(const ConvProblem& p, ConvPass) const override {
        if (!p.all_contiguous()) return "runs contiguous layouts only";
        return host::conv_blas_unsupported_reason(p.geometry);
    }
    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView, Stream) const override {
        const ConvGeometry& g = p.geometry;
        dispatch_dtype(p.dtype(), [&](auto tag) {
            using T = decltype(tag);
            const auto in = [](const void* q) { return static_cast<const T*>(q); };
            T* out = static_cast<T*>(o.out);
            switch (pass) {
                case ConvPass::Forward: host::conv_forward_blas<T>(g, in(o.x), in(o.w), in(o.bias), out); break;
                case ConvPass::BackwardData:
                    host::conv_backward_data_blas<T>(g, in(o.dy), in(o.w), in(o.bias), out);
                    break;
                case ConvPass::BackwardFilter: host::conv_backward_filter_blas<T>(g, in(o.dy), in(o.x), out); break;
                case ConvPass::BackwardBias:
                    host::conv_backward_bias_reference<T>(p.bias_grad.batch, p.bias_grad.channels, p.bias_grad.spatial,
                                                          detail::Layout::Contiguous, in(o.dy), out);
                    break;
            }
        });
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(HostBlasConv);

}  // namespace convkit::detail
