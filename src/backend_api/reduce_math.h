#pragma once
// Index math and the max order of the reductions, one definition for every backend (constexpr,
// so CUDA kernels use it too). Sums over a set of dims use ReduceToShapeGeometry
// (ops/broadcast.h): a sum over dims is a sum back to the shape with those dims set to 1.
#include <cstdint>
#include <limits>

namespace convkit::detail {

// A reduction over one dim, the input viewed as [outer, size, inner] (row-major); output
// element j is (o, i) = (j / inner, j % inner) and reads the `size` elements (o, k, i).
struct DimReduceGeometry {
    std::int64_t outer = 1;
    std::int64_t size = 1;
    std::int64_t inner = 1;
    constexpr std::int64_t rows() const { return outer * inner; }
};

// The input offset of term k of output element j.
constexpr std::int64_t dim_reduce_source(const DimReduceGeometry& g, std::int64_t j, std::int64_t k) {
    return ((j / g.inner) * g.size + k) * g.inner + j % g.inner;
}

// The output element and the position along the reduced dim of input element i.
struct DimReducePosition {
    std::int64_t row = 0;
    std::int64_t k = 0;
};
constexpr DimReducePosition dim_reduce_position(const DimReduceGeometry& g, std::int64_t i) {
    const std::int64_t inner = i % g.inner;
    const std::int64_t k = (i / g.inner) % g.size;
    const std::int64_t outer = i / (g.inner * g.size);
    return {outer * g.inner + inner, k};
}

// An element and where it was: what max and argmax reduce.
template <typename T>
struct IndexedValue {
    std::int64_t index;
    T value;
};

// The greater of two indexed values in PyTorch's max order: NaN is greater than every number,
// and of equal values (or two NaNs) the one at the lower index wins. That is a total order, so
// the reduction is associative and commutative: any tree of it (CUB's, a block's) gives the
// first maximum, as a scan in index order does.
template <typename T>
constexpr IndexedValue<T> max_of(IndexedValue<T> a, IndexedValue<T> b) {
    const bool a_nan = a.value != a.value;
    const bool b_nan = b.value != b.value;
    if (a_nan != b_nan) return a_nan ? a : b;
    if (!a_nan && a.value != b.value) return a.value > b.value ? a : b;
    return a.index <= b.index ? a : b;
}

// The identity of max_of: below every value, after every index.
template <typename T>
constexpr IndexedValue<T> max_identity() {
    return {std::numeric_limits<std::int64_t>::max(), -std::numeric_limits<T>::infinity()};
}

}  // namespace convkit::detail
