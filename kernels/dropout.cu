// Dropout: each thread draws its elements' mask bits from the counter-based generator, so the
// mask needs no memory and no state, and equals the host's for the same seed.
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/dropout.h"
#include "kernels/kernel_support.cuh"
#include "backend_api/dropout_math.h"

CONVKIT_KERNELS_BEGIN

namespace {
template <typename T>
__global__ void dropout_kernel(const T* x, T* y, std::int64_t count, double p, std::uint64_t seed,
                               const std::uint64_t* seed_on_device, T scale) {
    if (seed_on_device != nullptr) seed = *seed_on_device;
    for (std::int64_t i = global_thread_index(); i < count; i += global_thread_count()) {
        y[i] = detail::dropout_value(x[i], seed, i, p, scale);
    }
}
}  // namespace

void dropout(DType dtype, const void* x, void* y, std::int64_t count, double p, std::uint64_t seed,
             const std::uint64_t* seed_on_device, Stream stream) {
    if (count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<dropout_kernel<T>>({grid_for(count), kThreadsPerBlock}, s, static_cast<const T*>(x), static_cast<T*>(y),
                                  count, p, seed, seed_on_device, static_cast<T>(detail::dropout_scale(p)));
    });
}

CONVKIT_KERNELS_END
