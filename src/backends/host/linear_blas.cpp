// The matrix product of the host-blas backend: one OpenBLAS call. OpenBLAS threads it (one
// large product keeps its own thread pool busy; there is no OpenMP loop around it).
#include <algorithm>

#include "backends/host/blas.h"
#include "core/check.h"
#include "ops/backend_registry.h"
#include "ops/op_support.h"

namespace convkit::detail {

namespace {
std::string unsupported_reason(const GemmShape& s, DType) {
    const std::int64_t limit = host::blas_index_limit();
    if (s.m > limit || s.n > limit || s.k > limit) {
        return concat("cannot run a matrix product of sizes m ", s.m, ", n ", s.n, ", k ", s.k,
                      ": past the BLAS integer limit ", limit);
    }
    return {};
}

template <typename T>
void gemm_blas(const GemmShape& s, const T* a, const T* b, const T* bias, T* c) {
    // With a bias, C starts as the bias in every row and the product is added (beta 1).
    if (bias != nullptr) {
        for (std::int64_t i = 0; i < s.m; ++i) std::copy(bias, bias + s.n, c + i * s.n);
    }
    host::blas_gemm<T>(s.transpose_a, s.transpose_b, s.m, s.n, s.k, a, s.lda(), b, s.ldb(),
                       bias != nullptr ? T(1) : T(0), c, s.n);
}

void gemm(const GemmShape& s, DType dtype, const void* a, const void* b, const void* bias, void* c, Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        gemm_blas<T>(s, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(bias),
                     static_cast<T*>(c));
    });
}
}  // namespace

const GemmBackendOps& host_blas_gemm_backend() {
    static const GemmBackendOps ops{unsupported_reason, gemm};
    return ops;
}

}  // namespace convkit::detail
