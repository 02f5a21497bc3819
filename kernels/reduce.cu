// Sum and max reductions. One output: CUB's device-wide reduction (sums accumulate in double
// through a transform iterator, so float32 sums are as accurate as the host's; DeviceReduce
// with a transform iterator rather than DeviceReduce::TransformReduce, which older CUBs lack). Several outputs: a block
// per output when its row is long enough to keep a block busy, else a thread per output.
// Every path reduces in an order fixed by the shape, so results are the same run to run.
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <cub/cub.cuh>

#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"
#include "kernels/reduce.h"

namespace convkit::kernels {

namespace {
using detail::DimReduceGeometry;
using detail::IndexedValue;
using detail::ReduceToShapeGeometry;

// Rows of at least one term per thread get a block each; shorter rows a thread each.
constexpr std::int64_t kBlockPerRowMinTerms = kThreadsPerBlock;
// The device-wide reductions write their one result at the start of the scratch block and CUB
// uses the rest; this keeps CUB's part aligned for any type it stores.
constexpr std::size_t kResultBytes = 256;

unsigned blocks_for_rows(std::int64_t rows) {
    return static_cast<unsigned>(std::min<std::int64_t>(rows, 65535));
}

// ---- sums ----------------------------------------------------------------------------------

template <typename T>
struct ToDouble {
    __host__ __device__ double operator()(T x) const { return static_cast<double>(x); }
};
struct Plus {
    __host__ __device__ double operator()(double a, double b) const { return a + b; }
};

template <typename T>
__global__ void finish_sum_kernel(const double* sum, double scale, T* out) {
    *out = static_cast<T>(*sum * scale);
}

template <typename T>
__global__ void sum_thread_per_row_kernel(ReduceToShapeGeometry g, const T* x, double scale, T* out) {
    for (std::int64_t j = global_thread_index(); j < g.count; j += global_thread_count()) {
        double sum = 0;
        for (std::int64_t t = 0; t < g.terms; ++t) sum += x[detail::reduce_to_shape_source(g, j, t)];
        out[j] = static_cast<T>(sum * scale);
    }
}

template <typename T>
__global__ void sum_block_per_row_kernel(ReduceToShapeGeometry g, const T* x, double scale, T* out) {
    for (std::int64_t j = blockIdx.x; j < g.count; j += gridDim.x) {
        double partial = 0;
        for (std::int64_t t = threadIdx.x; t < g.terms; t += blockDim.x) {
            partial += x[detail::reduce_to_shape_source(g, j, t)];
        }
        const double sum = block_sum(partial);
        if (threadIdx.x == 0) out[j] = static_cast<T>(sum * scale);
    }
}

template <typename T>
void sum_all(const T* x, std::int64_t count, double scale, T* out, Stream stream) {
    const cudaStream_t s = detail::to_cuda(stream);
    const auto terms = thrust::make_transform_iterator(x, ToDouble<T>{});
    std::size_t temp_bytes = 0;
    CONVKIT_CHECK_CUDA(
        cub::DeviceReduce::Reduce(nullptr, temp_bytes, terms, static_cast<double*>(nullptr), count, Plus{}, 0.0, s));
    const std::shared_ptr<void> scratch = detail::allocate_cuda(kResultBytes + temp_bytes, stream);
    double* sum = static_cast<double*>(scratch.get());
    void* temp = static_cast<char*>(scratch.get()) + kResultBytes;
    CONVKIT_CHECK_CUDA(cub::DeviceReduce::Reduce(temp, temp_bytes, terms, sum, count, Plus{}, 0.0, s));
    finish_sum_kernel<<<1, 1, 0, s>>>(sum, scale, out);
}

// ---- max -----------------------------------------------------------------------------------

template <typename T>
struct MaxOf {
    __host__ __device__ IndexedValue<T> operator()(const IndexedValue<T>& a, const IndexedValue<T>& b) const {
        return detail::max_of(a, b);
    }
};
template <typename T>
struct ElementAt {
    const T* x;
    __host__ __device__ IndexedValue<T> operator()(std::int64_t i) const { return {i, x[i]}; }
};

template <typename T>
__global__ void finish_max_kernel(const IndexedValue<T>* best, T* values, std::int64_t* indices) {
    if (values != nullptr) *values = best->value;
    *indices = best->index;
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
    using BlockReduce = cub::BlockReduce<IndexedValue<T>, kThreadsPerBlock>;
    __shared__ typename BlockReduce::TempStorage temp;
    for (std::int64_t j = blockIdx.x; j < g.rows(); j += gridDim.x) {
        IndexedValue<T> partial = detail::max_identity<T>();
        for (std::int64_t k = threadIdx.x; k < g.size; k += blockDim.x) {
            partial = detail::max_of(partial, {k, x[detail::dim_reduce_source(g, j, k)]});
        }
        const IndexedValue<T> best = BlockReduce(temp).Reduce(partial, MaxOf<T>{});
        if (threadIdx.x == 0) {
            if (values != nullptr) values[j] = best.value;
            indices[j] = best.index;
        }
        __syncthreads();  // `temp` is reused for the next row
    }
}

template <typename T>
void max_all(const T* x, std::int64_t count, T* values, std::int64_t* indices, Stream stream) {
    const cudaStream_t s = detail::to_cuda(stream);
    const auto elements = thrust::make_transform_iterator(thrust::counting_iterator<std::int64_t>(0), ElementAt<T>{x});
    const IndexedValue<T> identity = detail::max_identity<T>();
    std::size_t temp_bytes = 0;
    CONVKIT_CHECK_CUDA(cub::DeviceReduce::Reduce(nullptr, temp_bytes, elements, static_cast<IndexedValue<T>*>(nullptr),
                                                 count, MaxOf<T>{}, identity, s));
    const std::shared_ptr<void> scratch = detail::allocate_cuda(kResultBytes + temp_bytes, stream);
    auto* best = static_cast<IndexedValue<T>*>(scratch.get());
    void* temp = static_cast<char*>(scratch.get()) + kResultBytes;
    CONVKIT_CHECK_CUDA(cub::DeviceReduce::Reduce(temp, temp_bytes, elements, best, count, MaxOf<T>{}, identity, s));
    finish_max_kernel<<<1, 1, 0, s>>>(best, values, indices);
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
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* in = static_cast<const T*>(x);
        T* result = static_cast<T*>(out);
        if (g.count == 1) {
            sum_all(in, g.terms, scale, result, stream);  // one output sums every element
        } else if (g.terms >= kBlockPerRowMinTerms) {
            sum_block_per_row_kernel<<<blocks_for_rows(g.count), kThreadsPerBlock, 0, s>>>(g, in, scale, result);
        } else {
            sum_thread_per_row_kernel<<<grid_for(g.count), kThreadsPerBlock, 0, s>>>(g, in, scale, result);
        }
    });
    CONVKIT_CHECK_CUDA(cudaGetLastError());
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
            max_block_per_row_kernel<<<blocks_for_rows(g.rows()), kThreadsPerBlock, 0, s>>>(g, in, best, indices);
        } else {
            max_thread_per_row_kernel<<<grid_for(g.rows()), kThreadsPerBlock, 0, s>>>(g, in, best, indices);
        }
    });
    CONVKIT_CHECK_CUDA(cudaGetLastError());
}

void max_backward(const DimReduceGeometry& g, DType dtype, const void* dy, const std::int64_t* indices, void* dx,
                  Stream stream) {
    const std::int64_t count = g.rows() * g.size;
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        max_backward_kernel<<<grid_for(count), kThreadsPerBlock, 0, s>>>(g, static_cast<const T*>(dy), indices,
                                                                         static_cast<T*>(dx));
    });
    CONVKIT_CHECK_CUDA(cudaGetLastError());
}

}  // namespace convkit::kernels
