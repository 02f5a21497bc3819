#pragma once
// Launchers of convkit's own matrix product (kernels/gemm.cu): exactly the products of
// backend_api/gemm_shape.h, row-major, optional transposes and bias, float32 and float64, and the
// strided-batched one with 16-bit operands too. The matrix
// product of the emulated CUDA device, where cuBLAS cannot run; on a GPU cuBLAS is used.
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/gemm_shape.h"

CONVKIT_KERNELS_BEGIN

// C = op(A) op(B) + bias (bias may be null), accumulated in the dtype, in k order.
void gemm_tiled(const detail::GemmShape& shape, DType dtype, const void* a, const void* b, const void* bias, void* c,
                Stream stream);
// C_b = op(A_b) op(B_b) (+ C_b) for every b (StridedBatchedGemm). `operands`: A's and B's dtype, any
// float; `result`: C's, the operands' or, for 16-bit operands, float32. Accumulated in float32
// (float64 for float64), in k order, rounded once.
void gemm_tiled_strided_batched(const detail::StridedBatchedGemm& shape, DType operands, DType result, const void* a,
                                const void* b, void* c, Stream stream);

CONVKIT_KERNELS_END
