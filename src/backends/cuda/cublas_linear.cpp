// The matrix product on CUDA tensors through cuBLAS (ops/gemm_shape.h), for every GPU backend,
// and the strided-batched product of the variants (backends/cuda/strided_batched_gemm.h).
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
#include "backends/cuda/strided_batched_gemm.h"
#include "kernels/gemm.h"
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
// cuBLAS's math for a mode: Strict never uses TF32 for float32 (CUBLAS_DEFAULT_MATH); AllowTF32
// and AllowReduced let float32 products run on TF32 tensor cores. Only AllowReduced lets a
// product with 16-bit output reduce its split-K partial sums in that 16-bit type; the others keep
// every reduction in the float32 accumulator (cuda.im2col's 16-bit products).
cublasMath_t cublas_math(MathMode mode) {
    const int tensor_cores = mode != MathMode::Strict ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    const int reductions = mode == MathMode::AllowReduced ? 0 : CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    return static_cast<cublasMath_t>(tensor_cores | reductions);
}

// One handle per (device, stream, math mode), created on first use and kept for the process
// (cuBLAS's teardown at exit would race with static destruction, as cuDNN's). The math mode is
// fixed when the handle is made (cublas_math), so no call ever changes a handle that another
// thread may be using.
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
        CONVKIT_CHECK_CUBLAS(api.set_math_mode(created, cublas_math(mode)));
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
#ifndef CONVKIT_EMULATED_DEVICE
cudaDataType_t cuda_data_type(DType dtype) {
    switch (dtype) {
        case DType::Float32: return CUDA_R_32F;
        case DType::Float64: return CUDA_R_64F;
        case DType::BFloat16: return CUDA_R_16BF;
        case DType::Float16: return CUDA_R_16F;
        case DType::Int64: break;
    }
    detail::throw_dtype_not_supported("cublas strided-batched gemm", dtype);
}

// Row-major C_b = op(A_b) op(B_b) as the column-major C_b^T = op(B_b)^T op(A_b)^T (see gemm above).
// Float64 computes in float64; everything else in float32, on tensors cores as the handle's math
// mode allows (TF32 for float32 operands only under AllowTF32/AllowReduced).
void cublas_strided_batched_gemm(const StridedBatchedGemm& s, DType operands, DType result, MathMode math,
                                 const void* a, const void* b, void* c, Stream stream) {
    CudaDeviceGuard device(stream.device);
    const cublasHandle_t handle = cublas_handle(stream, math);
    const bool float64 = operands == DType::Float64;
    const double one64 = 1.0, beta64 = s.accumulate ? 1.0 : 0.0;
    const float one32 = 1.0f, beta32 = s.accumulate ? 1.0f : 0.0f;
    const void* alpha = float64 ? static_cast<const void*>(&one64) : static_cast<const void*>(&one32);
    const void* beta = float64 ? static_cast<const void*>(&beta64) : static_cast<const void*>(&beta32);
    CONVKIT_CHECK_CUBLAS(cublas_api().gemm_strided_batched_ex(
        handle, operation(s.transpose_b), operation(s.transpose_a), s.n, s.m, s.k, alpha, b, cuda_data_type(operands),
        s.lead_b, s.stride_b, a, cuda_data_type(operands), s.lead_a, s.stride_a, beta, c, cuda_data_type(result),
        s.lead_c, s.stride_c, s.batch, float64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
#endif
}  // namespace

void strided_batched_gemm(const StridedBatchedGemm& shape, DType operands, DType result, MathMode math, const void* a,
                          const void* b, void* c, Stream stream) {
    if (shape.m == 0 || shape.n == 0 || shape.batch == 0) return;
#ifdef CONVKIT_EMULATED_DEVICE
    (void)math;  // convkit's own kernel multiplies exactly in float32: strict, whatever the mode
    kernels::gemm_tiled_strided_batched(shape, operands, result, a, b, c, stream);
#else
    cublas_strided_batched_gemm(shape, operands, result, math, a, b, c, stream);
#endif
}

const GemmBackendOps& cublas_gemm_backend() {
    static const GemmBackendOps ops{always_supported, gemm};
    return ops;
}

}  // namespace convkit::detail
