#pragma once
// Checking of cuBLAS calls, as CONVKIT_CHECK_CUDA does for the runtime: a failure throws
// CudaError (OutOfMemory for CUBLAS_STATUS_ALLOC_FAILED) naming the call, the status and the place.
#include <cublas_v2.h>

namespace convkit::detail {

[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* expression, const char* file, int line);

}  // namespace convkit::detail

#define CONVKIT_CHECK_CUBLAS(expression)                                                              \
    do {                                                                                              \
        const cublasStatus_t convkit_cublas_status_ = (expression);                                   \
        if (convkit_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                        \
            ::convkit::detail::throw_cublas_error(convkit_cublas_status_, #expression, __FILE__, __LINE__); \
        }                                                                                             \
    } while (0)
