#include "cuda/cublas_api.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "core/check.h"
#include "cuda/dynamic_library.h"

namespace convkit::detail {

namespace {
CublasApi load_cublas() {
#ifdef CONVKIT_EMULATED_DEVICE
    throw NotSupported(
        "cuBLAS: not available on the emulated CUDA device (a CONVKIT_EMULATED_DEVICE build runs convkit's own "
        "kernels on the CPU; NVIDIA's libraries need a GPU)");
#endif
    // Never closed: handles made from it live for the process.
    void* library = dlopen(CONVKIT_CUBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
        const char* reason = dlerror();
        throw NotSupported(concat("cuBLAS: cannot load ", CONVKIT_CUBLAS_LIBRARY, " (", reason ? reason : "unknown",
                                  "); the matrix product on CUDA tensors needs it"));
    }
    CublasApi api{};
    std::string missing;
    resolve_symbol(library, "cublasCreate_v2", api.create, missing);
    resolve_symbol(library, "cublasSetStream_v2", api.set_stream, missing);
    resolve_symbol(library, "cublasSetMathMode", api.set_math_mode, missing);
    resolve_symbol(library, "cublasSgemm_v2_64", api.sgemm, missing);
    resolve_symbol(library, "cublasDgemm_v2_64", api.dgemm, missing);
    resolve_symbol(library, "cublasGemmEx_64", api.gemm_ex, missing);
    resolve_symbol(library, "cublasGemmStridedBatchedEx_64", api.gemm_strided_batched_ex, missing);
    resolve_symbol(library, "cublasGetStatusName", api.status_name, missing);
    resolve_symbol(library, "cublasGetStatusString", api.status_string, missing);
    if (!missing.empty()) {
        throw NotSupported(
            concat("cuBLAS: ", CONVKIT_CUBLAS_LIBRARY, " lacks ", missing, " (convkit needs cuBLAS 12 or newer)"));
    }
    return api;
}
}  // namespace

const CublasApi& cublas_api() {
    // A failed load is not cached: the error repeats with its reason at every use.
    static std::mutex mutex;
    static CublasApi api{};
    static bool loaded = false;
    std::lock_guard lock(mutex);
    if (!loaded) {
        api = load_cublas();
        loaded = true;
    }
    return api;
}

}  // namespace convkit::detail
