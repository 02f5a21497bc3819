#pragma once
// The one matrix product behind matmul, linear and their gradients: row-major, with optional
// transposes and an optional bias per column,
//   C[m, n] = sum_k op(A)[m, k] * op(B)[k, n] + bias[n],
// A stored [m, k] ([k, m] when transpose_a), B stored [k, n] ([n, k] when transpose_b), C [m, n],
// all contiguous. Every backend implements exactly this.
#include <cstdint>

namespace convkit::detail {

struct GemmShape {
    std::int64_t m = 1;
    std::int64_t n = 1;
    std::int64_t k = 1;
    bool transpose_a = false;
    bool transpose_b = false;

    // Row-major leading dimensions of A and B as stored.
    constexpr std::int64_t lda() const { return transpose_a ? m : k; }
    constexpr std::int64_t ldb() const { return transpose_b ? k : n; }
};

// Many products of one shape over matrices a fixed stride apart (cuBLAS's strided-batched
// GEMM in row-major terms): for b in [0, batch),
//   C_b = op(A_b) op(B_b) (+ C_b when accumulate),  X_b = X + b * stride_x,
// with leading dimensions of their own (row-major: the distance between rows as stored), so that
// a product can read or write a block of columns of a wider matrix (one group's channels).
struct StridedBatchedGemm : GemmShape {
    std::int64_t lead_a = 1;
    std::int64_t lead_b = 1;
    std::int64_t lead_c = 1;
    std::int64_t stride_a = 0;
    std::int64_t stride_b = 0;
    std::int64_t stride_c = 0;
    std::int64_t batch = 1;
    bool accumulate = false;
};

}  // namespace convkit::detail
