#include "convkit/shape.h"

#include "core/check.h"

namespace convkit {

namespace {
void check_rank(std::size_t rank) {
    CONVKIT_REQUIRE(rank <= static_cast<std::size_t>(Shape::kMaxRank), "Shape",
                    "rank ", rank, " is larger than the maximum ", Shape::kMaxRank);
}
}  // namespace

Shape::Shape(std::initializer_list<std::int64_t> dims) {
    check_rank(dims.size());
    for (std::int64_t d : dims) dims_[rank_++] = d;
}

Shape::Shape(const std::vector<std::int64_t>& dims) {
    check_rank(dims.size());
    for (std::int64_t d : dims) dims_[rank_++] = d;
}

std::int64_t Shape::operator[](int dim) const {
    CONVKIT_REQUIRE(dim >= 0 && dim < rank_, "Shape", "dim ", dim, " out of range for shape ", to_string());
    return dims_[dim];
}

std::int64_t& Shape::operator[](int dim) {
    CONVKIT_REQUIRE(dim >= 0 && dim < rank_, "Shape", "dim ", dim, " out of range for shape ", to_string());
    return dims_[dim];
}

std::int64_t Shape::numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) {
        CONVKIT_REQUIRE(!__builtin_mul_overflow(n, dims_[i], &n), "Shape", "the element count of ", to_string(),
                        " overflows 64 bits");
    }
    return n;
}

std::vector<std::int64_t> Shape::to_vector() const { return {begin(), end()}; }

std::string Shape::to_string() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
        if (i > 0) s += ", ";
        s += std::to_string(dims_[i]);
    }
    return s + "]";
}

bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
        if (a.dims_[i] != b.dims_[i]) return false;
    return true;
}

}  // namespace convkit
