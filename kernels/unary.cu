// Unary elementwise ops and activations, forward and backward: one grid-stride kernel template
// per direction, instantiated per op and dtype. The arithmetic is ops/unary_math.h, in float for
// bfloat16/float16 storage (each value widened on load and rounded once on store).
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"
#include "kernels/unary.h"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::UnaryOp;

template <UnaryOp op, typename T>
__global__ void unary_forward_kernel(const T* x, T* y, std::int64_t count, detail::UnaryScalars scalars) {
    using C = ComputeType<T>;
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        y[i] = T(detail::unary_value<op>(static_cast<C>(x[i]), scalars));
    }
}

template <UnaryOp op, typename T>
__global__ void unary_backward_kernel(const T* dy, const T* saved, T* dx, std::int64_t count,
                                      detail::UnaryScalars scalars) {
    using C = ComputeType<T>;
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        dx[i] = T(detail::unary_gradient<op>(static_cast<C>(dy[i]), static_cast<C>(saved[i]), scalars));
    }
}
}  // namespace

void unary_forward(UnaryOp op, detail::UnaryScalars scalars, DType dtype, const void* x, void* y, std::int64_t count,
                   Stream stream) {
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_storage_types("unary op", dtype, [&](auto zero) {
        using T = decltype(zero);
        detail::dispatch_unary_op(op, [&](auto op_constant) {
            launch<unary_forward_kernel<decltype(op_constant)::value, T>>(
                {grid_for(count), kThreadsPerBlock}, s, static_cast<const T*>(x), static_cast<T*>(y), count, scalars);
        });
    });
}

void unary_backward(UnaryOp op, detail::UnaryScalars scalars, DType dtype, const void* dy, const void* saved, void* dx,
                    std::int64_t count, Stream stream) {
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_storage_types("unary op", dtype, [&](auto zero) {
        using T = decltype(zero);
        detail::dispatch_unary_op(op, [&](auto op_constant) {
            launch<unary_backward_kernel<decltype(op_constant)::value, T>>(
                {grid_for(count), kThreadsPerBlock}, s, static_cast<const T*>(dy), static_cast<const T*>(saved),
                static_cast<T*>(dx), count, scalars);
        });
    });
}

CONVKIT_KERNELS_END
