#pragma once
// The host reference for pooling: windows computed straight from the definitions (PyTorch's
// semantics), accumulation in double. The oracle for every other backend.
// Tensors are [N, C, D, H, W] with unused spatial dims of size 1, in `layout` (contiguous or
// channels-last, read and written in place); every plane (n, c) is pooled alone.
#include "backend_api/geometry.h"
#include "backend_api/problem.h"

namespace convkit::host {

// Max over the in-bounds elements of each (dilated) window; NaN propagates.
template <typename T>
void max_pool_forward_reference(const detail::PoolGeometry& g, detail::Layout layout, const T* input, T* output);
// The gradient of each output goes to its window's first maximal element (its last NaN, if any).
template <typename T>
void max_pool_backward_reference(const detail::PoolGeometry& g, detail::Layout layout, const T* grad_output,
                                 const T* input, T* grad_input);

template <typename T>
void avg_pool_forward_reference(const detail::PoolGeometry& g, detail::Layout layout, const T* input, T* output);
template <typename T>
void avg_pool_backward_reference(const detail::PoolGeometry& g, detail::Layout layout, const T* grad_output,
                                 T* grad_input);

template <typename T>
void adaptive_avg_pool_forward_reference(const detail::PoolGeometry& g, detail::Layout layout, const T* input,
                                         T* output);
template <typename T>
void adaptive_avg_pool_backward_reference(const detail::PoolGeometry& g, detail::Layout layout, const T* grad_output,
                                          T* grad_input);

}  // namespace convkit::host
