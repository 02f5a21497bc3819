#pragma once
// Launchers of the pooling kernels (kernels/pool.cu): max, average and adaptive average,
// forward and backward, 1-D to 3-D through the widened geometry, every float dtype (bfloat16 and
// float16 computed in float), operands in `layout` (x, y and their gradients alike). Backward
// passes are gathers (each input element sums the outputs whose windows hold it):
// deterministic, no atomics.
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "convkit/memory_format.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/geometry.h"

CONVKIT_KERNELS_BEGIN

void max_pool_forward(const detail::PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream,
                      MemoryFormat layout = MemoryFormat::Contiguous);
void max_pool_backward(const detail::PoolGeometry& g, DType dtype, const void* dy, const void* x, void* dx,
                       Stream stream, MemoryFormat layout = MemoryFormat::Contiguous);
void avg_pool_forward(const detail::PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream,
                      MemoryFormat layout = MemoryFormat::Contiguous);
void avg_pool_backward(const detail::PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream,
                       MemoryFormat layout = MemoryFormat::Contiguous);
void adaptive_avg_pool_forward(const detail::PoolGeometry& g, DType dtype, const void* x, void* y, Stream stream,
                      MemoryFormat layout = MemoryFormat::Contiguous);
void adaptive_avg_pool_backward(const detail::PoolGeometry& g, DType dtype, const void* dy, void* dx, Stream stream,
                       MemoryFormat layout = MemoryFormat::Contiguous);

CONVKIT_KERNELS_END
