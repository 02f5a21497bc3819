// The only part of the cuDNN backend so far: which cuDNN this build was compiled against and
// which one the loader found. The convolution path through cuDNN lives beside it.
#include <cudnn.h>

#include <string>

namespace convkit::detail {

std::string cudnn_version_info() {
    // cudnnGetVersion() encodes major * 10000 + minor * 100 + patch from cuDNN 9 on, and
    // major * 1000 + minor * 100 + patch before.
    const std::size_t loaded = cudnnGetVersion();
    const std::size_t major_unit = loaded >= 90000 ? 10000 : 1000;
    const std::string loaded_text = std::to_string(loaded / major_unit) + "." +
                                    std::to_string(loaded % major_unit / 100) + "." + std::to_string(loaded % 100);
    const std::string compiled_text = std::to_string(CUDNN_MAJOR) + "." + std::to_string(CUDNN_MINOR) + "." +
                                      std::to_string(CUDNN_PATCHLEVEL);
    return "compiled " + compiled_text + ", loaded " + loaded_text;
}

}  // namespace convkit::detail
