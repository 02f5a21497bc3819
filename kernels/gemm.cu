// convkit's own matrix product: 16x16 output tiles, one per block, each thread one element; the
// tiles of A and B pass through shared memory (a column of padding keeps the transposed reads
// free of bank conflicts), so every element read from global memory is used 16 times. Simple
// and exact in its order (k ascending, then the previous C when accumulating, then the bias), it
// is what the emulated CUDA device multiplies with; speed on a GPU comes from cuBLAS. 16-bit
// operands are widened on load and summed in float32 (ComputeType), the result rounded once.
#include "kernels/gemm.h"

#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::StridedBatchedGemm;

constexpr int kTile = 16;

template <typename T>
__device__ T a_element(const StridedBatchedGemm& s, const T* a, std::int64_t row, std::int64_t k) {
    return s.transpose_a ? a[k * s.lead_a + row] : a[row * s.lead_a + k];
}

template <typename T>
__device__ T b_element(const StridedBatchedGemm& s, const T* b, std::int64_t k, std::int64_t column) {
    return s.transpose_b ? b[column * s.lead_b + k] : b[k * s.lead_b + column];
}

// Blocks stride over the output tiles of every product, row-major within one; threadIdx.x is
// column + 16 * row in the tile. `In` is the operands' storage type, `Out` C's.
template <typename In, typename Out>
__global__ void __launch_bounds__(kTile* kTile)
    gemm_tiled_kernel(StridedBatchedGemm s, const In* a, const In* b, const Out* bias, Out* c) {
    using Acc = ComputeType<In>;
    __shared__ Acc a_tile[kTile][kTile + 1];
    __shared__ Acc b_tile[kTile][kTile + 1];
    const int tx = static_cast<int>(threadIdx.x) % kTile;
    const int ty = static_cast<int>(threadIdx.x) / kTile;
    const std::int64_t tiles_n = (s.n + kTile - 1) / kTile;
    const std::int64_t tiles_per_product = tiles_n * ((s.m + kTile - 1) / kTile);
    for (std::int64_t tile = blockIdx.x; tile < tiles_per_product * s.batch; tile += gridDim.x) {
        const std::int64_t product = tile / tiles_per_product;
        const std::int64_t within = tile % tiles_per_product;
        const In* a_b = a + product * s.stride_a;
        const In* b_b = b + product * s.stride_b;
        Out* c_b = c + product * s.stride_c;
        const std::int64_t row = within / tiles_n * kTile + ty;
        const std::int64_t column = within % tiles_n * kTile + tx;
        Acc sum = 0;
        for (std::int64_t k0 = 0; k0 < s.k; k0 += kTile) {
            a_tile[ty][tx] = row < s.m && k0 + tx < s.k ? element_cast<Acc>(a_element(s, a_b, row, k0 + tx)) : Acc(0);
            b_tile[ty][tx] =
                k0 + ty < s.k && column < s.n ? element_cast<Acc>(b_element(s, b_b, k0 + ty, column)) : Acc(0);
            __syncthreads();
            for (int k = 0; k < kTile; ++k) sum += a_tile[ty][k] * b_tile[k][tx];
            __syncthreads();
        }
        if (row < s.m && column < s.n) {
            Out& out = c_b[row * s.lead_c + column];
            if (s.accumulate) sum += element_cast<Acc>(out);
            if (bias != nullptr) sum += element_cast<Acc>(bias[column]);
            out = element_cast<Out>(sum);
        }
    }
}

template <typename In, typename Out>
void launch_gemm(const StridedBatchedGemm& s, const void* a, const void* b, const void* bias, void* c,
                 Stream stream) {
    const std::int64_t tiles = ((s.m + kTile - 1) / kTile) * ((s.n + kTile - 1) / kTile) * s.batch;
    launch<gemm_tiled_kernel<In, Out>>({grid_stride_blocks(tiles), kTile * kTile}, detail::to_cuda(stream), s,
                                       static_cast<const In*>(a), static_cast<const In*>(b),
                                       static_cast<const Out*>(bias), static_cast<Out*>(c));
}
}  // namespace

void gemm_tiled(const detail::GemmShape& shape, DType dtype, const void* a, const void* b, const void* bias, void* c,
                Stream stream) {
    if (shape.m == 0 || shape.n == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    StridedBatchedGemm s{shape};
    s.lead_a = shape.lda();
    s.lead_b = shape.ldb();
    s.lead_c = shape.n;
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch_gemm<T, T>(s, a, b, bias, c, stream);
    });
}

void gemm_tiled_strided_batched(const detail::StridedBatchedGemm& shape, DType operands, DType result, const void* a,
                                const void* b, void* c, Stream stream) {
    if (shape.m == 0 || shape.n == 0 || shape.batch == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const bool sixteen_bit = operands == DType::BFloat16 || operands == DType::Float16;
    if (result != operands && !(sixteen_bit && result == DType::Float32)) {
        throw NotSupported(std::string("gemm_tiled_strided_batched: ") + dtype_name(operands) + " operands give " +
                           dtype_name(operands) + (sixteen_bit ? " or float32" : "") + " results, not " +
                           dtype_name(result));
    }
    dispatch_float_storage_types("gemm_tiled_strided_batched", operands, [&](auto zero) {
        using T = decltype(zero);
        if (result == operands) {
            launch_gemm<T, T>(shape, a, b, nullptr, c, stream);
        } else if constexpr (!std::is_same_v<T, double>) {
            launch_gemm<T, float>(shape, a, b, nullptr, c, stream);
        }
    });
}

CONVKIT_KERNELS_END
