#pragma once
#include <string>

namespace convkit {

// "0.1.0"
std::string version_string();

// What this build contains and what it found at run time: version, CUDA runtime and driver,
// compiled architectures, cuDNN (compiled and loaded), the GPUs present. One line per item.
std::string build_info();

}  // namespace convkit
