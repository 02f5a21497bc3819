// One warpgroup multiplies through wgmma (kernels/ptx.cuh): D (64 x N) = A (64 x K) * B (K x N)
// [+ C], bf16, f16 or tf32, A and B staged in shared memory K-major, either 128-byte swizzled or
// as plain 8x16-byte core matrices, or (16-bit) MN-major 128-byte swizzled (the transpose flags),
// several k steps in one or two commit groups. The emulator runs it on every commit;
// on an H100/H200 (test_cuda_wgmma.cpp) the same source checks that the emulator's reading of
// the PTX ISA (descriptors, swizzle, accumulator fragment) is the hardware's. The staging below
// writes the layouts from the ISA's pictures, independently of the emulator's address decoding
// (kernels/wgmma_descriptor.h). Compiled by nvcc for sm_90a (tests/CMakeLists.txt).
#include <limits>
#include <type_traits>

#include "kernels/kernel_support.cuh"
#include "kernels/ptx.cuh"
#include "test_kernels.h"

CONVKIT_KERNELS_BEGIN
namespace emu_tests {

namespace {
constexpr int kThreads = 128;               // one warpgroup
constexpr int kRows = 64;                   // M of wgmma
constexpr std::uint32_t kRowBytes = 128;    // one 128-byte swizzled row; k of one wgmma is 32 bytes
constexpr std::uint32_t kAtomBytes = 1024;  // 8 rows x 128 bytes: a 128-byte swizzle's repeat

template <ptx::WgmmaOperands kOperands>
using Element = std::conditional_t<kOperands == ptx::WgmmaOperands::TensorFloat32, std::uint32_t, std::uint16_t>;

// The byte offset of element (row, k) of a K-major tile of `rows` rows and `e`-byte elements,
// relative to its 1024-byte-aligned start.
//   128-byte swizzle: k-blocks of 128 bytes, each `rows` rows of 128 bytes; inside a group of 8
//     rows (1024 bytes), the 16-byte chunk c of row r is stored at chunk c ^ (r % 8).
//   no swizzle: core matrices of 8 rows x 16 bytes (128 contiguous bytes), column-major over the
//     tile: core matrix (r / 8, k-chunk j) at (j * (rows / 8) + r / 8) * 128.
__device__ std::uint32_t staged_offset(int rows, int row, int k, std::uint32_t e, bool swizzle, bool plant_unswizzled) {
    const auto r = static_cast<std::uint32_t>(row), byte = static_cast<std::uint32_t>(k) * e;
    if (!swizzle) return ((byte / 16) * static_cast<std::uint32_t>(rows / 8) + r / 8) * 128 + r % 8 * 16 + byte % 16;
    const std::uint32_t block = byte / kRowBytes * static_cast<std::uint32_t>(rows) * kRowBytes;
    const std::uint32_t chunk = byte % kRowBytes / 16;
    const std::uint32_t stored_chunk = plant_unswizzled ? chunk : chunk ^ (r % 8);
    return block + r / 8 * kAtomBytes + r % 8 * kRowBytes + stored_chunk * 16 + byte % 16;
}

// The byte offset of element (row, k) of an MN-major tile of `rows` rows (M or N) and `k_total`
// k-rows of `e`-byte elements, 128-byte swizzled: 128-byte blocks of M/N (64 16-bit values), each
// k_total rows of 128 bytes, one per k; inside a group of 8 k-rows (1024 bytes), the 16-byte chunk
// c of k-row r is stored at chunk c ^ (r % 8).
__device__ std::uint32_t staged_offset_mn(int row, int k, int k_total, std::uint32_t e, bool plant_unswizzled) {
    const auto kk = static_cast<std::uint32_t>(k), byte = static_cast<std::uint32_t>(row) * e;
    const std::uint32_t block = byte / kRowBytes * static_cast<std::uint32_t>(k_total) * kRowBytes;
    const std::uint32_t chunk = byte % kRowBytes / 16;
    const std::uint32_t stored_chunk = plant_unswizzled ? chunk : chunk ^ (kk % 8);
    return block + kk / 8 * kAtomBytes + kk % 8 * kRowBytes + stored_chunk * 16 + byte % 16;
}

// The descriptor of k step `step` (16 k-rows of 16-bit values) of an MN-major tile staged as
// above: the step's first group of 8 k-rows; SBO the next 8 k-rows (one atom), LBO the next 128
// bytes of M/N (a block of k_total rows).
__device__ std::uint64_t step_descriptor_mn(const unsigned char* tile, int k_total, int step) {
    const auto block = static_cast<std::uint32_t>(k_total) * kRowBytes;
    return ptx::wgmma_descriptor(tile + static_cast<std::uint32_t>(step) * 2 * kAtomBytes, block, kAtomBytes,
                                 wgmma::Swizzle::Bytes128);
}

// The descriptor of k step `step` (32 bytes of k: bytes 32 step .. 32 step + 31 of each row) of a
// tile staged as above.
__device__ std::uint64_t step_descriptor(const unsigned char* tile, int rows, int step, bool swizzle) {
    const auto byte = static_cast<std::uint32_t>(step) * 32;
    if (!swizzle) {
        // LBO: the next core matrix in K (rows / 8 core matrices on); SBO: the next 8 rows.
        const auto lbo = static_cast<std::uint32_t>(rows / 8 * 128);
        return ptx::wgmma_descriptor(tile + byte / 16 * lbo, lbo, 128, wgmma::Swizzle::None);
    }
    // SBO: the next 8 rows (one 1024-byte atom); LBO unused for K-major swizzled tiles (16).
    const unsigned char* block = tile + byte / kRowBytes * static_cast<std::uint32_t>(rows) * kRowBytes;
    return ptx::wgmma_descriptor(block + byte % kRowBytes, 16, kAtomBytes, wgmma::Swizzle::Bytes128);
}

template <bool MnMajor, typename T>
__device__ void stage(unsigned char* tile, const T* source, int rows, int k_total, bool swizzle,
                      bool plant_unswizzled) {
    for (int i = static_cast<int>(threadIdx.x); i < rows * k_total; i += kThreads) {
        const int row = i / k_total, k = i % k_total;
        const std::uint32_t offset = MnMajor ? staged_offset_mn(row, k, k_total, sizeof(T), plant_unswizzled)
                                             : staged_offset(rows, row, k, sizeof(T), swizzle, plant_unswizzled);
        *reinterpret_cast<T*>(tile + offset) = source[i];
    }
}

// Register i of thread t: row 16 (t / 32) + (t % 32) / 4 + 8 ((i / 2) % 2), column
// 8 (i / 4) + 2 (t % 4) + i % 2 (PTX ISA, wgmma D fragment); the plant swaps the roles of i % 2
// and (i / 2) % 2, a transposed 2x2 pairing.
__device__ int fragment_row(int i, bool plant) {
    const int t = static_cast<int>(threadIdx.x);
    return 16 * (t / 32) + t % 32 / 4 + 8 * (plant ? i % 2 : i / 2 % 2);
}
__device__ int fragment_col(int i, bool plant) {
    const int t = static_cast<int>(threadIdx.x);
    return 8 * (i / 4) + 2 * (t % 4) + (plant ? i / 2 % 2 : i % 2);
}

// The plants exist in the CPU build only: nvcc's build folds them away, so its wgmma sequence has
// no branch that ptxas must guard with extra waits (and the GPU run checks the correct kernel).
__device__ bool planted(WgmmaPlant plant, WgmmaPlant which) {
#if defined(CONVKIT_CPU_EMULATION)
    return plant == which;
#else
    (void)plant, (void)which;
    return false;
#endif
}

template <ptx::WgmmaOperands kOperands, int N, bool MnMajor>
__global__ void __launch_bounds__(kThreads)
    wgmma_gemm_kernel(int k_total, bool swizzle, const Element<kOperands>* a, const Element<kOperands>* b,
                      const float* c, float* d, WgmmaPlant plant) {
    // A 1024-byte-aligned start in the shared window (the launch asks for 1 KiB more).
    unsigned char* shared = dynamic_shared_memory<unsigned char>();
    unsigned char* a_tile = shared + (kAtomBytes - ptx::shared_address(shared) % kAtomBytes) % kAtomBytes;
    unsigned char* b_tile = a_tile + kRows * k_total * static_cast<int>(sizeof(Element<kOperands>));
    const bool unswizzled = planted(plant, WgmmaPlant::UnswizzledStaging);
    stage<MnMajor>(a_tile, a, kRows, k_total, swizzle, unswizzled);
    stage<MnMajor>(b_tile, b, N, k_total, swizzle, unswizzled);
    ptx::fence_proxy_async_shared();  // the stores above, visible to wgmma's async-proxy reads
    if (planted(plant, WgmmaPlant::UnfencedCopy) && threadIdx.x == 0) {
        // A chunk of A rewritten by cp.async after the fence: landed, but not fenced.
        ptx::cp_async<16>(a_tile, a, 16);
        ptx::cp_async_commit_group();
        ptx::cp_async_wait_group<0>();
    }
    __syncthreads();

    const bool transposed = planted(plant, WgmmaPlant::TransposedFragment);
    float acc[N / 2];
    for (int i = 0; i < N / 2; ++i)
        acc[i] = c != nullptr ? c[fragment_row(i, transposed) * N + fragment_col(i, transposed)]
                              : std::numeric_limits<float>::quiet_NaN();  // scale-d = 0 must ignore it
    // One commit group per 128 bytes of k (four 32-byte k steps): with two of them the first is
    // waited for alone below. A wgmma.fence opens each group, as a pipelined main loop does.
    constexpr int kStepsPerGroup = kRowBytes / 32;
    const int groups = k_total * static_cast<int>(sizeof(Element<kOperands>)) / static_cast<int>(kRowBytes);
    for (int group = 0; group < groups; ++group) {
        if (group > 0 || !planted(plant, WgmmaPlant::MissingFence)) ptx::wgmma_fence(acc);
        for (int i = 0; i < kStepsPerGroup; ++i) {
            const int s = group * kStepsPerGroup + i;
            if constexpr (MnMajor) {
                ptx::wgmma_mma_async<kOperands, N, true>(acc, step_descriptor_mn(a_tile, k_total, s),
                                                         step_descriptor_mn(b_tile, k_total, s), s > 0 || c != nullptr);
            } else {
                ptx::wgmma_mma_async<kOperands, N>(acc, step_descriptor(a_tile, kRows, s, swizzle),
                                                   step_descriptor(b_tile, N, s, swizzle), s > 0 || c != nullptr);
            }
        }
        ptx::wgmma_commit_group();
    }
    if (planted(plant, WgmmaPlant::OverwriteBeforeWait) && threadIdx.x == 0) {
        auto* element = reinterpret_cast<Element<kOperands>*>(a_tile);  // a stage refilled too early
        *element = static_cast<Element<kOperands>>(~*element);
    }
    const bool read_early = planted(plant, WgmmaPlant::ReadBeforeWait);
    if (!read_early) {
        ptx::wgmma_wait_group<1>(acc);
        ptx::wgmma_wait_group<0>(acc);
    }
    for (int i = 0; i < N / 2; ++i) d[fragment_row(i, transposed) * N + fragment_col(i, transposed)] = acc[i];
    if (read_early) ptx::wgmma_wait_group<0>(acc);
}

std::size_t shared_bytes(WgmmaOperand operand, int n, int k) {
    const std::size_t element = operand == WgmmaOperand::TensorFloat32 ? 4 : 2;
    return kAtomBytes + static_cast<std::size_t>(kRows + n) * static_cast<std::size_t>(k) * element;
}

template <ptx::WgmmaOperands kOperands, int N>
void launch_wgmma_gemm(WgmmaOperand operand, int k, bool swizzle, const void* a, const void* b, const float* c,
                       float* d, WgmmaPlant plant, bool mn_major) {
    using T = Element<kOperands>;
    const LaunchShape shape{dim3(1), dim3(kThreads), shared_bytes(operand, N, k)};
    if constexpr (kOperands != ptx::WgmmaOperands::TensorFloat32) {
        if (mn_major) {
            return launch<wgmma_gemm_kernel<kOperands, N, true>>(shape, nullptr, k, swizzle, static_cast<const T*>(a),
                                                                 static_cast<const T*>(b), c, d, plant);
        }
    }
    launch<wgmma_gemm_kernel<kOperands, N, false>>(shape, nullptr, k, swizzle, static_cast<const T*>(a),
                                                   static_cast<const T*>(b), c, d, plant);
}
}  // namespace

void wgmma_gemm(WgmmaOperand operand, int n, int k, bool swizzle128, const void* a, const void* b, const float* c,
                float* d, WgmmaPlant plant, bool mn_major) {
    const int group_k = operand == WgmmaOperand::TensorFloat32 ? 32 : 64;  // 128 bytes of k
    const bool shape = (n == 64 || (n == 128 && operand == WgmmaOperand::BFloat16)) && k > 0 && k % group_k == 0;
    if (!shape || shared_bytes(operand, n, k) > kMaxDynamicSharedBytes) {
        throw InvalidArgument(
            "wgmma_gemm: n 64 (bf16, f16, tf32) or 128 (bf16), k a positive multiple of 128 bytes "
            "within 48 KiB of tiles; got n " +
            std::to_string(n) + ", k " + std::to_string(k));
    }
    if (mn_major && (operand == WgmmaOperand::TensorFloat32 || !swizzle128))
        throw InvalidArgument("wgmma_gemm: MN-major operands are 16-bit and 128-byte swizzled here");
    switch (operand) {
        case WgmmaOperand::Float16:
            return launch_wgmma_gemm<ptx::WgmmaOperands::Float16, 64>(operand, k, swizzle128, a, b, c, d, plant, mn_major);
        case WgmmaOperand::TensorFloat32:
            return launch_wgmma_gemm<ptx::WgmmaOperands::TensorFloat32, 64>(operand, k, swizzle128, a, b, c, d, plant, mn_major);
        case WgmmaOperand::BFloat16:
            break;
    }
    if (n == 64) return launch_wgmma_gemm<ptx::WgmmaOperands::BFloat16, 64>(operand, k, swizzle128, a, b, c, d, plant, mn_major);
    return launch_wgmma_gemm<ptx::WgmmaOperands::BFloat16, 128>(operand, k, swizzle128, a, b, c, d, plant, mn_major);
}

}  // namespace emu_tests
CONVKIT_KERNELS_END
