// Probes of the CUDA model for the emulator's tests (tests/emu/test_emu_model.cpp): warp and
// block operations with known answers, the PTX wrappers on known data, and misuse that must be
// reported. Valid CUDA as well: nvcc compiles this file too (convkit_emu_cuda_check).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/element_pack.cuh"
#include "kernels/kernel_support.cuh"
#include "kernels/ptx.cuh"
#include "test_kernels.h"

CONVKIT_KERNELS_BEGIN
namespace emu_tests {

namespace {
constexpr unsigned kFullWarp = 0xffffffffu;

__global__ void warp_operations_kernel(int* out) {
    const int lane = static_cast<int>(threadIdx.x);
    const int value = lane * 10;
    out[0 * 32 + lane] = __shfl_sync(kFullWarp, value, (lane + 3) % 32);
    out[1 * 32 + lane] = __shfl_up_sync(kFullWarp, value, 1);
    out[2 * 32 + lane] = __shfl_down_sync(kFullWarp, value, 2, 16);
    out[3 * 32 + lane] = __shfl_xor_sync(kFullWarp, value, 5, 8);
    out[4 * 32 + lane] = static_cast<int>(__ballot_sync(kFullWarp, lane % 3 == 0));
    out[5 * 32 + lane] = __any_sync(kFullWarp, lane == 7);
    out[6 * 32 + lane] = __all_sync(kFullWarp, lane < 40);
    out[7 * 32 + lane] = static_cast<int>(__activemask());
}

__global__ void block_operations_kernel(int* out) {
    const bool every_fourth = threadIdx.x % 4 == 0;
    const int count = __syncthreads_count(every_fourth);
    const int all = __syncthreads_and(every_fourth);
    const int any = __syncthreads_or(every_fourth);
    atomicAdd(&out[3], 1);
    if (threadIdx.x == blockDim.x - 1) {
        out[0] = count;
        out[1] = all;
        out[2] = any;
    }
}

__global__ void dynamic_shared_kernel(int* out) {
    int* shared = dynamic_shared_memory<int>();
    shared[threadIdx.x] = static_cast<int>(threadIdx.x) + 100;
    __syncthreads();
    out[threadIdx.x] = shared[(threadIdx.x + 1) % blockDim.x];
}

__global__ void unwritten_shared_kernel(float* out) {
    __shared__ float value;
    out[blockIdx.x] = value;
    value = 42.0f;
}

// The order blocks ran in: each block's thread 0 takes the next slot and writes its linear index
// there (x fastest).
__global__ void block_order_kernel(unsigned* next_slot, unsigned* order) {
    if (threadIdx.x != 0) return;
    const unsigned slot = atomicAdd(next_slot, 1u);
    order[slot] = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
}

struct alignas(16) MatrixRow {
    std::uint16_t element[8];
};

// The tile is staged in shared memory (ldmatrix reads only shared memory) by the first lanes.
template <int Matrices, bool Transpose>
__global__ void ldmatrix_kernel(const std::uint16_t* tile, int row_stride, std::uint32_t* out) {
    __shared__ MatrixRow rows[32];
    const int lane = static_cast<int>(threadIdx.x);
    for (int i = 0; i < 8; ++i) rows[lane].element[i] = tile[lane * row_stride + i];
    __syncwarp();
    std::uint32_t registers[Matrices];
    ptx::ldmatrix<Matrices, Transpose>(registers, &rows[lane]);
    for (int i = 0; i < Matrices; ++i) out[lane * 4 + i] = registers[i];
}

__device__ std::uint32_t pack(std::uint16_t low, std::uint16_t high) {
    return static_cast<std::uint32_t>(low) | static_cast<std::uint32_t>(high) << 16;
}

// The fragments written out element by element from the PTX ISA's figures for m16n8k16
// (group g = lane / 4, t = lane % 4), independently of the emulator's index formulas.
__global__ void mma_kernel(const std::uint16_t* a, const std::uint16_t* b, const float* c, bool bfloat16, float* d) {
    const int lane = static_cast<int>(threadIdx.x);
    const int g = lane / 4, t = lane % 4;
    auto at = [&](int row, int col) { return a[row * 16 + col]; };
    auto bt = [&](int k, int col) { return b[k * 8 + col]; };
    const std::uint32_t af[4] = {pack(at(g, 2 * t), at(g, 2 * t + 1)), pack(at(g + 8, 2 * t), at(g + 8, 2 * t + 1)),
                                 pack(at(g, 2 * t + 8), at(g, 2 * t + 9)),
                                 pack(at(g + 8, 2 * t + 8), at(g + 8, 2 * t + 9))};
    const std::uint32_t bf[2] = {pack(bt(2 * t, g), bt(2 * t + 1, g)), pack(bt(2 * t + 8, g), bt(2 * t + 9, g))};
    const float cf[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
    float df[4];
    if (bfloat16) {
        ptx::mma_m16n8k16_bf16(df, af, bf, cf);
    } else {
        ptx::mma_m16n8k16_f16(df, af, bf, cf);
    }
    d[g * 8 + 2 * t] = df[0];
    d[g * 8 + 2 * t + 1] = df[1];
    d[(g + 8) * 8 + 2 * t] = df[2];
    d[(g + 8) * 8 + 2 * t + 1] = df[3];
}

// The same for m16n8k8 .tf32 (PTX ISA "Matrix Fragments for mma.m16n8k8", .tf32): a0..a3 at
// (g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4); b0, b1 at (k t, n g), (k t + 4, n g).
__global__ void mma_tf32_kernel(const float* a, const float* b, const float* c, bool round, float* d) {
    const int lane = static_cast<int>(threadIdx.x);
    const int g = lane / 4, t = lane % 4;
    auto bits = [&](float v) {
        std::uint32_t u;
        memcpy(&u, &v, sizeof(u));
        return round ? ptx::round_to_tf32(u) : u;
    };
    auto at = [&](int row, int col) { return bits(a[row * 8 + col]); };
    auto bt = [&](int k, int col) { return bits(b[k * 8 + col]); };
    const std::uint32_t af[4] = {at(g, t), at(g + 8, t), at(g, t + 4), at(g + 8, t + 4)};
    const std::uint32_t bf[2] = {bt(t, g), bt(t + 4, g)};
    const float cf[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
    float df[4];
    ptx::mma_m16n8k8_tf32(df, af, bf, cf);
    d[g * 8 + 2 * t] = df[0];
    d[g * 8 + 2 * t + 1] = df[1];
    d[(g + 8) * 8 + 2 * t] = df[2];
    d[(g + 8) * 8 + 2 * t + 1] = df[3];
}

__global__ void round_shared_tf32_kernel(const float* in, float* out) {
    __shared__ ElementPack<float, 4> chunks[32];
    const int lane = static_cast<int>(threadIdx.x);
    ptx::cp_async<16>(&chunks[lane], in + 4 * lane, 16);
    ptx::cp_async_commit_group();
    ptx::cp_async_wait_group<0>();
    ptx::round_shared_chunk_to_tf32(&chunks[lane]);
    __syncwarp();
    for (int i = 0; i < 4; ++i) out[4 * lane + i] = chunks[(lane + 1) % 32].value[i];
}

// Thread i: out[i] = ptx::pair_takes_maximum(a[i], b[i]).
template <ptx::HalfPair Pair>
__global__ void pair_takes_maximum_kernel(const std::uint32_t* a, const std::uint32_t* b, int count,
                                          std::uint32_t* out) {
    const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < count) out[i] = ptx::pair_takes_maximum<Pair>(a[i], b[i]);
}

// `sink` is 16-byte aligned (misuse_probe), a cp.async source.
__global__ void misuse_kernel(Misuse misuse, int* sink) {
    const int lane = static_cast<int>(threadIdx.x) % 32;
    switch (misuse) {
        case Misuse::EarlyReturnBeforeBarrier:
            if (threadIdx.x == 5) return;
            __syncthreads();
            break;
        case Misuse::DifferentWarpOperations:
            if (lane < 16) {
                sink[lane] = static_cast<int>(__ballot_sync(kFullWarp, 1));
            } else {
                sink[lane] = __shfl_sync(kFullWarp, lane, 0);
            }
            break;
        case Misuse::LaneOutsideItsMask:
            if (lane < 16 || lane == 20) sink[lane] = __shfl_sync(0x0000ffffu, lane, 0);
            break;
        case Misuse::SourceOutsideTheMask:
            if (lane < 16) sink[lane] = __shfl_sync(0x0000ffffu, lane, 20);
            break;
        case Misuse::MisalignedLdmatrix: {
            __shared__ MatrixRow rows[33];
            rows[lane] = MatrixRow{};
            __syncwarp();
            const auto* row = reinterpret_cast<const unsigned char*>(&rows[lane]) + (lane == 3 ? 8 : 0);
            std::uint32_t registers[1];
            ptx::ldmatrix<1, false>(registers, row);
            sink[lane] = static_cast<int>(registers[0]);
            break;
        }
        case Misuse::MisalignedPack: {
            __shared__ ElementPack<float, 4> packs[2];
            const float* buffer = packs[0].value + (lane == 6 ? 1 : 0);
            sink[lane] = load_pack<4>(buffer, 0).value[0] == 0.0f ? 1 : 0;  // poison or not, a compare
            break;
        }
        case Misuse::Trap:
            if (blockIdx.x == 1 && threadIdx.x == 9) __trap();
            break;
        case Misuse::DifferentBarriers:
            if (lane < 16) {
                __syncthreads();
            } else {
                __syncthreads();
            }
            break;
        case Misuse::SyncwarpWithoutALane:
            if (lane == 7) return;
            __syncwarp();
            break;
        case Misuse::MisalignedTf32Rounding: {
            __shared__ ElementPack<float, 8> pairs[32];
            ptx::round_shared_chunk_to_tf32(pairs[lane].value + (lane == 2 ? 1 : 0));
            break;
        }
        case Misuse::Tf32RoundingBeforeTheWait: {
            __shared__ ElementPack<float, 4> chunks[32];
            ptx::cp_async<16>(&chunks[lane], sink, 16);
            ptx::cp_async_commit_group();
            if (lane == 4) ptx::round_shared_chunk_to_tf32(&chunks[lane]);
            ptx::cp_async_wait_group<0>();
            break;
        }
        case Misuse::MbarrierCountZero: {
            __shared__ std::uint64_t barrier;
            if (threadIdx.x == 0) ptx::mbarrier_init(&barrier, 0);
            break;
        }
        case Misuse::MbarrierNotInitialised: {
            __shared__ std::uint64_t barrier;
            if (lane == 3) ptx::mbarrier_arrive(&barrier);
            break;
        }
        case Misuse::MbarrierInitialisedTwice: {
            __shared__ std::uint64_t barrier;
            if (threadIdx.x == 0) {
                ptx::mbarrier_init(&barrier, 1);
                ptx::mbarrier_init(&barrier, 1);
            }
            break;
        }
        case Misuse::MbarrierNeverCompletes: {
            __shared__ std::uint64_t barrier;
            if (threadIdx.x == 0) ptx::mbarrier_init(&barrier, 33);
            __syncthreads();
            ptx::mbarrier_arrive(&barrier);
            ptx::mbarrier_wait_parity(&barrier, 0);
            break;
        }
    }
}

__global__ void named_barrier_kernel(NamedBarrierUse use, int* out) {
    __shared__ int first[96], second[96];
    const int t = static_cast<int>(threadIdx.x);
    if (t < 32) return;
    const int me = t - 32, next = (me + 1) % 96;
    switch (use) {
        case NamedBarrierUse::Exchange:
            first[me] = t;
            ptx::named_barrier_sync(1, 96);
            second[me] = t + 1000 * first[next];  // read before, written after: the barrier again
            ptx::named_barrier_sync(1, 96);
            out[t] = second[next];
            break;
        case NamedBarrierUse::IdZero:
            ptx::named_barrier_sync(0, 96);
            break;
        case NamedBarrierUse::CountNotWarps:
            ptx::named_barrier_sync(1, 48);
            break;
        case NamedBarrierUse::DifferentCounts:
            ptx::named_barrier_sync(2, t < 64 ? 64 : 96);
            break;
        case NamedBarrierUse::NeverFills:
            ptx::named_barrier_sync(1, 128);
            break;
        case NamedBarrierUse::PartOfAWarp:
            if (t % 32 < 16 || t >= 96) ptx::named_barrier_sync(1, 64);
            break;
    }
}

__global__ void empty_kernel() {}
}  // namespace

void warp_operations_probe(int* out) {
    launch<warp_operations_kernel>({1, 32}, nullptr, out);
}

void block_operations_probe(int threads, int* out) {
    launch<block_operations_kernel>({1, static_cast<unsigned>(threads)}, nullptr, out);
}

void dynamic_shared_probe(int threads, int* out, std::size_t dynamic_bytes) {
    launch<dynamic_shared_kernel>({1, static_cast<unsigned>(threads), dynamic_bytes}, nullptr, out);
}

void unwritten_shared_probe(int blocks, float* out) {
    launch<unwritten_shared_kernel>({static_cast<unsigned>(blocks), 1}, nullptr, out);
}

void block_order_probe(unsigned x, unsigned y, unsigned z, unsigned* order) {
    unsigned next_slot = 0;
    launch<block_order_kernel>({dim3(x, y, z), 32}, nullptr, &next_slot, order);
}

void ldmatrix_probe(const std::uint16_t* tile, int row_stride, int matrices, bool transpose, std::uint32_t* out) {
    const LaunchShape warp{1, 32};
    switch (matrices * 2 + (transpose ? 1 : 0)) {
        case 2:
            return launch<ldmatrix_kernel<1, false>>(warp, nullptr, tile, row_stride, out);
        case 3:
            return launch<ldmatrix_kernel<1, true>>(warp, nullptr, tile, row_stride, out);
        case 4:
            return launch<ldmatrix_kernel<2, false>>(warp, nullptr, tile, row_stride, out);
        case 5:
            return launch<ldmatrix_kernel<2, true>>(warp, nullptr, tile, row_stride, out);
        case 8:
            return launch<ldmatrix_kernel<4, false>>(warp, nullptr, tile, row_stride, out);
        default:
            return launch<ldmatrix_kernel<4, true>>(warp, nullptr, tile, row_stride, out);
    }
}

void mma_probe(const std::uint16_t* a, const std::uint16_t* b, const float* c, bool bfloat16, float* d) {
    launch<mma_kernel>({1, 32}, nullptr, a, b, c, bfloat16, d);
}

void mma_tf32_probe(const float* a, const float* b, const float* c, bool round, float* d) {
    launch<mma_tf32_kernel>({1, 32}, nullptr, a, b, c, round, d);
}

void round_shared_tf32_probe(const float* in, float* out) {
    launch<round_shared_tf32_kernel>({1, 32}, nullptr, in, out);
}

void pair_takes_maximum_probe(bool bfloat16, const std::uint32_t* a, const std::uint32_t* b, int count,
                              std::uint32_t* out) {
    const LaunchShape shape{static_cast<unsigned>((count + 127) / 128), 128};
    if (bfloat16) {
        launch<pair_takes_maximum_kernel<ptx::HalfPair::BFloat16>>(shape, nullptr, a, b, count, out);
    } else {
        launch<pair_takes_maximum_kernel<ptx::HalfPair::Float16>>(shape, nullptr, a, b, count, out);
    }
}

void misuse_probe(Misuse misuse) {
    alignas(16) int sink[64] = {};
    launch<misuse_kernel>({2, 32}, nullptr, misuse, sink);
}

void named_barrier_probe(NamedBarrierUse use, int* out) {
    launch<named_barrier_kernel>({1, 128}, nullptr, use, out);
}

void empty_kernel_launch(unsigned blocks, unsigned threads, std::size_t dynamic_bytes) {
    launch<empty_kernel>({blocks, threads, dynamic_bytes}, nullptr);
}

}  // namespace emu_tests
CONVKIT_KERNELS_END
