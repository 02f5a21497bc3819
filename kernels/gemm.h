#pragma once
// Launcher of convkit's own matrix product (kernels/gemm.cu): exactly the product of
// backend_api/gemm_shape.h, row-major, optional transposes and bias, float32 and float64. The matrix
// product of the emulated CUDA device, where cuBLAS cannot run; on a GPU cuBLAS is used.
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/gemm_shape.h"

CONVKIT_KERNELS_BEGIN

// C = op(A) op(B) + bias (bias may be null), accumulated in the dtype, in k order.
void gemm_tiled(const detail::GemmShape& shape, DType dtype, const void* a, const void* b, const void* bias, void* c,
                Stream stream);

CONVKIT_KERNELS_END
