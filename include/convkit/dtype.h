#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace convkit {

// Element types. float64 exists for gradient checks and as the reference's accumulator;
// int64 holds class indices (cross-entropy targets) and counters (BatchNorm's
// num_batches_tracked), as in PyTorch. bfloat16 and float16 are storage types for the
// tensor-core paths (their host element types are in convkit/half.h); an op that does not
// implement them raises NotSupported naming itself and the dtype. New values are appended, so
// the numbers of the older ones never change.
enum class DType : std::uint8_t { Float32, Float64, Int64, BFloat16, Float16 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "float32", "float64", "int64", "bfloat16", "float16"
// The dtype named by dtype_name()'s spelling, or one of PyTorch's ("float", "double", "long",
// "half", "bf16", "fp16", ...); InvalidArgument naming the text otherwise.
DType dtype_from_name(std::string_view name);
constexpr bool is_floating_point(DType dtype) {
    return dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::BFloat16 || dtype == DType::Float16;
}
// The 16-bit floating types: stored narrow, computed in float32 where an op implements them.
constexpr bool is_reduced_precision(DType dtype) { return dtype == DType::BFloat16 || dtype == DType::Float16; }

struct bfloat16;  // convkit/half.h
struct float16;   // convkit/half.h

// The DType of an element type: DTypeOf<float>::value == DType::Float32, ...
template <typename T>
struct DTypeOf;
template <DType D>
struct DTypeConstant {
    static constexpr DType value = D;
};
template <> struct DTypeOf<float> : DTypeConstant<DType::Float32> {};
template <> struct DTypeOf<double> : DTypeConstant<DType::Float64> {};
template <> struct DTypeOf<std::int64_t> : DTypeConstant<DType::Int64> {};
template <> struct DTypeOf<bfloat16> : DTypeConstant<DType::BFloat16> {};
template <> struct DTypeOf<float16> : DTypeConstant<DType::Float16> {};
template <typename T>
inline constexpr DType dtype_of = DTypeOf<T>::value;

}  // namespace convkit
