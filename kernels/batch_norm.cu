// Batch-normalization kernels, for every float dtype (bfloat16/float16 stored, computed in
// float32) and both memory formats (BatchNormGeometry::channels_last).
//
// Per-channel reductions (the statistics, the backward sums) are two-level and one pass over the
// data: blocks sum chunks of each channel's values into double partial sums, laid out so that
// the reads coalesce in either layout (contiguous: a block's threads walk one channel's runs;
// channels-last: each thread reads a 16-byte pack of adjacent channels of one row where the
// channels are a multiple of the pack and the buffers aligned, else one element, the same kernel
// with packs of one), then one thread per channel adds
// its chunks in order. Both orders are fixed by the shape: deterministic run to run. The
// variance comes from sums of (x - shift) and (x - shift)^2 with the channel's first value as the
// shift (the shifted-data algorithm), so a large mean does not cancel the spread away and the
// data is read once, not twice. The chunks split each channel so that small channel counts
// still fill the GPU (a block per channel left most SMs idle below ~132 channels).
//
// Per-element passes are grid-stride loops in float (double for float64), with the subtraction
// of the (double) mean done in double (ops/batch_norm_math.h), moving 16-byte packs of elements
// where the layout and alignment allow (kernels/element_pack.cuh); the channel of each element
// is advanced incrementally, not divided out per element.
#include <algorithm>
#include <type_traits>

#include "backend_api/unary_math.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "kernels/batch_norm.h"
#include "kernels/element_pack.cuh"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::BatchNormGeometry;

template <typename T>
using Compute = ComputeType<T>;

// ---- the reductions' chunks ------------------------------------------------------------------

constexpr int kLaneChannels = 32;  // channels-last: the most packs (or channels) a block reads across
// Each chunk holds at least this many values of its channel (so a block's start is amortised)
// and a channel has at most kMaxChunks chunks (so the second level stays short); within those
// bounds, enough chunks for about kTargetBlocks blocks (four per SM of a 132-SM H100).
constexpr std::int64_t kMinValuesPerChunk = 512;
constexpr std::int64_t kMaxChunks = 256;
constexpr std::int64_t kTargetBlocks = 528;

struct ChunkPlan {
    std::int64_t chunks = 1;
    std::int64_t per_chunk = 1;  // values of a channel per chunk (the last may hold fewer)
};

std::int64_t channel_blocks(const BatchNormGeometry& g) {
    return g.channels_last ? (g.channels + kLaneChannels - 1) / kLaneChannels : g.channels;
}

ChunkPlan chunk_plan(const BatchNormGeometry& g) {
    const std::int64_t values = g.per_channel();
    const std::int64_t wanted = (kTargetBlocks + channel_blocks(g) - 1) / channel_blocks(g);
    const std::int64_t most = (values + kMinValuesPerChunk - 1) / kMinValuesPerChunk;
    ChunkPlan plan;
    plan.chunks = std::clamp<std::int64_t>(std::min(wanted, most), 1, kMaxChunks);
    plan.per_chunk = std::max<std::int64_t>((values + plan.chunks - 1) / plan.chunks, 1);
    return plan;
}

template <typename T>
__device__ Compute<T> parameter(const T* values, std::int64_t c, Compute<T> absent) {
    return values == nullptr ? absent : static_cast<Compute<T>>(values[c]);
}

template <typename C>
__device__ C inverse_std(double var, double eps) {
    return C(1) / sqrt(static_cast<C>(var) + static_cast<C>(eps));
}

// What the per-element arithmetic needs of one channel: x_hat = (x - mean) * invstd and
// y = x_hat * weight + bias, exactly as every pass computes them (a fused ReLU's backward
// recomputes the forward's y, and so its sign, from x this way). A thread computes it once for
// each channel it holds rather than once a value: the square root, the division and four loads
// a value had made the forward about 140 SASS instructions a bfloat16 value, several times
// what its bytes allow (docs/benchmarks.md, "Batch norm's per-channel constants").
template <typename T>
struct ChannelAffine {
    using C = Compute<T>;
    double mean;
    C invstd;
    C weight;
    C bias;

    __device__ static ChannelAffine of(std::int64_t c, const double* mean, const double* var, double eps,
                                       const T* weight, const T* bias) {
        return {mean[c], inverse_std<C>(var[c], eps), parameter(weight, c, C(1)), parameter(bias, c, C(0))};
    }
    __device__ C normalized(C x) const { return detail::batch_norm_normalized<C>(x, mean, invstd); }
    __device__ C output(C x_hat) const { return detail::batch_norm_output<C>(x_hat, weight, bias); }
};

// dy through a ReLU whose input was y (relu's own gradient rule).
template <typename C>
__device__ C relu_gradient(C dy, C y) {
    using detail::UnaryOp;
    return detail::unary_gradient<UnaryOp::Relu>(dy, detail::unary_value<UnaryOp::Relu>(y, {}), {});
}

// A fused ReLU as the backward kernels read it: whether there is one, and the affine
// parameters that recompute its input y.
template <typename T>
struct ReluRecompute {
    bool enabled;
    const T* weight;
    const T* bias;
};

// What the statistics sum per value: x - shift and its square, shift the channel's first value.
// A reduction's thread takes channel(g, c) once for each channel it sums (Channel: what the sums
// need of the channel, here the shift); add() takes one value at an offset; for Width values of
// adjacent channels (channels-last), load_pack() reads them with one 16-byte access at an offset
// that is a multiple of Width and add_pack() sums what it read (apart, so that a thread can have
// several rows' loads in flight before it adds the first: kRowsInFlight).
template <typename T>
struct StatisticsTerms {
    using Element = T;
    template <int Width>
    using Pack = ElementPack<T, Width>;
    // Rows of packs a channels-last thread loads before adding them. Four take the bf16 kernel
    // from 71 registers to 93, 2 blocks of 256 an SM instead of 3, but 32 KiB of loads in flight
    // an SM instead of 12 (the copy rate needs about 18).
    static constexpr int kRowsInFlight = 4;
    using Channel = double;  // the shift
    const T* x;
    __device__ Channel channel(const BatchNormGeometry& g, std::int64_t c) const {
        return static_cast<double>(x[detail::batch_norm_offset(g, c, 0)]);
    }
    __device__ static void accumulate(T value, double shift, double& first, double& second) {
        const double deviation = static_cast<double>(value) - shift;
        first += deviation;
        second += deviation * deviation;
    }
    __device__ void add(std::int64_t offset, const Channel& shift, double& first, double& second) const {
        accumulate(x[offset], shift, first, second);
    }
    template <int Width>
    __device__ Pack<Width> load_pack(std::int64_t offset) const {
        return kernels::load_pack<Width>(x, offset / Width);
    }
    template <int Width>
    __device__ void add_pack(const Pack<Width>& values, const Channel (&shift)[Width], double (&first)[Width],
                             double (&second)[Width]) const {
        for (int lane = 0; lane < Width; ++lane) accumulate(values.value[lane], shift[lane], first[lane], second[lane]);
    }
    bool pack_aligned_buffers() const { return pack_aligned<T, kPackWidth<T>>(x); }
};

// What the backward reduction sums per value: dy and dy * (x - mean), dy taken through the
// fused ReLU when there is one.
template <typename T>
struct GradientTerms {
    using Element = T;
    template <int Width>
    struct Pack {
        ElementPack<T, Width> x, dy;
    };
    // Two loads a row already: the bf16 kernel holds 124 registers, 2 blocks of 256 an SM, and
    // a second row's packs would take it past 128.
    static constexpr int kRowsInFlight = 1;
    // The mean (the sums' shift) and, for a fused ReLU, what recomputes its input y.
    using Channel = ChannelAffine<T>;
    const T* dy;
    const T* x;
    const double* mean;
    const double* var;  // with eps, read only to recompute a fused ReLU's input
    double eps;
    ReluRecompute<T> relu;
    __device__ Channel channel(const BatchNormGeometry&, std::int64_t c) const {
        using C = Compute<T>;
        // Without a fused ReLU the sums need the mean alone: no square root, division or loads.
        return relu.enabled ? Channel::of(c, mean, var, eps, relu.weight, relu.bias)
                            : Channel{mean[c], C(1), C(1), C(0)};
    }
    __device__ void accumulate(T x_value, T dy_value, const Channel& k, double& first, double& second) const {
        using C = Compute<T>;
        const C value = static_cast<C>(x_value);
        double d = static_cast<double>(dy_value);
        if (relu.enabled)
            d = static_cast<double>(relu_gradient(static_cast<C>(dy_value), k.output(k.normalized(value))));
        first += d;
        second += d * (static_cast<double>(value) - k.mean);
    }
    __device__ void add(std::int64_t offset, const Channel& k, double& first, double& second) const {
        accumulate(x[offset], dy[offset], k, first, second);
    }
    // Channels c .. c + Width - 1 of one row (channels-last).
    template <int Width>
    __device__ Pack<Width> load_pack(std::int64_t offset) const {
        return {kernels::load_pack<Width>(x, offset / Width), kernels::load_pack<Width>(dy, offset / Width)};
    }
    template <int Width>
    __device__ void add_pack(const Pack<Width>& values, const Channel (&k)[Width], double (&first)[Width],
                             double (&second)[Width]) const {
        for (int lane = 0; lane < Width; ++lane) {
            accumulate(values.x.value[lane], values.dy.value[lane], k[lane], first[lane], second[lane]);
        }
    }
    bool pack_aligned_buffers() const { return pack_aligned<T, kPackWidth<T>>(x, dy); }
};

// partial[(chunk * channels + c) * 2 + k]: the chunk's two sums of channel c.
__device__ inline void store_partial(double* partial, std::int64_t channels, std::int64_t chunk, std::int64_t c,
                                     double first, double second) {
    partial[(chunk * channels + c) * 2] = first;
    partial[(chunk * channels + c) * 2 + 1] = second;
}

// Contiguous: a block of kThreadsPerBlock threads sums one chunk of one channel (blocks stride
// over channels), its threads walking the chunk's values in order, so they read the runs of
// `spatial` values coalesced; the value's image and position advance without a division. Where
// the runs are a multiple of Width values and the buffers aligned, a thread reads a 16-byte pack
// of Width positions (`per_chunk` and the positions then count packs) and sums each lane apart,
// the lanes added in order at the end: 8 bf16 values an access instead of one.
template <typename Terms, int Width>
__global__ void channel_partials_contiguous_kernel(BatchNormGeometry g, std::int64_t per_chunk, Terms terms,
                                                   double* partial) {
    // Packs of a channel's run; at least 1, as the steps divide by it: an empty run (spatial 0)
    // has no values (`last` is 0), and its chunks store zeros.
    const std::int64_t run = std::max<std::int64_t>(g.spatial / Width, 1);
    const std::int64_t first = std::int64_t{blockIdx.y} * per_chunk;
    const std::int64_t last = std::min(g.per_channel() / Width, first + per_chunk);
    const std::int64_t image_step = kThreadsPerBlock / run;
    const std::int64_t position_step = kThreadsPerBlock % run;
    for (std::int64_t c = blockIdx.x; c < g.channels; c += gridDim.x) {
        typename Terms::Channel channel[Width];
        channel[0] = terms.channel(g, c);
        for (int lane = 1; lane < Width; ++lane) channel[lane] = channel[0];  // one channel in every lane
        double lane_first[Width] = {};
        double lane_second[Width] = {};
        std::int64_t t = first + threadIdx.x;
        std::int64_t image = t / run;
        std::int64_t position = t % run;
        for (; t < last; t += kThreadsPerBlock) {
            const std::int64_t offset = (image * g.channels + c) * g.spatial + position * Width;
            if constexpr (Width == 1) {
                terms.add(offset, channel[0], lane_first[0], lane_second[0]);
            } else {
                terms.template add_pack<Width>(terms.template load_pack<Width>(offset), channel, lane_first,
                                               lane_second);
            }
            image += image_step;
            position += position_step;
            if (position >= run) {
                position -= run;
                ++image;
            }
        }
        double sum_first = 0;
        double sum_second = 0;
        for (int lane = 0; lane < Width; ++lane) {
            sum_first += lane_first[lane];
            sum_second += lane_second[lane];
        }
        sum_first = block_sum(sum_first);
        sum_second = block_sum(sum_second);
        if (threadIdx.x == 0) store_partial(partial, g.channels, blockIdx.y, c, sum_first, sum_second);
    }
}

// Channels-last: a thread reads Width adjacent channels of a row per access (a 16-byte pack where
// the channels are a multiple of it and the buffers aligned, else Width 1), a block is
// blockDim.x packs across (a tile of blockDim.x * Width channels; blocks stride over tiles) by
// blockDim.y row lanes, blockDim.x * blockDim.y = kThreadsPerBlock, so a warp reads adjacent
// channels of a row. The row lanes' sums are then added in row-lane order in shared memory,
// every thread taking some of the tile's channel sums.
template <typename Terms, int Width>
__global__ void channel_partials_channels_last_kernel(BatchNormGeometry g, std::int64_t per_chunk, Terms terms,
                                                      double* partial) {
    __shared__ double lanes[2][kThreadsPerBlock * Width];  // [sum][row lane][channel of the tile]
    const std::int64_t tile_channels = std::int64_t{blockDim.x} * Width;
    const std::int64_t first = std::int64_t{blockIdx.y} * per_chunk;
    const std::int64_t last = std::min(g.per_channel(), first + per_chunk);
    const int thread = threadIdx.y * blockDim.x + threadIdx.x;
    for (std::int64_t tile = blockIdx.x; tile * tile_channels < g.channels; tile += gridDim.x) {
        const std::int64_t c = tile * tile_channels + std::int64_t{threadIdx.x} * Width;
        double sum_first[Width] = {};
        double sum_second[Width] = {};
        if (c < g.channels) {
            typename Terms::Channel channel[Width];
            for (int lane = 0; lane < Width; ++lane) channel[lane] = terms.channel(g, c + lane);
            // Terms::kRowsInFlight rows loaded, then added in row order (the order of one row
            // at a time, so the sums are the same bits).
            constexpr int rows_in_flight = Terms::kRowsInFlight;
            const std::int64_t row_step = blockDim.y;
            for (std::int64_t row = first + threadIdx.y; row < last; row += row_step * rows_in_flight) {
                typename Terms::template Pack<Width> loaded[rows_in_flight]{};
                bool present[rows_in_flight];
                CONVKIT_UNROLL
                for (int k = 0; k < rows_in_flight; ++k) {
                    const std::int64_t r = row + k * row_step;
                    present[k] = r < last;
                    if (present[k]) loaded[k] = terms.template load_pack<Width>(r * g.channels + c);
                }
                CONVKIT_UNROLL
                for (int k = 0; k < rows_in_flight; ++k) {
                    if (present[k]) terms.template add_pack<Width>(loaded[k], channel, sum_first, sum_second);
                }
            }
        }
        for (int lane = 0; lane < Width; ++lane) {
            lanes[0][thread * Width + lane] = sum_first[lane];
            lanes[1][thread * Width + lane] = sum_second[lane];
        }
        __syncthreads();
        for (std::int64_t j = thread; j < tile_channels; j += kThreadsPerBlock) {
            const std::int64_t channel = tile * tile_channels + j;
            if (channel >= g.channels) break;
            double total_first = 0;
            double total_second = 0;
            for (unsigned row_lane = 0; row_lane < blockDim.y; ++row_lane) {
                total_first += lanes[0][row_lane * tile_channels + j];
                total_second += lanes[1][row_lane * tile_channels + j];
            }
            store_partial(partial, g.channels, blockIdx.y, channel, total_first, total_second);
        }
        __syncthreads();  // the lanes are rewritten for the next tile
    }
}

template <typename Terms, int Width>
void launch_channel_partials_channels_last(const BatchNormGeometry& g, const ChunkPlan& plan, const Terms& terms,
                                           double* partial, cudaStream_t stream) {
    const unsigned across = packs_across(g.channels / Width, kLaneChannels);
    const std::int64_t tiles = (g.channels + across * Width - 1) / (across * Width);
    launch<channel_partials_channels_last_kernel<Terms, Width>>(
        {dim3(grid_stride_blocks(tiles), static_cast<unsigned>(plan.chunks)), dim3(across, kThreadsPerBlock / across)},
        stream, g, plan.per_chunk, terms, partial);
}

// The first level of a per-channel reduction: plan.chunks x channels pairs of double sums in
// `partial`, by the kernel that reads the geometry's layout coalesced.
template <typename Terms>
void launch_channel_partials(const BatchNormGeometry& g, const ChunkPlan& plan, const Terms& terms, double* partial,
                             cudaStream_t stream) {
    constexpr int width = kPackWidth<typename Terms::Element>;
    if (g.channels_last && g.channels % width == 0 && terms.pack_aligned_buffers()) {
        launch_channel_partials_channels_last<Terms, width>(g, plan, terms, partial, stream);
    } else if (g.channels_last) {
        launch_channel_partials_channels_last<Terms, 1>(g, plan, terms, partial, stream);
    } else {
        const dim3 grid(grid_stride_blocks(channel_blocks(g)), static_cast<unsigned>(plan.chunks));
        if (g.spatial % width == 0 && terms.pack_aligned_buffers()) {
            // The plan's chunks in whole packs (a last chunk may be left empty: it stores zeros).
            const std::int64_t packs_per_chunk = (plan.per_chunk + width - 1) / width;
            launch<channel_partials_contiguous_kernel<Terms, width>>({grid, dim3(kThreadsPerBlock)}, stream, g,
                                                                     packs_per_chunk, terms, partial);
        } else {
            launch<channel_partials_contiguous_kernel<Terms, 1>>({grid, dim3(kThreadsPerBlock)}, stream, g,
                                                                 plan.per_chunk, terms, partial);
        }
    }
}

// The second level: channel c's two sums over its chunks, added in chunk order.
struct ChannelSums {
    double first = 0;
    double second = 0;
};
__device__ inline ChannelSums chunk_totals(const double* partial, std::int64_t chunks, std::int64_t channels,
                                           std::int64_t c) {
    ChannelSums sums;
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
        sums.first += partial[(chunk * channels + c) * 2];
        sums.second += partial[(chunk * channels + c) * 2 + 1];
    }
    return sums;
}

template <typename T>
__global__ void statistics_finish_kernel(BatchNormGeometry g, std::int64_t chunks, const double* partial, const T* x,
                                         double* mean, double* var, detail::RunningStatistics running) {
    const std::int64_t m = g.per_channel();
    for (std::int64_t c = global_thread_index(); c < g.channels; c += global_thread_count()) {
        const ChannelSums sums = chunk_totals(partial, chunks, g.channels, c);
        const double shift = StatisticsTerms<T>{x}.channel(g, c);
        const double mean_shifted = sums.first / static_cast<double>(m);
        const double biased = std::max(sums.second / static_cast<double>(m) - mean_shifted * mean_shifted, 0.0);
        const double mu = shift + mean_shifted;
        mean[c] = mu;
        var[c] = biased;
        if (running.updated_mean != nullptr) {
            const auto* running_mean = static_cast<const T*>(running.mean);
            const auto* running_var = static_cast<const T*>(running.var);
            static_cast<T*>(running.updated_mean)[c] =
                T(detail::running_average(static_cast<double>(running_mean[c]), mu, running.momentum));
            static_cast<T*>(running.updated_var)[c] = T(detail::running_average(
                static_cast<double>(running_var[c]), detail::unbiased_variance(biased, m), running.momentum));
        }
    }
}

__global__ void gradient_sums_finish_kernel(std::int64_t channels, std::int64_t chunks, const double* partial,
                                            const double* var, double eps, double* sum_dy, double* sum_dy_x_hat) {
    for (std::int64_t c = global_thread_index(); c < channels; c += global_thread_count()) {
        const ChannelSums sums = chunk_totals(partial, chunks, channels, c);
        sum_dy[c] = sums.first;
        sum_dy_x_hat[c] = sums.second / sqrt(var[c] + eps);
    }
}

// ---- per-element passes ----------------------------------------------------------------------

// The channel of a grid-stride loop's element, advanced by the loop's stride without a division
// per element: `run` is the element's place in its channel's run of g.channel_run() values.
struct ChannelCursor {
    std::int64_t run = 0;
    std::int64_t channel = 0;
    std::int64_t run_step = 0;
    std::int64_t channel_step = 0;

    __device__ ChannelCursor(const BatchNormGeometry& g, std::int64_t index, std::int64_t stride)
        : run(index % g.channel_run()),
          channel((index / g.channel_run()) % g.channels),
          run_step(stride % g.channel_run()),
          channel_step((stride / g.channel_run()) % g.channels) {}

    __device__ void advance(const BatchNormGeometry& g) {
        run += run_step;
        const bool carry = run >= g.channel_run();
        if (carry) run -= g.channel_run();
        channel += channel_step + (carry ? 1 : 0);
        if (channel >= g.channels) channel -= g.channels;
    }
};

// Calls finish(p, load(p), channel) for each pack p of Width elements this thread owns,
// channel(lane) being constants_of(c) of the channel c of the pack's lane `lane` (a pack lies
// within one channel's run when contiguous, and spans Width adjacent channels when channels-last).
//
// Channels-last packs keep their channels: the threads form row lanes of `columns` =
// channels / Width threads, each thread taking one pack column (the same Width channels) of every
// row_lanes-th row, so it computes its lanes' constants once, and a warp still reads adjacent
// packs of a row. A thread loads two rows' packs before it finishes the first: at the 72-110
// registers these kernels hold, 2-3 blocks of 256 threads an SM keep 8-12 KiB of one pack each
// in flight, where the copy rate needs about 18. Otherwise (contiguous; single elements; a grid
// with fewer threads than a row has packs) a grid-stride loop computes the constants once a pack.
template <typename Constants, int Lanes>
struct LaneConstants {
    Constants lanes[Lanes];
    // Lane `lane`'s; one entry serves every lane of a pack within one channel.
    __device__ const Constants& operator()(int lane) const { return lanes[Lanes == 1 ? 0 : lane]; }
};

// The constants of channels first_channel .. first_channel + Width - 1, a pack's lanes.
template <int Width, typename ConstantsOf>
__device__ auto lane_constants(ConstantsOf& constants_of, std::int64_t first_channel) {
    LaneConstants<decltype(constants_of(std::int64_t{0})), Width> channel;
    for (int lane = 0; lane < Width; ++lane) channel.lanes[lane] = constants_of(first_channel + lane);
    return channel;
}

// Channels-last packs by pack columns (threads >= columns; see above).
template <int Width, typename ConstantsOf, typename Load, typename Finish>
__device__ void for_each_pack_in_columns(const BatchNormGeometry& g, ConstantsOf&& constants_of, Load&& load,
                                         Finish&& finish) {
    const std::int64_t packs = g.count() / Width;
    const std::int64_t columns = g.channels / Width;
    const std::int64_t step = global_thread_count() / columns * columns;  // whole rows of packs
    const std::int64_t first = global_thread_index();
    if (first >= step) return;
    const auto channel = lane_constants<Width>(constants_of, first % columns * Width);
    std::int64_t p = first;
    for (; p + step < packs; p += 2 * step) {
        const auto loaded = load(p);
        const auto next = load(p + step);  // (a different pack: safe when y is x)
        finish(p, loaded, channel);
        finish(p + step, next, channel);
    }
    if (p < packs) finish(p, load(p), channel);
}

template <int Width, typename ConstantsOf, typename Load, typename Finish>
__device__ void for_each_pack_with_constants(const BatchNormGeometry& g, ConstantsOf&& constants_of, Load&& load,
                                             Finish&& finish) {
    using Constants = decltype(constants_of(std::int64_t{0}));
    const std::int64_t packs = g.count() / Width;
    const std::int64_t threads = global_thread_count();
    if (Width > 1 && g.channels_last && threads >= g.channels / Width) {
        for_each_pack_in_columns<Width>(g, constants_of, load, finish);
        return;
    }
    ChannelCursor at(g, global_thread_index() * Width, threads * Width);
    for (std::int64_t p = global_thread_index(); p < packs; p += threads, at.advance(g)) {
        if (Width > 1 && g.channels_last) {
            finish(p, load(p), lane_constants<Width>(constants_of, at.channel));
        } else {
            finish(p, load(p), LaneConstants<Constants, 1>{{constants_of(at.channel)}});
        }
    }
}

// Width elements per step (one 16-byte access where pack_width_fits, else 1).
template <typename T, int Width>
__global__ void forward_kernel(BatchNormGeometry g, const T* x, const double* mean, const double* var, const T* weight,
                               const T* bias, double eps, bool relu, T* y) {
    using C = Compute<T>;
    const auto constants_of = [&](std::int64_t c) { return ChannelAffine<T>::of(c, mean, var, eps, weight, bias); };
    const auto load = [&](std::int64_t p) { return load_pack<Width>(x, p); };
    const auto finish = [&](std::int64_t p, const ElementPack<T, Width>& in, const auto& channel) {
        ElementPack<T, Width> out;
        for (int lane = 0; lane < Width; ++lane) {
            const ChannelAffine<T>& k = channel(lane);
            const C value = k.output(k.normalized(static_cast<C>(in.value[lane])));
            out.value[lane] = T(relu ? detail::unary_value<detail::UnaryOp::Relu>(value, {}) : value);
        }
        store_pack<Width>(y, p, out);
    };
    for_each_pack_with_constants<Width>(g, constants_of, load, finish);
}

// What backward_input_kernel needs of a channel: the forward's affine map (for a fused ReLU's
// input) and the gradient's own terms.
template <typename T>
struct InputGradientChannel {
    using C = Compute<T>;
    ChannelAffine<T> relu_affine;  // mean, invstd, and the fused ReLU's weight and bias
    C weight_invstd;
    C mean_dy;
    C mean_dy_x_hat;
};

template <typename T, int Width>
__global__ void backward_input_kernel(BatchNormGeometry g, const T* dy, const T* x, const double* mean,
                                      const double* var, const T* weight, const double* sum_dy,
                                      const double* sum_dy_x_hat, double eps, double inverse_count,
                                      bool batch_statistics, ReluRecompute<T> relu, T* dx) {
    using C = Compute<T>;
    const auto constants_of = [&](std::int64_t c) {
        const ChannelAffine<T> affine = ChannelAffine<T>::of(c, mean, var, eps, relu.weight, relu.bias);
        return InputGradientChannel<T>{affine, parameter(weight, c, C(1)) * affine.invstd,
                                       batch_statistics ? static_cast<C>(sum_dy[c] * inverse_count) : C(0),
                                       batch_statistics ? static_cast<C>(sum_dy_x_hat[c] * inverse_count) : C(0)};
    };
    struct Loaded {
        ElementPack<T, Width> x, dy;
    };
    const auto load = [&](std::int64_t p) { return Loaded{load_pack<Width>(x, p), load_pack<Width>(dy, p)}; };
    const auto finish = [&](std::int64_t p, const Loaded& in, const auto& channel) {
        ElementPack<T, Width> out;
        for (int lane = 0; lane < Width; ++lane) {
            const InputGradientChannel<T>& k = channel(lane);
            const C x_hat = k.relu_affine.normalized(static_cast<C>(in.x.value[lane]));
            const C dy_in = static_cast<C>(in.dy.value[lane]);
            const C dy_value = relu.enabled ? relu_gradient(dy_in, k.relu_affine.output(x_hat)) : dy_in;
            out.value[lane] = T(detail::batch_norm_input_gradient<C>(dy_value, x_hat, k.weight_invstd, k.mean_dy,
                                                                     k.mean_dy_x_hat, batch_statistics));
        }
        store_pack<Width>(dx, p, out);
    };
    for_each_pack_with_constants<Width>(g, constants_of, load, finish);
}

// Whether the per-element passes can move 16-byte packs of T: a pack must stay within one
// channel's run (contiguous) or one row's channels (channels-last), and every buffer must be
// aligned to it.
template <typename T, typename... Pointers>
bool pack_width_fits(const BatchNormGeometry& g, const Pointers*... pointers) {
    constexpr int width = kPackWidth<T>;
    const std::int64_t along = g.channels_last ? g.channels : g.spatial;
    return along % width == 0 && pack_aligned<T, width>(pointers...);
}

// Packs (or single elements) a per-element thread takes, at least: a thread computes its
// channels' constants once for all of them (channels-last packs), so one pack a thread would
// leave those computations as many as the values.
constexpr std::int64_t kPacksPerThread = 8;

unsigned per_element_blocks(std::int64_t packs) {
    return grid_stride_blocks((packs + kThreadsPerBlock * kPacksPerThread - 1) / (kThreadsPerBlock * kPacksPerThread));
}

// Launches Packed over the packs of Width elements when `packed`, else Single over the elements.
template <auto Packed, auto Single, int Width, typename... Args>
void launch_per_element(const BatchNormGeometry& g, bool packed, cudaStream_t stream, Args... args) {
    if (packed) {
        launch<Packed>({per_element_blocks(g.count() / Width), kThreadsPerBlock}, stream, g, args...);
    } else {
        launch<Single>({per_element_blocks(g.count()), kThreadsPerBlock}, stream, g, args...);
    }
}

template <typename T>
ReluRecompute<T> relu_recompute(const detail::FusedRelu& relu) {
    return {relu.enabled, static_cast<const T*>(relu.weight), static_cast<const T*>(relu.bias)};
}

// Runs launch_typed(T{}, stream) for the dtype on the stream's device.
template <typename Launch>
void on_stream_for_dtype(const char* op, DType dtype, Stream stream, Launch&& launch_typed) {
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_storage_types(op, dtype, [&](auto tag) { launch_typed(tag, detail::to_cuda(stream)); });
}

// Scratch for the partial sums, released when the caller returns: the caching allocator reuses
// it only behind this stream's work.
std::shared_ptr<void> partial_sums_scratch(const BatchNormGeometry& g, const ChunkPlan& plan, Stream stream) {
    return detail::allocate_cuda(static_cast<std::size_t>(plan.chunks * g.channels * 2) * sizeof(double), stream);
}
}  // namespace

void batch_norm_statistics(const BatchNormGeometry& g, DType dtype, const void* x, double* mean, double* var,
                           const detail::RunningStatistics& running, Stream stream) {
    if (g.channels == 0) return;
    const ChunkPlan plan = chunk_plan(g);
    const std::shared_ptr<void> scratch = partial_sums_scratch(g, plan, stream);
    auto* partial = static_cast<double*>(scratch.get());
    on_stream_for_dtype("batch_norm_statistics", dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        const auto* values = static_cast<const T*>(x);
        launch_channel_partials(g, plan, StatisticsTerms<T>{values}, partial, s);
        launch<statistics_finish_kernel<T>>({grid_for(g.channels), kThreadsPerBlock}, s, g, plan.chunks, partial,
                                            values, mean, var, running);
    });
}

void batch_norm_forward(const BatchNormGeometry& g, DType dtype, const void* x, const double* mean, const double* var,
                        const void* weight, const void* bias, double eps, void* y, Stream stream, bool relu) {
    if (g.count() == 0) return;
    on_stream_for_dtype("batch_norm_forward", dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        const auto* in = static_cast<const T*>(x);
        auto* out = static_cast<T*>(y);
        constexpr int width = kPackWidth<T>;
        launch_per_element<forward_kernel<T, width>, forward_kernel<T, 1>, width>(
            g, pack_width_fits<T>(g, in, out), s, in, mean, var, static_cast<const T*>(weight),
            static_cast<const T*>(bias), eps, relu, out);
    });
}

void batch_norm_backward_reduce(const BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                                const double* mean, const double* var, double eps, double* sum_dy, double* sum_dy_x_hat,
                                Stream stream, const detail::FusedRelu& relu) {
    if (g.channels == 0) return;
    const ChunkPlan plan = chunk_plan(g);
    const std::shared_ptr<void> scratch = partial_sums_scratch(g, plan, stream);
    auto* partial = static_cast<double*>(scratch.get());
    on_stream_for_dtype("batch_norm_backward_reduce", dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        const GradientTerms<T> terms{
            static_cast<const T*>(grad_output), static_cast<const T*>(x), mean, var, eps, relu_recompute<T>(relu)};
        launch_channel_partials(g, plan, terms, partial, s);
        launch<gradient_sums_finish_kernel>({grid_for(g.channels), kThreadsPerBlock}, s, g.channels, plan.chunks,
                                            partial, var, eps, sum_dy, sum_dy_x_hat);
    });
}

void batch_norm_backward_input(const BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                               const double* mean, const double* var, const void* weight, const double* sum_dy,
                               const double* sum_dy_x_hat, double eps, bool batch_statistics, void* grad_input,
                               Stream stream, const detail::FusedRelu& relu) {
    if (g.count() == 0) return;
    const double inverse_count = 1.0 / static_cast<double>(g.per_channel());
    on_stream_for_dtype("batch_norm_backward_input", dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        const auto* dy = static_cast<const T*>(grad_output);
        const auto* in = static_cast<const T*>(x);
        auto* dx = static_cast<T*>(grad_input);
        constexpr int width = kPackWidth<T>;
        launch_per_element<backward_input_kernel<T, width>, backward_input_kernel<T, 1>, width>(
            g, pack_width_fits<T>(g, dy, in, dx), s, dy, in, mean, var, static_cast<const T*>(weight), sum_dy,
            sum_dy_x_hat, eps, inverse_count, batch_statistics, relu_recompute<T>(relu), dx);
    });
}

CONVKIT_KERNELS_END
