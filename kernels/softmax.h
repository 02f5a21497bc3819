#pragma once
// Launchers of the softmax kernels (kernels/softmax.cu); plain C++ for host callers. Rows (see
// ops/softmax_math.h) go to teams of threads chosen by shape: one thread per row when rows are
// short or their elements are strided (the threads of a warp then read neighbouring rows'
// elements, which are adjacent in memory), a warp per contiguous row of up to 1024 elements,
// a block per longer row or when there are too few rows to fill the GPU otherwise.
#include <cstdint>

#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/softmax_math.h"

CONVKIT_KERNELS_BEGIN

enum class RowTeam : std::uint8_t { Thread, Warp, Block };

RowTeam row_team_for(const detail::SoftmaxGeometry& g);
const char* row_team_name(RowTeam team);  // "thread", "warp", "block"

void softmax_forward(detail::SoftmaxKind kind, const detail::SoftmaxGeometry& g, DType dtype, const void* x, void* y,
                     Stream stream);
void softmax_backward(detail::SoftmaxKind kind, const detail::SoftmaxGeometry& g, DType dtype, const void* dy,
                      const void* y, void* dx, Stream stream);

CONVKIT_KERNELS_END
