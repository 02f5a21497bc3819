// A producer/consumer ring on mbarriers (kernels/ptx.cuh: mbarrier_init, _arrive,
// _wait_parity), the protocol the wgmma producer/consumer plan uses (docs/benchmarks.md "wgmma
// variant: plan"): the emulator runs it under every schedule (test_emu_model.cpp); on an
// H100/H200 (test_cuda_wgmma.cpp) the same source checks the emulator's reading of the parity
// rules. Compiled by nvcc for the tensor-core architectures (try_wait.parity is sm_90).
#include <cstddef>
#include <cstdint>

#include "kernels/kernel_support.cuh"
#include "kernels/ptx.cuh"
#include "test_kernels.h"

CONVKIT_KERNELS_BEGIN
namespace emu_tests {

namespace {
constexpr int kPipelineStages = 3;
constexpr int kPipelineWidth = 32;  // floats a chunk: one per producer lane

// mbarrier_pipeline_probe's kernel (test_kernels.h). A template, as the library's kernels are: its
// static __shared__ barriers are a template's function-local statics, which the CPU build must
// find in shared memory in every program (cmake/emu_shared_memory.ld, emu::register_static_shared).
template <int Stages>
__global__ void mbarrier_pipeline_kernel(const float* in, int chunks, float* out, PipelineFlaw flaw) {
    __shared__ std::uint64_t full[Stages], empty[Stages];
    float* stages = dynamic_shared_memory<float>();
    const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
    if (threadIdx.x == 0) {
        for (int s = 0; s < Stages; ++s) {
            ptx::mbarrier_init(&full[s], kPipelineWidth);
            ptx::mbarrier_init(&empty[s], 2 * kPipelineWidth);
        }
    }
    __syncthreads();
    if (warp == 0) {
        for (int c = 0; c < chunks; ++c) {
            const int s = c % Stages, round = c / Stages;
            // Round r refills the stage once the consumers' phase r - 1 of its empty barrier has
            // completed; round 0 waits for parity 1, which a fresh barrier has passed.
            if (flaw != PipelineFlaw::NoEmptyWait) ptx::mbarrier_wait_parity_or_trap(&empty[s], (round & 1) ^ 1);
            ptx::cp_async<4>(stages + s * kPipelineWidth + lane, in + c * kPipelineWidth + lane);
            ptx::cp_async_commit_group();
            ptx::cp_async_wait_group<0>();
            ptx::mbarrier_arrive(&full[s]);
        }
    } else {
        float sum = 0.0f;
        for (int c = 0; c < chunks; ++c) {
            const int s = c % Stages, round = c / Stages;
            const unsigned parity =
                static_cast<unsigned>(round & 1) ^ (flaw == PipelineFlaw::WrongFullParity ? 1u : 0u);
            ptx::mbarrier_wait_parity_or_trap(&full[s], parity);
            sum += stages[s * kPipelineWidth + lane];
            ptx::mbarrier_arrive(&empty[s]);
        }
        out[(warp - 1) * kPipelineWidth + lane] = sum;
    }
}

}  // namespace

void mbarrier_pipeline_probe(const float* in, int chunks, float* out, PipelineFlaw flaw) {
    const std::size_t bytes = kPipelineStages * kPipelineWidth * sizeof(float);
    launch<mbarrier_pipeline_kernel<kPipelineStages>>({1, 3 * kPipelineWidth, bytes}, nullptr, in, chunks, out, flaw);
}

}  // namespace emu_tests
CONVKIT_KERNELS_END
