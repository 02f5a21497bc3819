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

}  // namespace convkit::detail
