#pragma once
// cuBLAS, loaded on first use rather than linked. libcublas pulls in libcublasLt, several
// hundred MB whose loading cost about 80 ms at every process start: every test process (one per
// test) and every CPU-only program paid it for a library only CUDA tensors use. The header gives
// the types; the few functions convkit calls are resolved by name once.
#include <cublas_v2.h>

namespace convkit::detail {

struct CublasApi {
    decltype(&::cublasCreate_v2) create;
    decltype(&::cublasSetStream_v2) set_stream;
    decltype(&::cublasSetMathMode) set_math_mode;
    decltype(&::cublasSgemm_v2_64) sgemm;
    decltype(&::cublasDgemm_v2_64) dgemm;
    decltype(&::cublasGemmEx_64) gemm_ex;  // mixed precision (convkit-bench's bf16 peak)
    decltype(&::cublasGemmStridedBatchedEx_64) gemm_strided_batched_ex;  // cuda.im2col's products
    decltype(&::cublasGetStatusName) status_name;
    decltype(&::cublasGetStatusString) status_string;
};

// The functions, from the cuBLAS of the toolkit convkit was built with (CONVKIT_CUBLAS_LIBRARY,
// found beside libcudart through the library's run path, or on the loader's path). Loaded by the
// first call; throws NotSupported naming the library and the loader's reason if it cannot be.
const CublasApi& cublas_api();

}  // namespace convkit::detail
