#pragma once
// IDX files, the format MNIST and Fashion-MNIST ship in (plain or gzip-compressed; gzip is
// detected from the content, not the name), and the Fashion-MNIST loader.
#include <cstdint>
#include <string>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::data {

// An IDX file's contents: dims and the values converted to double-free storage.
// u8 / i8 / i16 / i32 become int64 tensors, f32 float32, f64 float64. Every problem (missing,
// truncated, wrong magic, a dimension count or sizes that do not match the bytes) is an
// IoError naming the file and what is wrong.
Tensor read_idx(const std::string& path);

// Images as float32 [N, 1, 28, 28] in [0, 1] and labels int64 [N], from the four files
// (train-images-idx3-ubyte[.gz], ...) in `directory`.
struct ImageClassificationSet {
    Tensor images;
    Tensor labels;
};
enum class Split { Train, Test };
ImageClassificationSet load_fashion_mnist(const std::string& directory, Split split);

// The Debian package dataset-fashion-mnist's location.
inline const char* kDefaultFashionMnistDirectory = "/usr/share/datasets/fashion-mnist";

// "T-shirt/top", "Trouser", ... for labels 0..9.
const std::vector<std::string>& fashion_mnist_class_names();

}  // namespace convkit::data
