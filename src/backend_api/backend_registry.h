#pragma once
// The matrix-product backends, as tables of the same entry points: the ops layer checks
// arguments, builds the shape, asks the chosen backend whether it supports the call, and calls
// it. Every backend takes raw pointers of the tensors' dtype on the tensors' device; host
// entries ignore the stream.
#include <string>

#include "convkit/backend.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "backend_api/gemm_shape.h"

namespace convkit::detail {

struct GemmBackendOps {
    std::string (*unsupported_reason)(const GemmShape& shape, DType dtype);
    void (*gemm)(const GemmShape& shape, DType dtype, const void* a, const void* b, const void* bias, void* c,
                 Stream stream);
};

// The matrix-product tables of each backend (defined beside its code). Convolution and pooling
// are named variants instead (backend_api/variant.h).
const GemmBackendOps& host_gemm_backend();
#ifdef CONVKIT_WITH_OPENBLAS
const GemmBackendOps& host_blas_gemm_backend();
#endif
const GemmBackendOps& cublas_gemm_backend();
// convkit's own matrix product kernel (kernels/gemm.cu): the emulated CUDA device's, where cuBLAS
// cannot run.
const GemmBackendOps& cuda_gemm_backend();

// The backend that runs a matrix product on tensors on `device`: the thread's
// default_host_backend() for host tensors; cuBLAS for CUDA tensors, whichever GPU backend is
// chosen (on the emulated CUDA device, convkit's kernel). Throws NotSupported naming the op, the backend and the reason when that backend
// cannot run this shape: there is no silent fallback.
const GemmBackendOps& gemm_backend_for(const std::string& op, const GemmShape& shape, DType dtype, Device device);

}  // namespace convkit::detail
