#pragma once
// IDX files, the format MNIST and Fashion-MNIST ship in (plain or gzip-compressed; gzip is
// detected from the content, not the name), and the Fashion-MNIST loader (docs/data.md).
//
// Every problem with a file (missing, unreadable, truncated, trailing bytes, wrong magic, an
// unknown type code, a corrupt gzip stream, contents that are not what the loader expects) is an
// IoError whose message starts with the file's path and says what is wrong.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::data {

// The element types of the IDX format: the third byte of the magic number.
enum class IdxType : std::uint8_t {
    UInt8 = 0x08,
    Int8 = 0x09,
    Int16 = 0x0B,
    Int32 = 0x0C,
    Float32 = 0x0D,
    Float64 = 0x0E,
};
std::size_t idx_type_size(IdxType type);   // 1, 1, 2, 4, 4, 8
const char* idx_type_name(IdxType type);   // "u8", "i8", "i16", "i32", "f32", "f64"

// An IDX file as stored: its element type, its dims, and its values packed at their own width
// in host byte order (60000 MNIST images take 47 MB here, not the 376 MB of int64).
struct IdxArray {
    IdxType type = IdxType::UInt8;
    std::vector<std::int64_t> dims;
    std::vector<std::uint8_t> bytes;  // numel() * idx_type_size(type) bytes

    std::int64_t numel() const;  // product of dims (1 for a file with no dims)
    // The values reinterpreted, e.g. values<std::uint8_t>() of a u8 file; T must match the type.
    template <typename T>
    const T* values() const {
        check_value_type(sizeof(T));
        return reinterpret_cast<const T*>(bytes.data());
    }

private:
    void check_value_type(std::size_t value_size) const;
};

// The whole file, checked: magic 0x00 0x00 <type> <ndims>, ndims big-endian uint32 dims, then
// exactly the declared number of big-endian values and nothing after them.
IdxArray read_idx_array(const std::string& path);

// The file as a tensor of the IDX file's shape: integer types (u8, i8, i16, i32) become int64,
// f32 float32, f64 float64. A file with more than Shape::kMaxRank dims is an IoError.
Tensor read_idx(const std::string& path);

// Images as float32 [N, 1, rows, cols] in [0, 1] (byte / 255) and labels int64 [N] in 0..9,
// read from `directory`'s train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]
// (Split::Train, 60000 examples) or t10k-*[.gz] (Split::Test, 10000); the .gz name is tried
// first. MNIST ships under the same names, so this loads it too. Errors (a missing file, images
// and labels of different counts, a label outside 0..9) are IoErrors naming the file and saying
// how to get Fashion-MNIST.
struct ImageClassificationSet {
    Tensor images;
    Tensor labels;
};
enum class Split { Train, Test };
ImageClassificationSet load_fashion_mnist(const std::string& directory, Split split);

// The Debian package dataset-fashion-mnist's location.
inline constexpr const char* kDefaultFashionMnistDirectory = "/usr/share/datasets/fashion-mnist";
// Per-pixel mean and standard deviation of the training images after scaling to [0, 1], for
// normalize({kFashionMnistMean}, {kFashionMnistStd}).
inline constexpr double kFashionMnistMean = 0.2860;
inline constexpr double kFashionMnistStd = 0.3530;

// "T-shirt/top", "Trouser", ... for labels 0..9.
const std::vector<std::string>& fashion_mnist_class_names();

}  // namespace convkit::data
