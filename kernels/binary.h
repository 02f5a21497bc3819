#pragma once
// Launchers for the binary elementwise kernels (kernels/binary.cu); plain C++ for host callers.
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/binary_math.h"
#include "backend_api/broadcast.h"

CONVKIT_KERNELS_BEGIN

// out[i] = op(a[offset_a(i)], b[offset_b(i)]) over the broadcast geometry.
void binary_elementwise(detail::BinaryOp op, const detail::BroadcastGeometry& g, DType dtype, const void* a,
                        const void* b, void* out, Stream stream);

CONVKIT_KERNELS_END
