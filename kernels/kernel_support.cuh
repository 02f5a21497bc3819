#pragma once
// Small helpers shared by the .cu files: launch sizes, a grid-stride loop with 64-bit indices,
// deterministic block reductions, and dtype dispatch for launchers. Every .cu launches through
// kernels/launch.cuh, included from here.
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "convkit/dtype.h"
#include "convkit/error.h"
#include "convkit/half.h"
#include "kernels/kernels_namespace.h"
#include "kernels/launch.cuh"

// Loops over a thread's fragments, lanes and accumulators must unroll so that the arrays they
// index stay in registers (an array indexed at run time goes to the stack; ptxas leaves some such
// loops rolled). GCC (the CPU build) needs no hint and warns on an unknown pragma.
#if defined(__CUDACC__)
#define CONVKIT_UNROLL _Pragma("unroll")
#else
#define CONVKIT_UNROLL
#endif

CONVKIT_KERNELS_BEGIN

inline constexpr int kThreadsPerBlock = 256;
inline constexpr int kWarpSize = 32;
inline constexpr int kWarpsPerBlock = kThreadsPerBlock / kWarpSize;

// Enough blocks to fill the GPU several times over; grid-stride loops cover the rest.
inline unsigned grid_for(std::int64_t count) {
    const std::int64_t needed = (count + kThreadsPerBlock - 1) / kThreadsPerBlock;
    return grid_stride_blocks(needed);
}

__device__ inline std::int64_t global_thread_index() {
    return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t global_thread_count() {
    return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

// op-combination of every thread's `value` in a block of kThreadsPerBlock threads, in a fixed
// tree order (so the result is the same run to run; `op` need not be commutative in its
// rounding). Valid in thread 0. Every thread of the block must call it (it synchronises); it
// may be called repeatedly. Launches must use exactly kThreadsPerBlock threads; anything else
// traps rather than reduces wrong. T must be trivially constructible (a __shared__ array of it).
template <typename T, typename Op>
__device__ T block_reduce(T value, Op op) {
    if (blockDim.x * blockDim.y * blockDim.z != kThreadsPerBlock) __trap();
    __shared__ T partial[kThreadsPerBlock];
    __syncthreads();  // the previous call's result has been read
    partial[threadIdx.x] = value;
    __syncthreads();
    for (int half = kThreadsPerBlock / 2; half > 0; half /= 2) {
        if (static_cast<int>(threadIdx.x) < half) {
            partial[threadIdx.x] = op(partial[threadIdx.x], partial[threadIdx.x + half]);
        }
        __syncthreads();
    }
    return threadIdx.x == 0 ? partial[0] : value;
}

struct SumOp {
    template <typename T>
    __device__ T operator()(T a, T b) const {
        return a + b;
    }
};

// Sum of every thread's `value` (block_reduce with +); valid in thread 0, T(0) elsewhere.
template <typename T>
__device__ T block_sum(T value) {
    const T sum = block_reduce(value, SumOp{});
    return threadIdx.x == 0 ? sum : T(0);
}

// The error of a kernel family asked to run a dtype it has no instantiation for.
[[noreturn]] inline void throw_kernel_dtype_not_supported(const char* op, DType dtype) {
    throw NotSupported(std::string(op) + ": the CUDA kernels run float32 and float64 only, not " + dtype_name(dtype));
}

// Calls f(float{}) or f(double{}) by dtype; any other dtype is NotSupported naming `op`.
template <typename F>
void dispatch_float_types(const char* op, DType dtype, F&& f) {
    switch (dtype) {
        case DType::Float32: f(float{}); return;
        case DType::Float64: f(double{}); return;
        case DType::Int64:
        case DType::BFloat16:
        case DType::Float16: break;
    }
    throw_kernel_dtype_not_supported(op, dtype);
}
template <typename F>
void dispatch_float_types(DType dtype, F&& f) {
    dispatch_float_types("a CUDA kernel", dtype, std::forward<F>(f));
}

// The type a kernel computes a storage type in: float for bfloat16, float16 and float, double
// for double. Values are widened on load and rounded once on store.
template <typename T>
using ComputeType = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Calls f with a value of the storage type of any floating dtype (float, double, bfloat16,
// float16), for kernels that load 16-bit values and compute in float32; int64 is NotSupported
// naming `op`.
template <typename F>
void dispatch_float_storage_types(const char* op, DType dtype, F&& f) {
    switch (dtype) {
        case DType::Float32: f(float{}); return;
        case DType::Float64: f(double{}); return;
        case DType::BFloat16: f(bfloat16{}); return;
        case DType::Float16: f(float16{}); return;
        case DType::Int64: break;
    }
    throw NotSupported(std::string(op) + ": the CUDA kernels run floating-point dtypes only, not " + dtype_name(dtype));
}

// Calls f with a value of the element type of any dtype.
template <typename F>
void dispatch_all_types(DType dtype, F&& f) {
    switch (dtype) {
        case DType::Float32: f(float{}); return;
        case DType::Float64: f(double{}); return;
        case DType::Int64: f(std::int64_t{}); return;
        case DType::BFloat16: f(bfloat16{}); return;
        case DType::Float16: f(float16{}); return;
    }
}

CONVKIT_KERNELS_END
