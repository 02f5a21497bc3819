// The only part of the cuDNN backend so far: which cuDNN this build was compiled against and
// which one the loader found. The convolution path through cuDNN lives beside it.
#include <cudnn.h>

#include <string>

namespace convkit::detail {

std::string cudnn_version_info() {
    const std::size_t loaded = cudnnGetVersion();
    auto text = [](std::size_t v) {
        // cuDNN 9 encodes major * 10000 + minor * 100 + patch.
        return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
    };
    return "compiled " + text(CUDNN_VERSION) + ", loaded " + text(loaded);
}

}  // namespace convkit::detail
