#pragma once
// The host reference for the matrix product (ops/gemm_shape.h): one output element at a time,
// straight from the definition, accumulating in double and rounding once. The oracle of the
// OpenBLAS and cuBLAS paths.
#include "backend_api/gemm_shape.h"

namespace convkit::host {

// c[i, j] = bias[j] + sum_k op(a)[i, k] * op(b)[k, j]; bias may be null.
template <typename T>
void gemm_reference(const detail::GemmShape& shape, const T* a, const T* b, const T* bias, T* c);

}  // namespace convkit::host
