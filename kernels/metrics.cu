// The correct-prediction count: one grid-stride pass over the targets, each block summing its
// threads' counts (block_sum) and adding the block's total atomically. Integer counts add exactly
// in any order, so the result is the same on every run.
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"
#include "kernels/metrics.h"

CONVKIT_KERNELS_BEGIN

namespace {
__global__ void count_correct_kernel(const std::int64_t* predicted, const std::int64_t* targets, std::int64_t count,
                                     std::int64_t classes, std::int64_t ignore_index, unsigned long long* correct,
                                     unsigned long long* first_invalid) {
    unsigned long long matches = 0;
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        const std::int64_t target = targets[i];
        if (target == ignore_index) continue;
        if (target < 0 || target >= classes) {
            atomicMin(first_invalid, static_cast<unsigned long long>(i));
            continue;
        }
        matches += predicted[i] == target ? 1 : 0;
    }
    const unsigned long long block_matches = block_sum(matches);
    if (threadIdx.x == 0 && block_matches != 0) atomicAdd(correct, block_matches);
}

// Runs after the count (same stream): records the first invalid target's value beside its index.
__global__ void record_invalid_target_kernel(const std::int64_t* targets, detail::DeviceErrorSlot* invalid) {
    if (invalid->index != detail::kNoDeviceError) invalid->value = targets[invalid->index];
}
}  // namespace

void count_correct(const std::int64_t* predicted, const std::int64_t* targets, std::int64_t count,
                   std::int64_t classes, std::int64_t ignore_index, std::int64_t* correct,
                   detail::DeviceErrorSlot* invalid, Stream stream) {
    static_assert(sizeof(std::int64_t) == sizeof(unsigned long long), "the count is added as unsigned long long");
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    CONVKIT_CHECK_CUDA(cudaMemsetAsync(correct, 0, sizeof(*correct), s));
    CONVKIT_CHECK_CUDA(cudaMemsetAsync(&invalid->index, 0xff, sizeof(invalid->index), s));
    if (count > 0) {
        launch<count_correct_kernel>({grid_for(count), kThreadsPerBlock}, s, predicted, targets, count, classes,
                                     ignore_index, reinterpret_cast<unsigned long long*>(correct), &invalid->index);
    }
    launch<record_invalid_target_kernel>({1, 1}, s, targets, invalid);
}

CONVKIT_KERNELS_END
