// Binary elementwise ops with broadcasting, and the sum that undoes a broadcast (their
// gradient). The index math is shared with the host backend (ops/broadcast.h).
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/binary.h"
#include "kernels/element_pack.cuh"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::BinaryOp;

// Same shapes: the offsets are the index, no division needed, and aligned buffers move 16-byte
// packs (kernels/element_pack.cuh).
template <BinaryOp op, typename T, int Width>
__global__ void binary_same_shape_kernel(const T* a, const T* b, T* out, std::int64_t count) {
    using C = ComputeType<T>;
    for_each_flat_pack<Width>(count, [&](auto width, std::int64_t p) {
        transform_pack<decltype(width)::value>(
            p, out, [](C u, C v) { return detail::binary_value<op>(u, v); }, a, b);
    });
}

template <BinaryOp op, typename T>
__global__ void binary_broadcast_kernel(detail::BroadcastGeometry g, const T* a, const T* b, T* out) {
    for (std::int64_t i = global_thread_index(); i < g.count; i += global_thread_count()) {
        const detail::OperandOffsets o = detail::broadcast_offsets(g, i);
        out[i] = T(detail::binary_value<op>(static_cast<ComputeType<T>>(a[o.a]), static_cast<ComputeType<T>>(b[o.b])));
    }
}

// One thread per reduced element, summing its terms in order: deterministic, and the terms of
// neighbouring threads are neighbours in memory when the summed dims are the leading ones
// (bias-like shapes), the common case.
template <typename T>
__global__ void reduce_to_shape_kernel(detail::ReduceToShapeGeometry g, const T* full, T* reduced) {
    for (std::int64_t j = global_thread_index(); j < g.count; j += global_thread_count()) {
        double sum = 0;
        for (std::int64_t t = 0; t < g.terms; ++t) {
            sum += static_cast<double>(full[detail::reduce_to_shape_source(g, j, t)]);
        }
        reduced[j] = T(sum);
    }
}

bool same_shapes(const detail::BroadcastGeometry& g) {
    std::int64_t stride = 1;
    for (int d = detail::BroadcastGeometry::kRank - 1; d >= 0; --d) {
        const auto i = static_cast<std::size_t>(d);
        if (g.out[i] != 1 && (g.a_stride[i] != stride || g.b_stride[i] != stride)) return false;
        stride *= g.out[i];
    }
    return true;
}
}  // namespace

void binary_elementwise(BinaryOp op, const detail::BroadcastGeometry& g, DType dtype, const void* a, const void* b,
                        void* out, Stream stream) {
    if (g.count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    const bool plain = same_shapes(g);
    dispatch_float_storage_types("binary op", dtype, [&](auto zero) {
        using T = decltype(zero);
        detail::dispatch_binary_op(op, [&](auto op_constant) {
            constexpr BinaryOp kOp = decltype(op_constant)::value;
            const T* pa = static_cast<const T*>(a);
            const T* pb = static_cast<const T*>(b);
            T* po = static_cast<T*>(out);
            if (plain) {
                launch_flat_packs<T>(
                    g.count,
                    [&](auto width, unsigned blocks) {
                        launch<binary_same_shape_kernel<kOp, T, decltype(width)::value>>({blocks, kThreadsPerBlock}, s,
                                                                                         pa, pb, po, g.count);
                    },
                    pa, pb, po);
            } else {
                launch<binary_broadcast_kernel<kOp, T>>({grid_for(g.count), kThreadsPerBlock}, s, g, pa, pb, po);
            }
        });
    });
}

void reduce_to_shape(const detail::ReduceToShapeGeometry& g, DType dtype, const void* full, void* reduced,
                     Stream stream) {
    if (g.count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_storage_types("binary op", dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<reduce_to_shape_kernel<T>>({grid_for(g.count), kThreadsPerBlock}, s, g, static_cast<const T*>(full),
                                          static_cast<T*>(reduced));
    });
}

CONVKIT_KERNELS_END
