#pragma once
// The one door to OpenBLAS: a typed, row-major matrix product on 64-bit sizes. Only blas.cpp
// includes cblas.h, so the rest of the host BLAS backend does not depend on which cblas.h the
// system provides.
//
// Threading: convkit parallelises with its own thread pool (thread_pool.h) around
// single-threaded OpenBLAS calls, never in both. Each thread of a parallel loop unfolds its own
// images and multiplies them: one loop per call, the unfolding (a large share of the time for
// few channels) runs in parallel too, and the items are independent. OpenBLAS's own thread pool
// would be nested inside that (threads x threads workers on the cores), and its pthread workers
// busy-wait after each call, taking cores from the threads that run next: on the 2-core
// development machine that made a layer up to ten times slower than one thread. So the pthread
// build of OpenBLAS is set to one thread, once, at the first host-blas call (a process-wide
// setting: a program calling OpenBLAS itself gets single-threaded products too; OMP_NUM_THREADS
// sets convkit's threads). The OpenMP build of OpenBLAS is left alone (not tried: outside an
// OpenMP region it would start threads of its own inside each product).
#include <cstdint>
#include <string>

namespace convkit::host {

// Row-major C[m, n] = op(A)[m, k] * op(B)[k, n] + beta * C, with leading dimensions (elements
// between rows) lda, ldb, ldc. A is stored [m, k] ([k, m] if transpose_a), B [k, n] ([n, k] if
// transpose_b). beta is 0 (C is overwritten; NaN in it does not propagate) or 1 (accumulate).
// Safe to call from several threads at once.
template <typename T>
void blas_gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
               std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc);

// Keeps a pthread OpenBLAS to one thread (see above). Every host-blas entry point calls it
// before its parallel region; only the first call does anything.
void keep_blas_single_threaded();

// The largest size or leading dimension the BLAS integer type holds (2^31 - 1 for LP64 builds).
std::int64_t blas_index_limit();

// "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Haswell, pthreads, 1 thread; OpenMP 2 threads": for benchmarks.
std::string blas_info();

}  // namespace convkit::host
