#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace convkit {

// The dimensions of a tensor: rank 0 (a scalar, one element) to 5. For the image ops the layout is N, C, then up to
// three spatial dims (D, H, W), contiguous with W fastest.
class Shape {
public:
    static constexpr int kMaxRank = 5;

    Shape() = default;
    Shape(std::initializer_list<std::int64_t> dims);
    explicit Shape(const std::vector<std::int64_t>& dims);

    int rank() const { return rank_; }
    std::int64_t operator[](int dim) const;
    std::int64_t& operator[](int dim);
    std::int64_t numel() const;  // product of the dims; 1 for rank 0
    std::vector<std::int64_t> to_vector() const;
    const std::int64_t* begin() const { return dims_.data(); }
    const std::int64_t* end() const { return dims_.data() + rank_; }

    std::string to_string() const;  // "[32, 1, 3, 3]"

    friend bool operator==(const Shape& a, const Shape& b);

private:
    std::array<std::int64_t, kMaxRank> dims_{};
    int rank_ = 0;
};

}  // namespace convkit
