// Deliberately broken kernels (issue #12, item 5): each is a small correct kernel with one bug
// planted behind a Planted value, so a test can show that the emulator catches the bug (a
// KernelFault or a wrong result) and that the same kernel without it passes. The GEMM's two
// planted bugs (a wrong accumulator fragment, a cp.async read before its wait) are in
// gemm_bf16_mma.cu. docs/testing.md records which schedule caught which.
#include "kernels/kernel_support.cuh"
#include "test_kernels.h"

CONVKIT_KERNELS_BEGIN
namespace emu_tests {

namespace {
constexpr unsigned kFullWarp = 0xffffffffu;
constexpr int kBlock = 256;

template <Planted kPlant>
__global__ void reverse_blocks_kernel(const float* in, float* out) {
    __shared__ float staged[kBlock];
    const int t = static_cast<int>(threadIdx.x);
    const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * kBlock;
    staged[t] = in[base + t];
    if constexpr (kPlant != Planted::MissingSyncthreads) __syncthreads();  // planted: reads another thread's write
    out[base + t] = staged[kBlock - 1 - t];
}

template <Planted kPlant>
__global__ void warp_pair_sums_kernel(const float* in, float* out) {
    __shared__ float staged[32];
    const int lane = static_cast<int>(threadIdx.x);
    staged[lane] = in[lane];
    if constexpr (kPlant != Planted::MissingSyncwarp) __syncwarp();  // planted: the neighbour's write unseen
    const float neighbour = staged[lane ^ 1];
    out[lane] = neighbour + __shfl_xor_sync(kFullWarp, neighbour, 2);
}

template <Planted kPlant>
__global__ void double_elements_kernel(const float* in, float* out, int count) {
    const int bound = kPlant == Planted::OffByOneBound ? count - 1 : count;  // planted: misses the last
    for (std::int64_t i = global_thread_index(); i < bound; i += global_thread_count()) out[i] = in[i] * 2.0f;
}

}  // namespace

void reverse_blocks(const float* in, float* out, int count, Planted plant) {
    const LaunchShape shape{static_cast<unsigned>(count / kBlock), kBlock};
    if (plant == Planted::MissingSyncthreads) {
        launch<reverse_blocks_kernel<Planted::MissingSyncthreads>>(shape, nullptr, in, out);
    } else {
        launch<reverse_blocks_kernel<Planted::None>>(shape, nullptr, in, out);
    }
}

void warp_pair_sums(const float* in, float* out, Planted plant) {
    if (plant == Planted::MissingSyncwarp) {
        launch<warp_pair_sums_kernel<Planted::MissingSyncwarp>>({1, 32}, nullptr, in, out);
    } else {
        launch<warp_pair_sums_kernel<Planted::None>>({1, 32}, nullptr, in, out);
    }
}

void double_elements(const float* in, float* out, int count, Planted plant) {
    const LaunchShape shape{grid_for(count), kThreadsPerBlock};
    if (plant == Planted::OffByOneBound) {
        launch<double_elements_kernel<Planted::OffByOneBound>>(shape, nullptr, in, out, count);
    } else {
        launch<double_elements_kernel<Planted::None>>(shape, nullptr, in, out, count);
    }
}

}  // namespace emu_tests
CONVKIT_KERNELS_END
