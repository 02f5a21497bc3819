// The bulk tensor copy (kernels/ptx.cuh: bulk_tensor_load, mbarrier_arrive_expect_tx) as the
// wgmma producer uses it: one thread covers a stage's bytes on its mbarrier and issues the copy,
// every thread waits for the phase and reads the stage. The emulator runs it under every schedule
// (test_emu_model.cpp); on an H100/H200 (test_cuda_wgmma.cpp) the same source checks the
// emulator's reading of the tensor map, the zero fill, the swizzle and the transaction count
// against the hardware. Compiled by nvcc for the tensor-core architectures (sm_90).
#include <cstddef>
#include <cstdint>
#include <string>

#include "convkit/error.h"
#include "kernels/kernel_support.cuh"
#include "kernels/ptx.cuh"
#include "kernels/tensor_map.h"
#include "test_kernels.h"

CONVKIT_KERNELS_BEGIN
namespace emu_tests {

namespace {
constexpr int kCopyStages = 2;
constexpr int kCopyThreads = 128;
constexpr unsigned kStageAlignment = 1024;  // a 128-byte swizzle's repeat

__host__ __device__ inline unsigned stage_stride(unsigned box_bytes) {
    return (box_bytes + kStageAlignment - 1) / kStageAlignment * kStageAlignment;
}

// bulk_tensor_copy_probe's kernel (test_kernels.h).
// Im2col: the map is an im2col one and each box also takes Rank - 2 offsets from `offsets`.
template <int Rank, bool Im2col>
__global__ void bulk_tensor_copy_kernel(const __grid_constant__ tma::TensorMap map, const int* coordinates,
                                        const std::uint16_t* offsets, int boxes, unsigned box_bytes, unsigned char* out,
                                        BulkCopyFlaw flaw) {
    // The stages from the first 1024-byte boundary, then their barriers (dynamic shared memory, as
    // the wgmma kernels keep theirs).
    unsigned char* raw = dynamic_shared_memory<unsigned char>();
    unsigned char* stages = raw + (kStageAlignment - ptx::shared_address(raw) % kStageAlignment) % kStageAlignment;
    const unsigned stride = stage_stride(box_bytes);
    auto* full = reinterpret_cast<std::uint64_t*>(stages + kCopyStages * stride);
    if (threadIdx.x == 0) {
        for (int s = 0; s < kCopyStages; ++s) ptx::mbarrier_init(&full[s], 1);
        if (flaw != BulkCopyFlaw::UnfencedInit) ptx::fence_mbarrier_init();
    }
    __syncthreads();
    for (int b = 0; b < boxes; ++b) {
        const int s = b % kCopyStages;
        unsigned char* stage = stages + s * stride;
        if (threadIdx.x == 0) {
            int at[Rank];
            for (int i = 0; i < Rank; ++i) at[i] = coordinates[b * Rank + i];
            ptx::mbarrier_arrive_expect_tx(&full[s],
                                           flaw == BulkCopyFlaw::ShortTransactionCount ? box_bytes - 16 : box_bytes);
            if constexpr (Im2col) {
                std::uint16_t offset[Rank - 2];
                for (int i = 0; i < Rank - 2; ++i) offset[i] = offsets[b * (Rank - 2) + i];
                ptx::bulk_tensor_load_im2col<Rank>(stage, map, at, offset, &full[s]);
            } else {
                ptx::bulk_tensor_load<Rank>(stage, map, at, &full[s]);
            }
        }
        if (flaw != BulkCopyFlaw::NoWait)
            ptx::mbarrier_wait_parity_or_trap(&full[s], static_cast<unsigned>(b / kCopyStages) & 1u);
        for (unsigned i = threadIdx.x; i < box_bytes; i += kCopyThreads)
            out[b * static_cast<std::size_t>(box_bytes) + i] = stage[i];
        __syncthreads();  // the stage is read before its next copy is issued
    }
}
}  // namespace

namespace {
LaunchShape copy_shape(unsigned box_bytes) {
    return {1, kCopyThreads, kCopyStages * (stage_stride(box_bytes) + sizeof(std::uint64_t)) + kStageAlignment, true};
}
}  // namespace

void bulk_tensor_copy_probe(const tma::TensorMap& map, int rank, const int* coordinates, int boxes, unsigned box_bytes,
                            unsigned char* out, BulkCopyFlaw flaw) {
    const LaunchShape shape = copy_shape(box_bytes);
    switch (rank) {
        case 3:
            return launch<bulk_tensor_copy_kernel<3, false>>(shape, nullptr, map, coordinates, nullptr, boxes,
                                                             box_bytes, out, flaw);
        case 4:
            return launch<bulk_tensor_copy_kernel<4, false>>(shape, nullptr, map, coordinates, nullptr, boxes,
                                                             box_bytes, out, flaw);
        default:
            throw InvalidArgument("bulk_tensor_copy_probe: rank " + std::to_string(rank) + " (3 or 4)");
    }
}

void bulk_im2col_copy_probe(const tma::TensorMap& map, int rank, const int* coordinates, const std::uint16_t* offsets,
                            int boxes, unsigned box_bytes, unsigned char* out) {
    const LaunchShape shape = copy_shape(box_bytes);
    const BulkCopyFlaw none = BulkCopyFlaw::None;
    switch (rank) {
        case 3:
            return launch<bulk_tensor_copy_kernel<3, true>>(shape, nullptr, map, coordinates, offsets, boxes, box_bytes,
                                                            out, none);
        case 4:
            return launch<bulk_tensor_copy_kernel<4, true>>(shape, nullptr, map, coordinates, offsets, boxes, box_bytes,
                                                            out, none);
        case 5:
            return launch<bulk_tensor_copy_kernel<5, true>>(shape, nullptr, map, coordinates, offsets, boxes, box_bytes,
                                                            out, none);
        default:
            throw InvalidArgument("bulk_im2col_copy_probe: rank " + std::to_string(rank) + " (3 to 5)");
    }
}

}  // namespace emu_tests
CONVKIT_KERNELS_END
