#include "backends/host/blas.h"

#include <cblas.h>
#include <omp.h>

#include <limits>
#include <mutex>

namespace convkit::host {

namespace {
CBLAS_TRANSPOSE transpose_flag(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }
blasint to_blas(std::int64_t value) { return static_cast<blasint>(value); }
}  // namespace

template <>
void blas_gemm<float>(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
                      const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                      std::int64_t ldc) {
    cblas_sgemm(CblasRowMajor, transpose_flag(transpose_a), transpose_flag(transpose_b), to_blas(m), to_blas(n),
                to_blas(k), 1.0f, a, to_blas(lda), b, to_blas(ldb), beta, c, to_blas(ldc));
}

template <>
void blas_gemm<double>(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
                       const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
                       std::int64_t ldc) {
    cblas_dgemm(CblasRowMajor, transpose_flag(transpose_a), transpose_flag(transpose_b), to_blas(m), to_blas(n),
                to_blas(k), 1.0, a, to_blas(lda), b, to_blas(ldb), beta, c, to_blas(ldc));
}

void keep_blas_single_threaded() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (openblas_get_parallel() == OPENBLAS_THREAD) openblas_set_num_threads(1);
    });
}

std::int64_t blas_index_limit() { return std::numeric_limits<blasint>::max(); }

std::string blas_info() {
    static constexpr const char* kinds[] = {"sequential", "pthreads", "OpenMP"};
    const int parallel = openblas_get_parallel();
    return std::string(openblas_get_config()) + " " + openblas_get_corename() + ", " +
           (parallel >= 0 && parallel <= 2 ? kinds[parallel] : "unknown") + " build, " +
           std::to_string(openblas_get_num_threads()) + " BLAS thread(s); OpenMP " +
           std::to_string(omp_get_max_threads()) + " thread(s)";
}

}  // namespace convkit::host
