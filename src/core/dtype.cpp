#include "convkit/dtype.h"

#include <cctype>
#include <string>

#include "convkit/error.h"

namespace convkit {

std::size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::Float32: return sizeof(float);
        case DType::Float64: return sizeof(double);
        case DType::Int64: return sizeof(std::int64_t);
        case DType::BFloat16: return 2;
        case DType::Float16: return 2;
    }
    return 0;
}

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::Float32: return "float32";
        case DType::Float64: return "float64";
        case DType::Int64: return "int64";
        case DType::BFloat16: return "bfloat16";
        case DType::Float16: return "float16";
    }
    return "unknown";
}

DType dtype_from_name(std::string_view name) {
    std::string lower;
    for (const char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "float32" || lower == "float" || lower == "f32" || lower == "fp32") return DType::Float32;
    if (lower == "float64" || lower == "double" || lower == "f64" || lower == "fp64") return DType::Float64;
    if (lower == "int64" || lower == "long" || lower == "i64") return DType::Int64;
    if (lower == "bfloat16" || lower == "bf16") return DType::BFloat16;
    if (lower == "float16" || lower == "half" || lower == "f16" || lower == "fp16") return DType::Float16;
    throw InvalidArgument("dtype_from_name: unknown dtype '" + std::string(name) +
                          "' (expected float32, float64, int64, bfloat16 or float16)");
}

}  // namespace convkit
