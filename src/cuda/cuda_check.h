#pragma once
// Checking of CUDA runtime calls. Every call into CUDA goes through CONVKIT_CHECK_CUDA, which
// turns a failure into CudaError (or OutOfMemory) naming the call, the error and the place.
#if defined(CONVKIT_CPU_EMULATION) && !defined(CONVKIT_EMULATED_DEVICE)
#include "emu/host_runtime.h"  // the CPU build of kernels/: an emulated runtime on host memory
#else
#include <cuda_runtime_api.h>

namespace convkit::detail {

[[noreturn]] void throw_cuda_error(cudaError_t error, const char* expression, const char* file, int line);

}  // namespace convkit::detail
#endif

#define CONVKIT_CHECK_CUDA(expression)                                                        \
    do {                                                                                      \
        const cudaError_t convkit_status_ = (expression);                                     \
        if (convkit_status_ != cudaSuccess) {                                                 \
            ::convkit::detail::throw_cuda_error(convkit_status_, #expression, __FILE__, __LINE__); \
        }                                                                                     \
    } while (0)
