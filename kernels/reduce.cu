// Sum and max reductions. One output: a grid reduction in two launches (blocks reduce strided
// slices to partials, one block reduces the partials), the project's own so that every kernel
// also runs in the emulator (CUB's device code cannot). Several outputs: a block per output
// when its row is long enough to keep a block busy, else a thread per output. Sums accumulate
// in double, so float32 sums are as accurate as the host's. Every path reduces in an order
// fixed by the shape (block_reduce's tree), so results are the same run to run.
#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
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

template <typename T>
__global__ void sum_block_per_row_kernel(ReduceToShapeGeometry g, const T* x, double scale, T* out) {
    for (std::int64_t j = blockIdx.x; j < g.count; j += gridDim.x) {
        double partial = 0;
        for (std::int64_t t = threadIdx.x; t < g.terms; t += blockDim.x) {
            partial += static_cast<double>(x[detail::reduce_to_shape_source(g, j, t)]);
        }
        const double sum = block_sum(partial);
        if (threadIdx.x == 0) out[j] = static_cast<T>(sum * scale);
    }
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
        } else if (g.terms >= kBlockPerRowMinTerms) {
            launch<sum_block_per_row_kernel<T>>({blocks_for_rows(g.count), kThreadsPerBlock}, s, g, in, scale, result);
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
