#pragma once
// The backends behind the ops, as tables of the same entry points: the ops layer checks
// arguments, builds the geometry, asks the chosen backend whether it supports the call, and
// calls it. Every backend takes raw pointers of the tensors' dtype on the tensors' device;
// host entries ignore the stream.
#include <string>

#include "convkit/backend.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "backend_api/gemm_shape.h"
#include "backend_api/geometry.h"

namespace convkit::detail {

struct ConvBackendOps {
    // Empty when the backend runs this convolution, else why not (for the NotSupported message).
    std::string (*unsupported_reason)(const ConvGeometry& g, DType dtype);
    // y = conv(x, w) + bias (bias may be null).
    void (*forward)(const ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias, void* y,
                    Stream stream);
    // dx = conv^T(dy, w) + bias per channel of dx (bias may be null).
    void (*backward_data)(const ConvGeometry& g, DType dtype, const void* dy, const void* w, const void* bias,
                          void* dx, Stream stream);
    void (*backward_filter)(const ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw,
                            Stream stream);
    void (*backward_bias)(std::int64_t batch, std::int64_t channels, std::int64_t spatial, DType dtype,
                          const void* dy, void* db, Stream stream);
};

enum class PoolOp { Max, Average, AdaptiveAverage };

struct PoolBackendOps {
    std::string (*unsupported_reason)(const PoolGeometry& g, PoolOp op, DType dtype);
    void (*max_forward)(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream);
    void (*max_backward)(const PoolGeometry& g, DType dtype, const void* dy, const void* x, void* dx, Stream stream);
    void (*avg_forward)(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream);
    void (*avg_backward)(const PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream);
    void (*adaptive_forward)(const PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream);
    void (*adaptive_backward)(const PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream);
};

struct GemmBackendOps {
    std::string (*unsupported_reason)(const GemmShape& shape, DType dtype);
    void (*gemm)(const GemmShape& shape, DType dtype, const void* a, const void* b, const void* bias, void* c,
                 Stream stream);
};

// The tables of each backend (defined beside its code).
const ConvBackendOps& host_conv_backend();
const PoolBackendOps& host_pool_backend();
const GemmBackendOps& host_gemm_backend();
#ifdef CONVKIT_WITH_OPENBLAS
const ConvBackendOps& host_blas_conv_backend();
const GemmBackendOps& host_blas_gemm_backend();
const PoolBackendOps& host_blas_pool_backend();  // max pooling in parallel; average: the reference's
#endif
const GemmBackendOps& cublas_gemm_backend();
const ConvBackendOps& cuda_conv_backend();
const PoolBackendOps& cuda_pool_backend();
#ifdef CONVKIT_WITH_CUDNN
const ConvBackendOps& cudnn_conv_backend();
const PoolBackendOps& cudnn_pool_backend();
#endif

// The backend that runs `op` on tensors on `device`: the thread's default_host_backend() for
// host tensors, its default_backend() for CUDA tensors. Throws NotSupported naming the op, the
// backend and the reason when that backend cannot run this geometry: there is no silent
// fallback. HostBlas pools with OpenMP over planes (max) or the reference (average). The matrix product
// has one GPU implementation, cuBLAS, whichever GPU backend is chosen.
const ConvBackendOps& conv_backend_for(const std::string& op, const ConvGeometry& g, DType dtype, Device device);
const PoolBackendOps& pool_backend_for(const std::string& op, const PoolGeometry& g, PoolOp pool_op, DType dtype,
                                       Device device);
const GemmBackendOps& gemm_backend_for(const std::string& op, const GemmShape& shape, DType dtype, Device device);

}  // namespace convkit::detail
