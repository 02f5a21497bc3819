// convkit's own matrix product: 16x16 output tiles, one per block, each thread one element; the
// tiles of A and B pass through shared memory (a column of padding keeps the transposed reads
// free of bank conflicts), so every element read from global memory is used 16 times. Simple
// and exact in its order (k ascending, then the bias), it is what the emulated CUDA device
// multiplies with; speed on a GPU comes from cuBLAS.
#include "kernels/gemm.h"

#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::GemmShape;

constexpr int kTile = 16;

template <typename T>
__device__ T a_element(const GemmShape& s, const T* a, std::int64_t row, std::int64_t k) {
    return s.transpose_a ? a[k * s.m + row] : a[row * s.k + k];
}

template <typename T>
__device__ T b_element(const GemmShape& s, const T* b, std::int64_t k, std::int64_t column) {
    return s.transpose_b ? b[column * s.k + k] : b[k * s.n + column];
}

// Blocks stride over the output tiles, row-major; threadIdx.x is column + 16 * row in the tile.
template <typename T>
__global__ void __launch_bounds__(kTile* kTile)
    gemm_tiled_kernel(GemmShape s, const T* a, const T* b, const T* bias, T* c) {
    __shared__ T a_tile[kTile][kTile + 1];
    __shared__ T b_tile[kTile][kTile + 1];
    const int tx = static_cast<int>(threadIdx.x) % kTile;
    const int ty = static_cast<int>(threadIdx.x) / kTile;
    const std::int64_t tiles_n = (s.n + kTile - 1) / kTile;
    const std::int64_t tiles = tiles_n * ((s.m + kTile - 1) / kTile);
    for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const std::int64_t row = tile / tiles_n * kTile + ty;
        const std::int64_t column = tile % tiles_n * kTile + tx;
        T sum = 0;
        for (std::int64_t k0 = 0; k0 < s.k; k0 += kTile) {
            a_tile[ty][tx] = row < s.m && k0 + tx < s.k ? a_element(s, a, row, k0 + tx) : T(0);
            b_tile[ty][tx] = k0 + ty < s.k && column < s.n ? b_element(s, b, k0 + ty, column) : T(0);
            __syncthreads();
            for (int k = 0; k < kTile; ++k) sum += a_tile[ty][k] * b_tile[k][tx];
            __syncthreads();
        }
        if (row < s.m && column < s.n) c[row * s.n + column] = bias != nullptr ? sum + bias[column] : sum;
    }
}
}  // namespace

void gemm_tiled(const detail::GemmShape& shape, DType dtype, const void* a, const void* b, const void* bias, void* c,
                Stream stream) {
    if (shape.m == 0 || shape.n == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const std::int64_t tiles = ((shape.m + kTile - 1) / kTile) * ((shape.n + kTile - 1) / kTile);
    const unsigned blocks = grid_stride_blocks(tiles);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<gemm_tiled_kernel<T>>({blocks, kTile * kTile}, detail::to_cuda(stream), shape, static_cast<const T*>(a),
                                     static_cast<const T*>(b), static_cast<const T*>(bias), static_cast<T*>(c));
    });
}

CONVKIT_KERNELS_END
