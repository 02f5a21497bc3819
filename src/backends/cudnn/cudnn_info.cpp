// Which cuDNN this build was compiled against and which one the loader found (or why none was):
// build_info()'s cuDNN line. The convolution and pooling paths through cuDNN live beside it.
#include <string>

#include "backends/cudnn/cudnn_api.h"

namespace convkit::detail {

std::string cudnn_version_info() {
    const std::string compiled_text =
        std::to_string(CUDNN_MAJOR) + "." + std::to_string(CUDNN_MINOR) + "." + std::to_string(CUDNN_PATCHLEVEL);
    if (const std::string reason = cudnn_unavailable_reason(); !reason.empty()) {
        return "compiled " + compiled_text + ", not loaded: " + reason;
    }
    // cudnnGetVersion() encodes major * 10000 + minor * 100 + patch from cuDNN 9 on, and
    // major * 1000 + minor * 100 + patch before.
    const std::size_t loaded = cudnn().cudnnGetVersion();
    const std::size_t major_unit = loaded >= 90000 ? 10000 : 1000;
    const std::string loaded_text = std::to_string(loaded / major_unit) + "." +
                                    std::to_string(loaded % major_unit / 100) + "." + std::to_string(loaded % 100);
    return "compiled " + compiled_text + ", loaded " + loaded_text;
}

}  // namespace convkit::detail
