#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace convkit {

// Element types. float64 exists for gradient checks and as the reference's accumulator;
// int64 holds class indices (cross-entropy targets) and counters (BatchNorm's
// num_batches_tracked), as in PyTorch. Arithmetic ops take floating types only. Lower precisions
// are added here (and only here) when the tensor-core paths arrive.
enum class DType : std::uint8_t { Float32, Float64, Int64 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "float32", "float64", "int64"
constexpr bool is_floating_point(DType dtype) { return dtype == DType::Float32 || dtype == DType::Float64; }

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
    static constexpr DType value = DType::Float32;
};
template <>
struct DTypeOf<double> {
    static constexpr DType value = DType::Float64;
};
template <>
struct DTypeOf<std::int64_t> {
    static constexpr DType value = DType::Int64;
};
template <typename T>
inline constexpr DType dtype_of = DTypeOf<T>::value;

}  // namespace convkit
