// The C++ half of the Python interoperability test (tests/python/test_safetensors_interop.py).
//
//   safetensors_interop_tool write <path>   writes the tensors below, with known values, and
//                                           metadata {"format": "pt", "producer": "convkit"}
//   safetensors_interop_tool write-half <path>
//                                           the same for bfloat16 and float16 tensors (a file of
//                                           its own: safetensors.numpy cannot read BF16)
//   safetensors_interop_tool check <path>   loads a file, checks that element i of every tensor
//                                           equals expected_value(name, dtype, i), and prints one
//                                           line per tensor ("tensor <name> <dtype> <shape>")
//                                           and per metadata entry ("metadata <key>=<value>")
//
// Element i of tensor `name` is a function of the dtype and j = i + salt(name), so a tensor
// that comes back under another name, in another order or with another dtype fails. The Python
// test computes the same values with the same formulas:
//   F32: (j - 100) * 0.125            exact in float32
//   F64: (j - 100) / 3.0              one IEEE division, the same in C++ and Python
//   I64: (j - 100) * 1000000007000    beyond 32 bits, negative for j < 100
//   BF16, F16: (j - 100) / 3.0 rounded to nearest even from float64 (PyTorch's .to(dtype))
//   salt(name) = (sum of the name's UTF-8 bytes) % 97
// "*_special" tensors hold fixed bit patterns instead (signed zeros, infinities, NaN, denormals).
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "convkit/convkit.h"

namespace {

using convkit::DType;
using convkit::Shape;
using convkit::Tensor;

std::int64_t salt(const std::string& name) {
    std::int64_t sum = 0;
    for (unsigned char c : name) sum += c;
    return sum % 97;
}

float expected_f32(const std::string& name, std::int64_t i) {
    return static_cast<float>(static_cast<double>(i + salt(name) - 100) * 0.125);
}
double expected_f64(const std::string& name, std::int64_t i) {
    return static_cast<double>(i + salt(name) - 100) / 3.0;
}
std::int64_t expected_i64(const std::string& name, std::int64_t i) { return (i + salt(name) - 100) * 1000000007000; }
convkit::bfloat16 expected_bf16(const std::string& name, std::int64_t i) {
    return convkit::bfloat16(expected_f64(name, i));
}
convkit::float16 expected_f16(const std::string& name, std::int64_t i) {
    return convkit::float16(expected_f64(name, i));
}

template <typename T, typename Expected>
Tensor tensor_of(const std::string& name, const Shape& shape, Expected expected) {
    Tensor t = Tensor::empty(shape, convkit::dtype_of<T>);
    for (std::int64_t i = 0; i < shape.numel(); ++i) t.data<T>()[i] = expected(name, i);
    return t;
}

Tensor known_tensor(const std::string& name, const Shape& shape, DType dtype) {
    const std::int64_t n = shape.numel();
    switch (dtype) {
        case DType::Float32: {
            std::vector<float> v(static_cast<std::size_t>(n));
            for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = expected_f32(name, i);
            return Tensor::from_vector(shape, v);
        }
        case DType::Float64: {
            std::vector<double> v(static_cast<std::size_t>(n));
            for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = expected_f64(name, i);
            return Tensor::from_vector(shape, v);
        }
        case DType::Int64: {
            std::vector<std::int64_t> v(static_cast<std::size_t>(n));
            for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = expected_i64(name, i);
            return Tensor::from_vector(shape, v);
        }
        case DType::BFloat16: return tensor_of<convkit::bfloat16>(name, shape, expected_bf16);
        case DType::Float16: return tensor_of<convkit::float16>(name, shape, expected_f16);
    }
    return {};
}

template <typename Bits>
Tensor from_bits(const std::vector<Bits>& bits, DType dtype) {
    Tensor t = Tensor::empty(Shape{static_cast<std::int64_t>(bits.size())}, dtype);
    std::memcpy(t.raw_data(), bits.data(), t.nbytes());
    return t;
}

int write_file(const std::string& path) {
    convkit::TensorMap tensors{
        {"f32_rank0", known_tensor("f32_rank0", Shape{}, DType::Float32)},
        {"f32_rank1", known_tensor("f32_rank1", Shape{7}, DType::Float32)},
        {"f32_rank2", known_tensor("f32_rank2", Shape{3, 4}, DType::Float32)},
        {"f32_empty", known_tensor("f32_empty", Shape{0, 3}, DType::Float32)},
        {"f64_rank0", known_tensor("f64_rank0", Shape{}, DType::Float64)},
        {"f64_rank3", known_tensor("f64_rank3", Shape{2, 3, 4}, DType::Float64)},
        {"f64_rank4", known_tensor("f64_rank4", Shape{2, 1, 3, 2}, DType::Float64)},
        {"i64_rank0", known_tensor("i64_rank0", Shape{}, DType::Int64)},
        {"i64_rank1", known_tensor("i64_rank1", Shape{5}, DType::Int64)},
        {"i64_rank5", known_tensor("i64_rank5", Shape{1, 2, 3, 1, 2}, DType::Int64)},
        // 0, -0, inf, -inf, quiet NaN, NaN with a payload, smallest denormal, largest finite.
        {"f32_special", from_bits(std::vector<std::uint32_t>{0x00000000, 0x80000000, 0x7f800000, 0xff800000,
                                                             0x7fc00000, 0x7fc12345, 0x00000001, 0x7f7fffff},
                                  DType::Float32)},
        {"f64_special", from_bits(std::vector<std::uint64_t>{0x0000000000000000, 0x8000000000000000,
                                                             0x7ff0000000000000, 0xfff0000000000000,
                                                             0x7ff8000000000000, 0x7ff8000000012345,
                                                             0x0000000000000001, 0x7fefffffffffffff},
                                  DType::Float64)},
    };
    convkit::save_safetensors(path, tensors, {{"format", "pt"}, {"producer", "convkit"}});
    return 0;
}

int write_half_file(const std::string& path) {
    convkit::TensorMap tensors{
        {"bf16_rank0", known_tensor("bf16_rank0", Shape{}, DType::BFloat16)},
        {"bf16_rank2", known_tensor("bf16_rank2", Shape{3, 5}, DType::BFloat16)},
        {"bf16_empty", known_tensor("bf16_empty", Shape{0, 2}, DType::BFloat16)},
        {"f16_rank1", known_tensor("f16_rank1", Shape{9}, DType::Float16)},
        {"f16_rank3", known_tensor("f16_rank3", Shape{2, 3, 4}, DType::Float16)},
        {"f32_rank1", known_tensor("f32_rank1", Shape{7}, DType::Float32)},
        // 0, -0, inf, -inf, quiet NaN, NaN with a payload, smallest denormal, largest finite.
        {"bf16_special", from_bits(std::vector<std::uint16_t>{0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x7fc1, 0x0001,
                                                              0x7f7f},
                                   DType::BFloat16)},
        {"f16_special", from_bits(std::vector<std::uint16_t>{0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7e01, 0x0001,
                                                             0x7bff},
                                  DType::Float16)},
    };
    convkit::save_safetensors(path, tensors, {{"format", "pt"}, {"producer", "convkit"}});
    return 0;
}

template <typename T, typename Expected>
int count_mismatches(const std::string& name, const Tensor& t, Expected expected) {
    int mismatches = 0;
    const T* data = t.data<T>();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
        const T want = expected(name, i);
        if (std::memcmp(&data[i], &want, sizeof(T)) != 0) {
            if (++mismatches <= 5) std::cerr << std::setprecision(17) << name << "[" << i << "] is " << convkit::element_cast<double>(data[i]) << ", expected " << convkit::element_cast<double>(want) << "\n";
        }
    }
    return mismatches;
}

int check_file(const std::string& path) {
    std::map<std::string, std::string> metadata;
    const convkit::TensorMap tensors = convkit::load_safetensors(path, &metadata);
    int mismatches = 0;
    for (const auto& [name, t] : tensors) {
        std::cout << "tensor " << name << " " << convkit::dtype_name(t.dtype()) << " " << t.shape().to_string() << "\n";
        switch (t.dtype()) {
            case DType::Float32: mismatches += count_mismatches<float>(name, t, expected_f32); break;
            case DType::Float64: mismatches += count_mismatches<double>(name, t, expected_f64); break;
            case DType::Int64: mismatches += count_mismatches<std::int64_t>(name, t, expected_i64); break;
            case DType::BFloat16: mismatches += count_mismatches<convkit::bfloat16>(name, t, expected_bf16); break;
            case DType::Float16: mismatches += count_mismatches<convkit::float16>(name, t, expected_f16); break;
        }
    }
    for (const auto& [key, value] : metadata) std::cout << "metadata " << key << "=" << value << "\n";
    if (mismatches > 0) std::cerr << mismatches << " elements differ from the expected values\n";
    return mismatches == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc == 3 ? argv[1] : "";
    if (mode != "write" && mode != "write-half" && mode != "check") {
        std::cerr << "usage: " << argv[0] << " write|write-half|check <file.safetensors>\n";
        return 2;
    }
    try {
        if (mode == "write-half") return write_half_file(argv[2]);
        return mode == "write" ? write_file(argv[2]) : check_file(argv[2]);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
