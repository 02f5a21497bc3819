// The matrix product on CUDA tensors through cuBLAS (ops/gemm_shape.h), for every GPU backend.
#include <map>
#include <mutex>
#include <tuple>

#include "convkit/backend.h"
#include "backend_api/dtype_dispatch.h"
#include "core/check.h"
#include "cuda/cublas_api.h"
#include "cuda/cublas_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "kernels/tensor_fill.h"
#include "backend_api/backend_registry.h"

namespace convkit::detail {

void throw_cublas_error(cublasStatus_t status, const char* expression, const char* file, int line) {
    const CublasApi& api = cublas_api();  // loaded: the status came from a call into it
    const std::string message = concat(expression, " failed: ", api.status_name(status), " (",
                                       api.status_string(status), ") at ", file, ":", line);
    if (status == CUBLAS_STATUS_ALLOC_FAILED) throw OutOfMemory(message);
    throw CudaError(message);
}

namespace {
// One handle per (device, stream, math mode), created on first use and kept for the process
// (cuBLAS's teardown at exit would race with static destruction, as cuDNN's). The math mode is
// fixed when the handle is made, so no call ever changes a handle that another thread may be
// using: Strict is CUBLAS_DEFAULT_MATH, which never uses TF32 for float32; AllowTF32 lets
// float32 products run on TF32 tensor cores.
cublasHandle_t cublas_handle(Stream stream, MathMode mode) {
    static std::mutex mutex;
    static auto* handles = new std::map<std::tuple<int, void*, MathMode>, cublasHandle_t>();
    std::lock_guard lock(mutex);
    auto& handle = (*handles)[{stream.device, stream.handle, mode}];
    if (handle == nullptr) {
        const CublasApi& api = cublas_api();
        cublasHandle_t created = nullptr;
        CONVKIT_CHECK_CUBLAS(api.create(&created));
        CONVKIT_CHECK_CUBLAS(api.set_stream(created, to_cuda(stream)));
        CONVKIT_CHECK_CUBLAS(api.set_math_mode(
            created, mode != MathMode::Strict ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
        handle = created;  // only a fully set-up handle is cached
    }
    return handle;
}

cublasOperation_t operation(bool transpose) { return transpose ? CUBLAS_OP_T : CUBLAS_OP_N; }

// Column-major C' = op'(A') op'(B') + beta C' with 64-bit sizes, in the dtype's precision.
void gemm_column_major(cublasHandle_t handle, DType dtype, cublasOperation_t op_a, cublasOperation_t op_b,
                       std::int64_t m, std::int64_t n, std::int64_t k, const void* a, std::int64_t lda, const void* b,
                       std::int64_t ldb, double beta, void* c, std::int64_t ldc) {
    if (dtype != DType::Float32 && dtype != DType::Float64) detail::throw_dtype_not_supported("cublas gemm", dtype);
    if (dtype == DType::Float64) {
        const double one = 1.0;
        CONVKIT_CHECK_CUBLAS(cublas_api().dgemm(handle, op_a, op_b, m, n, k, &one, static_cast<const double*>(a), lda,
                                            static_cast<const double*>(b), ldb, &beta, static_cast<double*>(c), ldc));
    } else {
        const float one = 1.0f;
        const auto beta32 = static_cast<float>(beta);
        CONVKIT_CHECK_CUBLAS(cublas_api().sgemm(handle, op_a, op_b, m, n, k, &one, static_cast<const float*>(a), lda,
                                            static_cast<const float*>(b), ldb, &beta32, static_cast<float*>(c), ldc));
    }
}

std::string always_supported(const GemmShape&, DType) { return {}; }

void gemm(const GemmShape& s, DType dtype, const void* a, const void* b, const void* bias, void* c, Stream stream) {
    CudaDeviceGuard device(stream.device);  // a handle works on the device it was made on
    // With a bias, C's rows start as the bias: C = ones[m] x bias[n], a product with k = 1 that
    // is exact only without TF32, so it runs on the strict handle whatever the mode. The product
    // is then added (beta 1).
    if (bias != nullptr) {
        const std::shared_ptr<void> ones = allocate_cuda(static_cast<std::size_t>(s.m) * dtype_size(dtype), stream);
        kernels::fill_constant(ones.get(), dtype, s.m, 1.0, stream);
        // Column-major view: C^T [n, m] = bias [n, 1] x ones^T [1, m].
        gemm_column_major(cublas_handle(stream, MathMode::Strict), dtype, CUBLAS_OP_N, CUBLAS_OP_N, s.n, s.m, 1, bias,
                          s.n, ones.get(), 1, 0.0, c, s.n);
    }
    // cuBLAS is column-major, where a row-major [r, c] matrix reads as its transpose [c, r]. So
    // the row-major C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: the
    // operands swap places, m and n swap, and each keeps its own transpose flag and leading
    // dimension.
    gemm_column_major(cublas_handle(stream, default_math_mode()), dtype, operation(s.transpose_b),
                      operation(s.transpose_a), s.n, s.m, s.k, b, s.ldb(), a, s.lda(), bias != nullptr ? 1.0 : 0.0, c,
                      s.n);
}
}  // namespace

const GemmBackendOps& cublas_gemm_backend() {
    static const GemmBackendOps ops{always_supported, gemm};
    return ops;
}

}  // namespace convkit::detail
