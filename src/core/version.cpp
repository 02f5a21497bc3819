#include "convkit/version.h"

#include <sstream>

#include "convkit/device.h"
#include "convkit_build_config.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"

namespace convkit {

namespace detail {
#ifdef CONVKIT_WITH_CUDNN
std::string cudnn_version_info();  // backends/cudnn/cudnn_info.cpp
#else
static std::string cudnn_version_info() { return "not built (CONVKIT_WITH_CUDNN=OFF)"; }
#endif
}  // namespace detail

std::string version_string() { return CONVKIT_VERSION_STRING; }

std::string build_info() {
    std::ostringstream out;
    int runtime = 0;
    int driver = 0;
    // Informational only: a failure here (no driver) is reported as "none", not thrown.
    if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) runtime = 0;
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    cudaGetLastError();
    out << "convkit " << version_string() << "\n";
    out << "CUDA runtime " << detail::cuda_version_text(runtime) << ", driver supports CUDA " << detail::cuda_version_text(driver)
        << "\n";
    out << "compiled for CUDA architectures " << CONVKIT_CUDA_ARCHITECTURES << "\n";
    out << "cuDNN " << detail::cudnn_version_info() << "\n";
    const int count = cuda_device_count();
    if (count == 0) {
        out << "GPU: " << cuda_unavailable_reason() << "\n";
    }
    for (int i = 0; i < count; ++i) {
        cudaDeviceProp properties{};
        CONVKIT_CHECK_CUDA(cudaGetDeviceProperties(&properties, i));
        out << "GPU cuda:" << i << ": " << properties.name << ", compute capability " << properties.major << "."
            << properties.minor << ", " << properties.multiProcessorCount << " SMs, "
            << properties.totalGlobalMem / (1024 * 1024) << " MiB\n";
    }
    return out.str();
}

}  // namespace convkit
