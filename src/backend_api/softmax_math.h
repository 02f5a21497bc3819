#pragma once
// Softmax along one dim of any tensor, seen as rows: the tensor is [outer, dim, inner] and each
// of the outer * inner rows is `dim` elements `inner` apart. The host reference and the CUDA
// kernels (and cross-entropy, whose rows are the classes of one sample or pixel) share this
// geometry and the arithmetic below; constexpr, so kernels built with --expt-relaxed-constexpr
// call it too. Backends choose only how rows are spread over threads and the accumulator type.
#include <cmath>
#include <cstdint>
#include <string>

#include "convkit/shape.h"

namespace convkit::detail {

enum class SoftmaxKind : std::uint8_t { Softmax, LogSoftmax };

const char* softmax_op_name(SoftmaxKind kind);  // "softmax", "log_softmax"

struct SoftmaxGeometry {
    std::int64_t outer = 1;  // product of the dims before the softmax dim
    std::int64_t dim = 1;    // length of each row
    std::int64_t inner = 1;  // product of the dims after it: the distance between a row's elements

    constexpr std::int64_t rows() const { return outer * inner; }
    constexpr std::int64_t count() const { return outer * dim * inner; }
    // Offset of element 0 of row `row` (rows are numbered outer-major, so row = o * inner + i).
    constexpr std::int64_t row_start(std::int64_t row) const { return (row / inner) * dim * inner + row % inner; }
    // Offset of element k of the row starting at `start`.
    constexpr std::int64_t element(std::int64_t start, std::int64_t k) const { return start + k * inner; }
    // The row holding flat element `index`, and its position k in that row.
    constexpr std::int64_t row_of(std::int64_t index) const { return (index / (dim * inner)) * inner + index % inner; }
    constexpr std::int64_t position_in_row(std::int64_t index) const { return (index / inner) % dim; }
};

// The rows of `shape` along `dim` (negative counts from the end; a rank-0 tensor is one row of
// one element, with dim 0 or -1, as in PyTorch). Throws InvalidArgument naming `op` otherwise.
SoftmaxGeometry softmax_geometry(const std::string& op, const Shape& shape, int dim);

// The larger of a and b, NaN if either is NaN: a row holding NaN gives NaN everywhere, as in
// PyTorch (the comparisons alone would drop a NaN depending on where it sits).
template <typename T>
constexpr T max_or_nan(T a, T b) {
    return (a > b || a != a) ? a : b;
}

// Row statistics: `max` of the row and `sum` = sum_k exp(x_k - max). Rows of only -inf (or
// holding +inf or NaN) make x - max NaN, so the output is NaN, as in PyTorch; a -inf among
// finite values gives softmax 0 and log_softmax -inf.
template <typename A>
constexpr A softmax_term(A x, A max) {
    return std::exp(x - max);
}

template <typename A>
constexpr A softmax_output(SoftmaxKind kind, A x, A max, A sum) {
    return kind == SoftmaxKind::Softmax ? std::exp(x - max) / sum : x - max - std::log(sum);
}

// The reduction a row's backward pass needs: softmax sum_k dy_k y_k, log_softmax sum_k dy_k.
template <typename A>
constexpr A softmax_backward_term(SoftmaxKind kind, A dy, A y) {
    return kind == SoftmaxKind::Softmax ? dy * y : dy;
}

// softmax: dx = y (dy - sum dy y); log_softmax: dx = dy - exp(y) sum dy.
template <typename A>
constexpr A softmax_input_gradient(SoftmaxKind kind, A dy, A y, A row_sum) {
    return kind == SoftmaxKind::Softmax ? y * (dy - row_sum) : dy - std::exp(y) * row_sum;
}

}  // namespace convkit::detail
