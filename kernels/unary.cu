// Unary elementwise ops and activations, forward and backward: one grid-stride kernel template
// per direction, instantiated per op, dtype and pack width. The arithmetic is ops/unary_math.h,
// in float for bfloat16/float16 storage (each value widened on load and rounded once on store).
// Aligned buffers move 16-byte packs (kernels/element_pack.cuh): a bandwidth-bound op needs them
// to approach the copy rate, 2-byte accesses reach about half of it.
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/element_pack.cuh"
#include "kernels/kernel_support.cuh"
#include "kernels/unary.h"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::UnaryOp;

template <UnaryOp op, typename T, int Width>
__global__ void unary_forward_kernel(const T* x, T* y, std::int64_t count, detail::UnaryScalars scalars) {
    for_each_flat_pack<Width>(count, [&](auto width, std::int64_t p) {
        transform_pack<decltype(width)::value>(
            p, y, [&](ComputeType<T> v) { return detail::unary_value<op>(v, scalars); }, x);
    });
}

template <UnaryOp op, typename T, int Width>
__global__ void unary_backward_kernel(const T* dy, const T* saved, T* dx, std::int64_t count,
                                      detail::UnaryScalars scalars) {
    using C = ComputeType<T>;
    for_each_flat_pack<Width>(count, [&](auto width, std::int64_t p) {
        transform_pack<decltype(width)::value>(
            p, dx, [&](C g, C s) { return detail::unary_gradient<op>(g, s, scalars); }, dy, saved);
    });
}
}  // namespace

void unary_forward(UnaryOp op, detail::UnaryScalars scalars, DType dtype, const void* x, void* y, std::int64_t count,
                   Stream stream) {
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_storage_types("unary op", dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* in = static_cast<const T*>(x);
        T* out = static_cast<T*>(y);
        detail::dispatch_unary_op(op, [&](auto op_constant) {
            launch_flat_packs<T>(
                count,
                [&](auto width, unsigned blocks) {
                    launch<unary_forward_kernel<decltype(op_constant)::value, T, decltype(width)::value>>(
                        {blocks, kThreadsPerBlock}, s, in, out, count, scalars);
                },
                in, out);
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
        const T* gradient = static_cast<const T*>(dy);
        const T* source = static_cast<const T*>(saved);
        T* out = static_cast<T*>(dx);
        detail::dispatch_unary_op(op, [&](auto op_constant) {
            launch_flat_packs<T>(
                count,
                [&](auto width, unsigned blocks) {
                    launch<unary_backward_kernel<decltype(op_constant)::value, T, decltype(width)::value>>(
                        {blocks, kThreadsPerBlock}, s, gradient, source, out, count, scalars);
                },
                gradient, source, out);
        });
    });
}

CONVKIT_KERNELS_END
