// The matrix product of the host-blas backend: C is cut into one slice per thread (thread_pool.h), each
// an independent single-threaded OpenBLAS product (blas.h says why OpenBLAS itself stays on
// one thread).
#include <algorithm>

#include "backends/host/blas.h"
#include "backends/host/thread_pool.h"
#include "core/check.h"
#include "backend_api/backend_registry.h"
#include "backend_api/dtype_dispatch.h"

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

// Products smaller than this many multiply-adds (about 0.1 ms on one core) run as one call: a
// parallel region costs more. On a shared machine a region whose second thread has been
// descheduled waits out the scheduler's time slice (milliseconds), so the bar is set high: the
// classifier's last layer (128 x 128 x 10) took 7 ms as a two-thread region on a busy 2-core
// machine (bench/host_training_vs_torch.py) and 0.02 ms as one call.
constexpr std::int64_t kParallelWork = std::int64_t{1} << 22;

template <typename T>
void gemm_blas(const GemmShape& s, const T* a, const T* b, const T* bias, T* c) {
    host::keep_blas_single_threaded();
    // Slices of the larger of C's dims: rows [begin, end) read rows of op(A), columns read
    // columns of op(B); either way the other operand is read whole.
    const bool split_rows = s.m >= s.n;
    const std::int64_t extent = split_rows ? s.m : s.n;
    const std::int64_t slices =
        s.m * s.n * s.k < kParallelWork ? 1 : std::min<std::int64_t>(host::host_threads(), extent);
    host::parallel_for(slices, static_cast<int>(slices), [&](std::int64_t slice, int) {
        const std::int64_t begin = extent * slice / slices;
        const std::int64_t end = extent * (slice + 1) / slices;
        const std::int64_t rows = split_rows ? end - begin : s.m;
        const std::int64_t cols = split_rows ? s.n : end - begin;
        const T* a_slice = !split_rows ? a : s.transpose_a ? a + begin : a + begin * s.k;
        const T* b_slice = split_rows ? b : s.transpose_b ? b + begin * s.k : b + begin;
        T* c_slice = split_rows ? c + begin * s.n : c + begin;
        // With a bias, C starts as the bias in every row and the product is added (beta 1).
        if (bias != nullptr) {
            const T* bias_slice = split_rows ? bias : bias + begin;
            for (std::int64_t i = 0; i < rows; ++i) std::copy(bias_slice, bias_slice + cols, c_slice + i * s.n);
        }
        host::blas_gemm<T>(s.transpose_a, s.transpose_b, rows, cols, s.k, a_slice, s.lda(), b_slice, s.ldb(),
                           bias != nullptr ? T(1) : T(0), c_slice, s.n);
    });
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
