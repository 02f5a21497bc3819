// Sum and max reductions. One output: a grid reduction in two launches (blocks reduce strided
// slices to partials, one block reduces the partials), the project's own so that every kernel
// also runs in the emulator (CUB's device code cannot). Several outputs: for long rows, blocks
// over (row, chunk) and a second pass adding each row's chunks in order (sums), or a block per
// row (max); a thread per output for short rows. Sums accumulate
// in double, so float32 sums are as accurate as the host's. Every path reduces in an order
// fixed by the shape (block_reduce's tree; and, where 16-byte packs apply, by the buffer's
// alignment to one), so results are the same run to run.
#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "kernels/element_pack.cuh"
#include "kernels/kernel_support.cuh"
#include "kernels/reduce.h"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::DimReduceGeometry;
using detail::IndexedValue;
using detail::ReduceToShapeGeometry;

// Rows of at least one term per thread get a block each; shorter rows a thread each.
constexpr std::int64_t kBlockPerRowMinTerms = kThreadsPerBlock;
// Blocks of the first pass of a grid reduction: enough to keep a GPU busy, few enough for one
// block to finish them. A function of the count only, so the order is fixed by the shape.
constexpr std::int64_t kGridReduceMaxBlocks = std::min<std::int64_t>(1024, kGridStrideBlocks);

unsigned blocks_for_rows(std::int64_t rows) {
    return static_cast<unsigned>(std::min<std::int64_t>(rows, kGridStrideBlocks));
}

unsigned blocks_for_grid_reduce(std::int64_t count) {
    return static_cast<unsigned>(
        std::clamp<std::int64_t>((count + kThreadsPerBlock - 1) / kThreadsPerBlock, 1, kGridReduceMaxBlocks));
}

// ---- sums ----------------------------------------------------------------------------------

// Pass 1: block b sums elements b*256 + t, strided by the grid, into partials[b].
template <typename T>
__global__ void sum_partials_kernel(const T* x, std::int64_t count, double* partials) {
    double sum = 0;
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count())
        sum += static_cast<double>(x[i]);
    sum = block_sum(sum);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// Pass 2, one block: the partials in a fixed order, scaled, in the output's type.
template <typename T>
__global__ void finish_sum_kernel(const double* partials, std::int64_t blocks, double scale, T* out) {
    double sum = 0;
    for (std::int64_t b = threadIdx.x; b < blocks; b += blockDim.x) sum += partials[b];
    sum = block_sum(sum);
    if (threadIdx.x == 0) *out = static_cast<T>(sum * scale);
}

template <typename T>
__global__ void sum_thread_per_row_kernel(ReduceToShapeGeometry g, const T* x, double scale, T* out) {
    for (std::int64_t j = global_thread_index(); j < g.count; j += global_thread_count()) {
        double sum = 0;
        for (std::int64_t t = 0; t < g.terms; ++t)
            sum += static_cast<double>(x[detail::reduce_to_shape_source(g, j, t)]);
        out[j] = static_cast<T>(sum * scale);
    }
}

// Long rows: the summed dims walked by a cursor. Dividing every term's index into its
// coordinates took 2-5 64-bit divisions a term; a thread's terms are a fixed step apart (the
// block's threads), so it splits the step into digits once and adds them with carries, a few
// additions a summed dim a term.
struct SumWalk {
    static constexpr int kRank = ReduceToShapeGeometry::kRank;
    // The summed dims, innermost first: extents, strides in the full tensor, and the step's digits.
    std::int64_t extent[kRank] = {};
    std::int64_t stride[kRank] = {};
    std::int64_t step[kRank] = {};
    int summed = 0;
    // The kept dims, innermost first, which place a reduced element's first term.
    std::int64_t kept_extent[kRank] = {};
    std::int64_t kept_stride[kRank] = {};
    int kept = 0;
};

// (For a geometry with terms: an extent of 0 would divide by 0.)
SumWalk sum_walk(const ReduceToShapeGeometry& g, std::int64_t step) {
    SumWalk w;
    std::int64_t stride = 1;
    for (int d = SumWalk::kRank - 1; d >= 0; --d) {
        const auto i = static_cast<std::size_t>(d);
        if (g.full[i] == 1) continue;
        if (g.reduced[i] == g.full[i]) {
            w.kept_extent[w.kept] = g.full[i];
            w.kept_stride[w.kept++] = stride;
        } else {
            w.extent[w.summed] = g.full[i];
            w.stride[w.summed] = stride;
            w.step[w.summed++] = step % g.full[i];
            step /= g.full[i];
        }
        stride *= g.full[i];
    }
    return w;
}

// Term t of a row: its coordinates in the summed dims and its offset from the row's first term,
// moved on by the walk's step.
struct TermCursor {
    std::int64_t coordinate[SumWalk::kRank] = {};
    std::int64_t offset = 0;

    // (Both loops unrolled over the whole rank, so the coordinates stay in registers.)
    __device__ TermCursor(const SumWalk& w, std::int64_t t) {
        CONVKIT_UNROLL
        for (int k = 0; k < SumWalk::kRank; ++k) {
            if (k == w.summed) break;
            coordinate[k] = t % w.extent[k];
            t /= w.extent[k];
            offset += coordinate[k] * w.stride[k];
        }
    }
    __device__ void advance(const SumWalk& w) {
        std::int64_t carry = 0;
        CONVKIT_UNROLL
        for (int k = 0; k < SumWalk::kRank; ++k) {
            if (k == w.summed) break;
            std::int64_t c = coordinate[k] + w.step[k] + carry;
            carry = c >= w.extent[k] ? 1 : 0;
            if (carry != 0) c -= w.extent[k];
            offset += (c - coordinate[k]) * w.stride[k];
            coordinate[k] = c;
        }
    }
};

__device__ inline std::int64_t kept_offset(const SumWalk& w, std::int64_t j) {
    std::int64_t offset = 0;
    for (int k = 0; k < w.kept; ++k) {
        offset += (j % w.kept_extent[k]) * w.kept_stride[k];
        j /= w.kept_extent[k];
    }
    return offset;
}

// Terms a thread loads before adding them (in its order), so several loads are in flight.
constexpr int kTermsInFlight = 4;

// The cursor of a walk over one summed dim (the usual case once dims are merged: a bias's
// gradient sums N x H x W as one): no coordinates and no carries, since t stays below the dim's
// extent; TermCursor's general loop over up to 5 dims took about 200 instructions a term.
struct LinearTermCursor {
    std::int64_t offset;
    std::int64_t move;

    __device__ LinearTermCursor(const SumWalk& w, std::int64_t t, std::int64_t step)
        : offset(t * w.stride[0]), move(step * w.stride[0]) {}
    __device__ void advance(const SumWalk&) { offset += move; }
};

// The loop of for_each_term_pack over one cursor type.
template <int Width, typename T, typename Cursor, typename Add>
__device__ void for_each_term_pack_by(const T* row, const SumWalk& w, std::int64_t t, std::int64_t last,
                                      std::int64_t step, Cursor term, Add&& add) {
    while (t < last) {
        ElementPack<T, Width> values[kTermsInFlight];
        int loaded = 0;
        CONVKIT_UNROLL
        for (int u = 0; u < kTermsInFlight; ++u) {
            if (t >= last) break;
            values[u] = load_pack<Width>(row, term.offset / Width);
            ++loaded;
            t += step;
            if (t < last) term.advance(w);
        }
        CONVKIT_UNROLL
        for (int u = 0; u < kTermsInFlight; ++u) {
            if (u >= loaded) break;
            add(values[u]);
        }
    }
}

// add(pack) for the packs of Width terms t, t + step, ... below `last` of a row (offsets from
// `row` by the walk, whose step is `step`), in that order, kTermsInFlight loaded ahead of their
// adds.
template <int Width, typename T, typename Add>
__device__ void for_each_term_pack(const T* row, const SumWalk& w, std::int64_t t, std::int64_t last, std::int64_t step,
                                   Add&& add) {
    if (t >= last) return;
    if (w.summed == 1) {
        for_each_term_pack_by<Width>(row, w, t, last, step, LinearTermCursor(w, t, step), add);
    } else {
        for_each_term_pack_by<Width>(row, w, t, last, step, TermCursor(w, t), add);
    }
}

// Block (row j, chunk k) sums the row's terms [k * per_chunk, (k + 1) * per_chunk) into
// partials[k * count + j]: each thread every blockDim.x-th pack of Width terms, then the block's
// tree. Width > 1 where the innermost summed dim is the tensor's innermost and a multiple of
// Width (packs_fit): a pack is Width adjacent terms, one 16-byte load, and every row and pack
// starts on a multiple of Width (the other dims' strides are multiples of that extent).
template <typename T, int Width>
__global__ void sum_chunks_kernel(ReduceToShapeGeometry g, SumWalk w, std::int64_t per_chunk, const T* x,
                                  double* partials) {
    const std::int64_t first = std::int64_t{blockIdx.y} * per_chunk;
    const std::int64_t last = std::min(g.terms, first + per_chunk);
    const std::int64_t step = std::int64_t{kThreadsPerBlock} * Width;  // the walk's step (sum_walk)
    for (std::int64_t j = blockIdx.x; j < g.count; j += gridDim.x) {
        const T* row = x + kept_offset(w, j);
        double sum = 0;
        const std::int64_t t = first + std::int64_t{threadIdx.x} * Width;  // (blocks of kThreadsPerBlock)
        for_each_term_pack<Width>(row, w, t, last, step, [&](const ElementPack<T, Width>& values) {
            for (int lane = 0; lane < Width; ++lane) sum += static_cast<double>(values.value[lane]);
        });
        sum = block_sum(sum);
        if (threadIdx.x == 0) partials[std::int64_t{blockIdx.y} * g.count + j] = sum;
    }
}

// Row j's chunks added in chunk order, scaled, rounded once to T.
template <typename T>
__global__ void finish_chunks_kernel(std::int64_t count, std::int64_t chunks, const double* partials, double scale,
                                     T* out) {
    for (std::int64_t j = global_thread_index(); j < count; j += global_thread_count()) {
        double sum = 0;
        for (std::int64_t k = 0; k < chunks; ++k) sum += partials[k * count + j];
        out[j] = static_cast<T>(sum * scale);
    }
}

// Chunks a row of `terms` splits into when its reduction spreads over `units` blocks without
// chunks: enough for about `target` blocks in all, each chunk at least `min_terms` (so a block's
// start is amortised), at most kMaxChunks (so the finish stays short). A function of the shape,
// so the order of the sums is too.
constexpr std::int64_t kMaxChunks = 256;

std::int64_t chunks_for(std::int64_t units, std::int64_t terms, std::int64_t target, std::int64_t min_terms) {
    const std::int64_t wanted = (target + units - 1) / units;
    const std::int64_t most = (terms + min_terms - 1) / min_terms;
    return std::clamp<std::int64_t>(std::min(wanted, most), 1, kMaxChunks);
}

// The rows' sums in `chunks` partial sums each, written by `launch_partials(partials)` as
// partials[k * count + j], then added in chunk order, scaled and rounded into `out`.
template <typename T, typename LaunchPartials>
void sum_by_chunks(const ReduceToShapeGeometry& g, std::int64_t chunks, double scale, T* out, Stream stream,
                   LaunchPartials&& launch_partials) {
    // Released on return: the caching allocator reuses it only behind this stream's work.
    const std::shared_ptr<void> scratch =
        detail::allocate_cuda(static_cast<std::size_t>(chunks * g.count) * sizeof(double), stream);
    auto* partials = static_cast<double*>(scratch.get());
    launch_partials(partials);
    launch<finish_chunks_kernel<T>>({grid_for(g.count), kThreadsPerBlock}, detail::to_cuda(stream), g.count, chunks,
                                    partials, scale, out);
}

// Rows along the innermost dim (it is kept: x[N, C] summed to [C], a Linear bias's gradient, or a
// channels-last gradient [N, H, W, C] summed to a [C, 1, 1] bias): a block is blockDim.x threads
// side by side over a tile of adjacent columns, a pack of Width each (16 bytes where the columns
// are whole packs and the buffer aligned), by blockDim.y row lanes, so a warp reads adjacent
// columns of one term. Lane y sums terms first + y, first + y + blockDim.y, ... of the block's
// chunk (kTermsInFlight loads ahead of their adds), and the lanes' sums are added in lane order
// in shared memory into partials[k * count + j]. Blocks stride over (tile, outer kept element)
// units; blockIdx.y is the chunk. (A thread a column read 2 bytes at a time with one load in
// flight: about a twentieth of the copy rate on a bias's gradient.)
template <typename T, int Width>
__global__ void sum_columns_kernel(ReduceToShapeGeometry g, SumWalk w, std::int64_t per_chunk, const T* x,
                                   double* partials) {
    __shared__ double lanes[kThreadsPerBlock * Width];  // [row lane][column of the tile]
    const std::int64_t columns = w.kept_extent[0];
    const std::int64_t tile_columns = std::int64_t{blockDim.x} * Width;
    const std::int64_t tiles = (columns + tile_columns - 1) / tile_columns;
    const std::int64_t first = std::int64_t{blockIdx.y} * per_chunk;
    const std::int64_t last = std::min(g.terms, first + per_chunk);
    const std::int64_t step = blockDim.y;  // the walk's step (sum_walk)
    const int thread = static_cast<int>(threadIdx.y * blockDim.x + threadIdx.x);
    for (std::int64_t unit = blockIdx.x; unit < tiles * (g.count / columns); unit += gridDim.x) {
        const std::int64_t tile = unit % tiles, outer = unit / tiles;
        const std::int64_t column = tile * tile_columns + std::int64_t{threadIdx.x} * Width;
        double sum[Width] = {};
        if (column < columns) {
            // Every offset a multiple of Width: the other dims' strides are multiples of `columns`.
            const T* row = x + kept_offset(w, outer * columns) + column;
            for_each_term_pack<Width>(row, w, first + threadIdx.y, last, step,
                                      [&](const ElementPack<T, Width>& values) {
                                          for (int lane = 0; lane < Width; ++lane)
                                              sum[lane] += static_cast<double>(values.value[lane]);
                                      });
        }
        for (int lane = 0; lane < Width; ++lane) lanes[thread * Width + lane] = sum[lane];
        __syncthreads();
        for (std::int64_t j = thread; j < tile_columns; j += kThreadsPerBlock) {
            const std::int64_t c = tile * tile_columns + j;
            if (c >= columns) break;
            double total = 0;
            for (unsigned row_lane = 0; row_lane < blockDim.y; ++row_lane) total += lanes[row_lane * tile_columns + j];
            partials[std::int64_t{blockIdx.y} * g.count + outer * columns + c] = total;
        }
        __syncthreads();  // the lanes are rewritten for the next unit
    }
}

// Blocks the column and the long rows' kernels aim for; the fewest terms a row lane of the
// column kernel sums in a chunk, and a block of the long rows' kernel. Columns a block reads
// across at most (in packs).
constexpr std::int64_t kChunkBlocks = 2048;
constexpr std::int64_t kMinColumnLaneTerms = 16;
constexpr std::int64_t kMinChunkTerms = 4096;
constexpr unsigned kMostPacksAcross = 32;

// Whether the tensor's innermost dim is one of the kept ones (sum_columns_kernel's case).
bool innermost_kept(const SumWalk& w) {
    return w.kept > 0 && w.kept_stride[0] == 1;
}

template <typename T, int Width>
void sum_columns_in_packs_of(const ReduceToShapeGeometry& g, std::int64_t columns, const T* x, double scale, T* out,
                             Stream stream) {
    const unsigned across = packs_across(columns / Width, kMostPacksAcross);
    const unsigned row_lanes = kThreadsPerBlock / across;
    const std::int64_t units = (columns + across * Width - 1) / (across * Width) * (g.count / columns);
    const std::int64_t chunks = chunks_for(units, g.terms, kChunkBlocks, row_lanes * kMinColumnLaneTerms);
    const std::int64_t per_chunk = (g.terms + chunks - 1) / chunks;
    sum_by_chunks(g, chunks, scale, out, stream, [&](double* partials) {
        launch<sum_columns_kernel<T, Width>>(
            {dim3(blocks_for_rows(units), static_cast<unsigned>(chunks)), dim3(across, row_lanes)},
            detail::to_cuda(stream), g, sum_walk(g, row_lanes), per_chunk, x, partials);
    });
}

template <typename T>
void sum_columns(const ReduceToShapeGeometry& g, const T* x, double scale, T* out, Stream stream) {
    constexpr int width = kPackWidth<T>;
    const std::int64_t columns = sum_walk(g, 1).kept_extent[0];
    if (columns % width == 0 && pack_aligned<T, width>(x)) {
        sum_columns_in_packs_of<T, width>(g, columns, x, scale, out, stream);
    } else {
        sum_columns_in_packs_of<T, 1>(g, columns, x, scale, out, stream);
    }
}

// Whether sum_chunks_kernel may read packs of Width terms (see there).
template <typename T, int Width>
bool packs_fit(const SumWalk& w, const T* x) {
    return w.summed > 0 && w.stride[0] == 1 && w.extent[0] % Width == 0 && pack_aligned<T, Width>(x);
}

template <typename T>
void sum_long_rows(const ReduceToShapeGeometry& g, const T* x, double scale, T* out, Stream stream) {
    const cudaStream_t s = detail::to_cuda(stream);
    constexpr int width = kPackWidth<T>;
    const bool packed = packs_fit<T, width>(sum_walk(g, 0), x);
    const std::int64_t unit = packed ? width : 1;  // chunks hold whole packs
    const std::int64_t chunks = chunks_for(g.count, g.terms, kChunkBlocks, kMinChunkTerms);
    const std::int64_t per_chunk = ((g.terms + chunks - 1) / chunks + unit - 1) / unit * unit;
    const dim3 grid(blocks_for_rows(g.count), static_cast<unsigned>(chunks));
    const SumWalk walk = sum_walk(g, kThreadsPerBlock * unit);
    sum_by_chunks(g, chunks, scale, out, stream, [&](double* partials) {
        if (packed) {
            launch<sum_chunks_kernel<T, width>>({grid, kThreadsPerBlock}, s, g, walk, per_chunk, x, partials);
        } else {
            launch<sum_chunks_kernel<T, 1>>({grid, kThreadsPerBlock}, s, g, walk, per_chunk, x, partials);
        }
    });
}

template <typename T>
void sum_all(const T* x, std::int64_t count, double scale, T* out, Stream stream) {
    const cudaStream_t s = detail::to_cuda(stream);
    const unsigned blocks = blocks_for_grid_reduce(count);
    // Released on return: the caching allocator reuses it only behind this stream's work.
    const std::shared_ptr<void> scratch = detail::allocate_cuda(blocks * sizeof(double), stream);
    auto* partials = static_cast<double*>(scratch.get());
    launch<sum_partials_kernel<T>>({blocks, kThreadsPerBlock}, s, x, count, partials);
    launch<finish_sum_kernel<T>>({1, kThreadsPerBlock}, s, partials, static_cast<std::int64_t>(blocks), scale, out);
}

// ---- max -----------------------------------------------------------------------------------

template <typename T>
struct MaxOf {
    __device__ IndexedValue<T> operator()(const IndexedValue<T>& a, const IndexedValue<T>& b) const {
        return detail::max_of(a, b);
    }
};

// Pass 1: block b's first maximum of its strided slice into partials[b].
template <typename T>
__global__ void max_partials_kernel(const T* x, std::int64_t count, IndexedValue<T>* partials) {
    IndexedValue<T> best = detail::max_identity<T>();
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count())
        best = detail::max_of(best, {i, x[i]});
    best = block_reduce(best, MaxOf<T>{});
    if (threadIdx.x == 0) partials[blockIdx.x] = best;
}

// Pass 2, one block: the first maximum of the partials.
template <typename T>
__global__ void finish_max_kernel(const IndexedValue<T>* partials, std::int64_t blocks, T* values,
                                  std::int64_t* indices) {
    IndexedValue<T> best = detail::max_identity<T>();
    for (std::int64_t b = threadIdx.x; b < blocks; b += blockDim.x) best = detail::max_of(best, partials[b]);
    best = block_reduce(best, MaxOf<T>{});
    if (threadIdx.x != 0) return;
    if (values != nullptr) *values = best.value;
    *indices = best.index;
}

template <typename T>
__global__ void max_thread_per_row_kernel(DimReduceGeometry g, const T* x, T* values, std::int64_t* indices) {
    for (std::int64_t j = global_thread_index(); j < g.rows(); j += global_thread_count()) {
        IndexedValue<T> best = detail::max_identity<T>();
        for (std::int64_t k = 0; k < g.size; ++k)
            best = detail::max_of(best, {k, x[detail::dim_reduce_source(g, j, k)]});
        if (values != nullptr) values[j] = best.value;
        indices[j] = best.index;
    }
}

template <typename T>
__global__ void max_block_per_row_kernel(DimReduceGeometry g, const T* x, T* values, std::int64_t* indices) {
    for (std::int64_t j = blockIdx.x; j < g.rows(); j += gridDim.x) {
        IndexedValue<T> partial = detail::max_identity<T>();
        for (std::int64_t k = threadIdx.x; k < g.size; k += blockDim.x) {
            partial = detail::max_of(partial, {k, x[detail::dim_reduce_source(g, j, k)]});
        }
        const IndexedValue<T> best = block_reduce(partial, MaxOf<T>{});
        if (threadIdx.x == 0) {
            if (values != nullptr) values[j] = best.value;
            indices[j] = best.index;
        }
    }
}

template <typename T>
void max_all(const T* x, std::int64_t count, T* values, std::int64_t* indices, Stream stream) {
    const cudaStream_t s = detail::to_cuda(stream);
    const unsigned blocks = blocks_for_grid_reduce(count);
    const std::shared_ptr<void> scratch = detail::allocate_cuda(blocks * sizeof(IndexedValue<T>), stream);
    auto* partials = static_cast<IndexedValue<T>*>(scratch.get());
    launch<max_partials_kernel<T>>({blocks, kThreadsPerBlock}, s, x, count, partials);
    launch<finish_max_kernel<T>>({1, kThreadsPerBlock}, s, partials, static_cast<std::int64_t>(blocks), values,
                                 indices);
}

template <typename T>
__global__ void max_backward_kernel(DimReduceGeometry g, const T* dy, const std::int64_t* indices, T* dx) {
    const std::int64_t count = g.rows() * g.size;
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        const detail::DimReducePosition p = detail::dim_reduce_position(g, i);
        dx[i] = indices[p.row] == p.k ? dy[p.row] : T(0);
    }
}
}  // namespace

void sum_dims(const ReduceToShapeGeometry& g, DType dtype, const void* x, double scale, void* out, Stream stream) {
    if (g.count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_storage_types("sum", dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* in = static_cast<const T*>(x);
        T* result = static_cast<T*>(out);
        if (g.count == 1) {
            sum_all(in, g.terms, scale, result, stream);  // one output sums every element
        } else if (g.terms > 1 && innermost_kept(sum_walk(g, 0))) {  // (no extent of 0 to walk)
            sum_columns(g, in, scale, result, stream);
        } else if (g.terms >= kBlockPerRowMinTerms) {
            sum_long_rows(g, in, scale, result, stream);
        } else {
            launch<sum_thread_per_row_kernel<T>>({grid_for(g.count), kThreadsPerBlock}, s, g, in, scale, result);
        }
    });
}

void max_dim(const DimReduceGeometry& g, DType dtype, const void* x, void* values, std::int64_t* indices,
             Stream stream) {
    if (g.rows() == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* in = static_cast<const T*>(x);
        T* best = static_cast<T*>(values);
        if (g.rows() == 1) {
            max_all(in, g.size, best, indices, stream);
        } else if (g.size >= kBlockPerRowMinTerms) {
            launch<max_block_per_row_kernel<T>>({blocks_for_rows(g.rows()), kThreadsPerBlock}, s, g, in, best, indices);
        } else {
            launch<max_thread_per_row_kernel<T>>({grid_for(g.rows()), kThreadsPerBlock}, s, g, in, best, indices);
        }
    });
}

void max_backward(const DimReduceGeometry& g, DType dtype, const void* dy, const std::int64_t* indices, void* dx,
                  Stream stream) {
    const std::int64_t count = g.rows() * g.size;
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<max_backward_kernel<T>>({grid_for(count), kThreadsPerBlock}, s, g, static_cast<const T*>(dy), indices,
                                       static_cast<T*>(dx));
    });
}

CONVKIT_KERNELS_END
