// Binary elementwise ops with broadcasting. The index math is shared with the host backend
// (ops/broadcast.h); the sum that undoes a broadcast (their gradient) is kernels/reduce.cu's
// sum_dims.
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/binary.h"
#include "kernels/element_pack.cuh"
#include "kernels/fast_division.h"
#include "kernels/index_width.h"
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

// Past 2^31 elements: the shared index math (backend_api/broadcast.h), 64-bit divisions.
template <BinaryOp op, typename T>
__global__ void binary_broadcast_kernel(detail::BroadcastGeometry g, const T* a, const T* b, T* out) {
    for (std::int64_t i = global_thread_index(); i < g.count; i += global_thread_count()) {
        const detail::OperandOffsets o = detail::broadcast_offsets(g, i);
        out[i] = T(detail::binary_value<op>(static_cast<ComputeType<T>>(a[o.a]), static_cast<ComputeType<T>>(b[o.b])));
    }
}

// The same geometry for a launch whose every index is below 2^31: its merged dims innermost
// first, each extent a FastDivisor. An element's offsets then cost a multiply-shift, a
// multiply-subtract and two multiply-adds a dim, where the 64-bit division sequence took about
// 100 SASS instructions a dim (bfloat16 add, [N, C, H, W] + [1, C, 1, 1]: about 530 an element
// before the dims were merged).
struct FastBroadcastGeometry {
    static constexpr int kRank = detail::BroadcastGeometry::kRank;
    FastDivisor extent[kRank];
    int a_stride[kRank] = {};
    int b_stride[kRank] = {};
    int dims = 0;
    int count = 0;
};

FastBroadcastGeometry fast_geometry(const detail::BroadcastGeometry& g) {
    FastBroadcastGeometry fast;
    fast.count = static_cast<int>(g.count);
    for (int d = FastBroadcastGeometry::kRank - 1; d >= 0; --d) {
        const auto i = static_cast<std::size_t>(d);
        if (g.out[i] == 1) continue;  // (merged geometries keep their dims of 1 leading)
        fast.extent[fast.dims] = FastDivisor(static_cast<int>(g.out[i]));
        fast.a_stride[fast.dims] = static_cast<int>(g.a_stride[i]);
        fast.b_stride[fast.dims] = static_cast<int>(g.b_stride[i]);
        ++fast.dims;
    }
    return fast;
}

// Whether the fast kernel may take packs of Width outputs: the innermost merged dim a multiple
// of Width, along which each operand either runs (stride 1: a pack of it, aligned) or stays
// (stride 0: one value for the pack's lanes), as a bias or a per-channel scale does along the
// positions of a contiguous [N, C, H, W]. Every operand that runs then starts its packs on a
// multiple of Width (its outer strides are multiples of the inner extent).
template <typename T>
bool broadcast_packs_fit(const FastBroadcastGeometry& g, const T* a, const T* b, const T* out) {
    constexpr int width = kPackWidth<T>;
    if (g.dims == 0 || g.extent[0].divisor() % width != 0) return false;
    const auto runs_or_stays = [](int stride) { return stride == 0 || stride == 1; };
    if (!runs_or_stays(g.a_stride[0]) || !runs_or_stays(g.b_stride[0])) return false;
    return pack_aligned<T, width>(out, g.a_stride[0] == 1 ? a : nullptr, g.b_stride[0] == 1 ? b : nullptr);
}

// Pack `p` of Width values of an operand at `offset` whose innermost stride is `stride`: the
// pack there (stride 1), or its one value in every lane (stride 0). Width 1: the value.
template <int Width, typename T>
__device__ ElementPack<T, Width> operand_pack(const T* data, int offset, int stride) {
    if (Width > 1 && stride == 1) return load_pack<Width>(data, offset / Width);
    ElementPack<T, Width> pack;
    const T value = data[offset];
    for (int lane = 0; lane < Width; ++lane) pack.value[lane] = value;
    return pack;
}

// Width outputs a step (broadcast_packs_fit), or one.
template <BinaryOp op, typename T, int Width>
__global__ void binary_broadcast_fast_kernel(FastBroadcastGeometry g, const T* a, const T* b, T* out) {
    using C = ComputeType<T>;
    const std::int64_t packs = g.count / Width;
    for (std::int64_t p = global_thread_index(); p < packs; p += global_thread_count()) {
        int index = static_cast<int>(p) * Width, offset_a = 0, offset_b = 0;
        CONVKIT_UNROLL
        for (int k = 0; k < FastBroadcastGeometry::kRank; ++k) {
            if (k == g.dims) break;
            const int quotient = g.extent[k].divide(index);
            const int coordinate = index - quotient * g.extent[k].divisor();
            offset_a += coordinate * g.a_stride[k];
            offset_b += coordinate * g.b_stride[k];
            index = quotient;
        }
        const ElementPack<T, Width> u = operand_pack<Width>(a, offset_a, g.a_stride[0]);
        const ElementPack<T, Width> v = operand_pack<Width>(b, offset_b, g.b_stride[0]);
        ElementPack<T, Width> result;
        for (int lane = 0; lane < Width; ++lane) {
            result.value[lane] =
                T(detail::binary_value<op>(static_cast<C>(u.value[lane]), static_cast<C>(v.value[lane])));
        }
        store_pack<Width>(out, p, result);
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
            } else if (g.count < (std::int64_t{1} << 31) && !indices_forced_to_64_bits()) {
                const FastBroadcastGeometry fast = fast_geometry(g);
                constexpr int width = kPackWidth<T>;
                if (broadcast_packs_fit(fast, pa, pb, po)) {
                    launch<binary_broadcast_fast_kernel<kOp, T, width>>({grid_for(g.count / width), kThreadsPerBlock},
                                                                        s, fast, pa, pb, po);
                } else {
                    launch<binary_broadcast_fast_kernel<kOp, T, 1>>({grid_for(g.count), kThreadsPerBlock}, s, fast, pa,
                                                                    pb, po);
                }
            } else {
                launch<binary_broadcast_kernel<kOp, T>>({grid_for(g.count), kThreadsPerBlock}, s, g, pa, pb, po);
            }
        });
    });
}

CONVKIT_KERNELS_END
