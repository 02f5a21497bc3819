#pragma once
// The strided-batched matrix product on CUDA memory (backend_api/gemm_shape.h), for the variants
// that multiply matrices they built themselves (cuda.im2col): cuBLAS on a GPU
// (cublasGemmStridedBatchedEx, 16-bit operands accumulated in float32, float32 on TF32 tensor
// cores only where `math` allows), convkit's own kernel (kernels/gemm.h) on the emulated device.
#include "backend_api/gemm_shape.h"
#include "convkit/backend.h"
#include "convkit/device.h"
#include "convkit/dtype.h"

namespace convkit::detail {

// `operands`: A's and B's dtype; `result`: C's, the operands' or, for 16-bit operands, float32.
void strided_batched_gemm(const StridedBatchedGemm& shape, DType operands, DType result, MathMode math, const void* a,
                          const void* b, void* c, Stream stream);

}  // namespace convkit::detail
