#pragma once
// The one door to OpenBLAS: a typed, row-major matrix product on 64-bit sizes. Only blas.cpp
// includes cblas.h, so the rest of the host BLAS backend does not depend on which cblas.h the
// system provides.
//
// Threading: OpenBLAS runs each call on its own thread pool (OPENBLAS_NUM_THREADS, default one
// per core). Callers never call it from inside an OpenMP parallel region: a parallel region
// whose threads each start a multi-threaded BLAS call would put threads x threads workers on
// the cores (and OpenBLAS's pthread build serialises concurrent callers anyway). Setting
// OpenBLAS to one thread around such regions instead would change a process-wide setting that
// other threads and the user's own BLAS calls share.
#include <cstdint>
#include <string>

namespace convkit::host {

// Row-major C[m, n] = op(A)[m, k] * op(B)[k, n] + beta * C, with leading dimensions (elements
// between rows) lda, ldb, ldc. A is stored [m, k] ([k, m] if transpose_a), B [k, n] ([n, k] if
// transpose_b). beta is 0 (C is overwritten; NaN in it does not propagate) or 1 (accumulate).
template <typename T>
void blas_gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
               std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc);

// The largest size or leading dimension the BLAS integer type holds (2^31 - 1 for LP64 builds).
std::int64_t blas_index_limit();

// "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, 2 threads": for benchmarks.
std::string blas_info();

}  // namespace convkit::host
