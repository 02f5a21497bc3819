// A bf16 GEMM on tensor cores, the pattern the fast convolution kernels will follow: cp.async
// copies 32x32 tiles of A and B into shared memory two stages ahead, ldmatrix loads the mma
// fragments (.trans for B, stored k-major), mma.sync m16n8k16 accumulates in float. 4 warps per
// block, each a 16x16 piece of the block's 32x32 tile. Correctness first: no swizzle, so
// ldmatrix rows conflict on banks. nvcc compiles it for sm_90 (convkit_emu_cuda_check); the
// emulator runs it against a plain loop (test_emu_gemm.cpp). GemmPlant plants two bugs.
#include "kernels/kernel_support.cuh"
#include "kernels/ptx.cuh"
#include "test_kernels.h"

CONVKIT_KERNELS_BEGIN
namespace emu_tests {

namespace {
constexpr int kTile = 32;  // block tile in m, n and k
constexpr int kWarps = 4;  // 2 x 2 warps of 16 x 16
constexpr int kThreads = kWarps * 32;
constexpr int kChunk = 8;  // bf16 elements per 16-byte cp.async

struct alignas(16) Tile {
    std::uint16_t v[kTile][kTile];  // 64-byte rows: every 8-element row piece is 16-byte aligned
};

// Thread t copies one 16-byte chunk of each tile: row t / 4, chunk t % 4.
__device__ void load_stage(const std::uint16_t* a, const std::uint16_t* b, int n, int k, int block_m, int block_n,
                           int kt, Tile& a_tile, Tile& b_tile) {
    const int row = static_cast<int>(threadIdx.x) / 4;
    const int col = static_cast<int>(threadIdx.x) % 4 * kChunk;
    ptx::cp_async<16>(&a_tile.v[row][col], a + static_cast<std::int64_t>(block_m + row) * k + kt * kTile + col);
    ptx::cp_async<16>(&b_tile.v[row][col], b + static_cast<std::int64_t>(kt * kTile + row) * n + block_n + col);
}

// acc[j] += A(16 rows of the warp, 32 k) * B(32 k, n8 tile j of the warp).
__device__ void multiply_stage(const Tile& a_tile, const Tile& b_tile, int warp_m, int warp_n, float (&acc)[2][4]) {
    const int lane = static_cast<int>(threadIdx.x) % 32;
    const int matrix = lane / 8, row = lane % 8;
    for (int kk = 0; kk < kTile; kk += 16) {
        // A: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15):
        // registers a0..a3 of the m16n8k16 A fragment.
        std::uint32_t a_frag[4];
        ptx::ldmatrix<4, false>(a_frag, &a_tile.v[warp_m * 16 + matrix % 2 * 8 + row][kk + matrix / 2 * 8]);
        // B stored [k][n]; transposed 8x8 loads give lane l the elements (k 2(l%4)+j, n l/4):
        // matrices (k 0-7 | k 8-15) x (n 0-7 | n 8-15) are b0, b1 of tile 0 and of tile 1.
        std::uint32_t b_frag[4];
        ptx::ldmatrix<4, true>(b_frag, &b_tile.v[kk + matrix % 2 * 8 + row][warp_n * 16 + matrix / 2 * 8]);
        const std::uint32_t b0[2] = {b_frag[0], b_frag[1]};
        const std::uint32_t b1[2] = {b_frag[2], b_frag[3]};
        ptx::mma_m16n8k16_bf16(acc[0], a_frag, b0, acc[0]);
        ptx::mma_m16n8k16_bf16(acc[1], a_frag, b1, acc[1]);
    }
}

template <GemmPlant kPlant>
__global__ void __launch_bounds__(kThreads)
    gemm_bf16_mma_kernel(int n, int k, const std::uint16_t* a, const std::uint16_t* b, float* c) {
    __shared__ Tile a_tiles[2];
    __shared__ Tile b_tiles[2];
    const int block_m = static_cast<int>(blockIdx.y) * kTile, block_n = static_cast<int>(blockIdx.x) * kTile;
    const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
    const int warp_m = warp / 2, warp_n = warp % 2;
    float acc[2][4] = {};
    const int k_tiles = k / kTile;
    load_stage(a, b, n, k, block_m, block_n, 0, a_tiles[0], b_tiles[0]);
    ptx::cp_async_commit_group();
    for (int kt = 0; kt < k_tiles; ++kt) {
        if (kt + 1 < k_tiles) {
            // The stage being refilled was last read before the barrier that ended kt - 1.
            load_stage(a, b, n, k, block_m, block_n, kt + 1, a_tiles[(kt + 1) % 2], b_tiles[(kt + 1) % 2]);
            ptx::cp_async_commit_group();
            if constexpr (kPlant != GemmPlant::ReadBeforeWait) ptx::cp_async_wait_group<1>();
        } else if constexpr (kPlant != GemmPlant::ReadBeforeWait) {
            ptx::cp_async_wait_group<0>();
        }
        __syncthreads();  // every thread's copies of stage kt have landed
        multiply_stage(a_tiles[kt % 2], b_tiles[kt % 2], warp_m, warp_n, acc);
        __syncthreads();  // stage kt is read before it is refilled
    }
    // The C fragment: registers 0, 1 at row g, columns 2t, 2t+1; registers 2, 3 at row g + 8.
    const int g = lane / 4, t = lane % 4;
    for (int j = 0; j < 2; ++j) {
        const int row = block_m + warp_m * 16 + g;
        const int col = block_n + warp_n * 16 + j * 8 + 2 * t;
        const bool swap = kPlant == GemmPlant::WrongAccumulatorFragment;
        c[static_cast<std::int64_t>(row) * n + col] = acc[j][0];
        c[static_cast<std::int64_t>(row) * n + col + 1] = acc[j][swap ? 2 : 1];
        c[static_cast<std::int64_t>(row + 8) * n + col] = acc[j][swap ? 1 : 2];
        c[static_cast<std::int64_t>(row + 8) * n + col + 1] = acc[j][3];
    }
}
}  // namespace

void gemm_bf16_mma(int m, int n, int k, const std::uint16_t* a, const std::uint16_t* b, float* c, GemmPlant plant) {
    if (m % kTile != 0 || n % kTile != 0 || k % kTile != 0 || m <= 0 || n <= 0 || k <= 0) {
        throw InvalidArgument("gemm_bf16_mma: m, n, k must be positive multiples of 32, got " + std::to_string(m) +
                              ", " + std::to_string(n) + ", " + std::to_string(k));
    }
    const LaunchShape shape{dim3(static_cast<unsigned>(n / kTile), static_cast<unsigned>(m / kTile)), kThreads};
    switch (plant) {
        case GemmPlant::None:
            return launch<gemm_bf16_mma_kernel<GemmPlant::None>>(shape, nullptr, n, k, a, b, c);
        case GemmPlant::WrongAccumulatorFragment:
            return launch<gemm_bf16_mma_kernel<GemmPlant::WrongAccumulatorFragment>>(shape, nullptr, n, k, a, b, c);
        case GemmPlant::ReadBeforeWait:
            return launch<gemm_bf16_mma_kernel<GemmPlant::ReadBeforeWait>>(shape, nullptr, n, k, a, b, c);
    }
}

}  // namespace emu_tests
CONVKIT_KERNELS_END
