#pragma once
// PNG files of Image (gray or RGB, 8 bits per channel), through libpng, written atomically.
#include <string>

#include "common/image.h"

namespace convkit::samples {

// The PNG file's bytes.
std::string encode_png(const Image& image);
// Throws convkit::IoError naming the path if it cannot be written.
void write_png(const std::string& path, const Image& image);

}  // namespace convkit::samples
