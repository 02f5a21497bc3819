#include "cuda/cublas_api.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "core/check.h"

namespace convkit::detail {

namespace {
template <typename Function>
void resolve(void* library, const char* name, Function& function, std::string& missing) {
    function = reinterpret_cast<Function>(dlsym(library, name));
    if (function == nullptr) missing += concat(missing.empty() ? "" : ", ", name);
}

CublasApi load_cublas() {
    // Never closed: handles made from it live for the process.
    void* library = dlopen(CONVKIT_CUBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
        const char* reason = dlerror();
        throw NotSupported(concat("cuBLAS: cannot load ", CONVKIT_CUBLAS_LIBRARY, " (", reason ? reason : "unknown",
                                  "); the matrix product on CUDA tensors needs it"));
    }
    CublasApi api{};
    std::string missing;
    resolve(library, "cublasCreate_v2", api.create, missing);
    resolve(library, "cublasSetStream_v2", api.set_stream, missing);
    resolve(library, "cublasSetMathMode", api.set_math_mode, missing);
    resolve(library, "cublasSgemm_v2_64", api.sgemm, missing);
    resolve(library, "cublasDgemm_v2_64", api.dgemm, missing);
    resolve(library, "cublasGemmEx_64", api.gemm_ex, missing);
    resolve(library, "cublasGetStatusName", api.status_name, missing);
    resolve(library, "cublasGetStatusString", api.status_string, missing);
    if (!missing.empty()) {
        throw NotSupported(concat("cuBLAS: ", CONVKIT_CUBLAS_LIBRARY, " lacks ", missing,
                                  " (convkit needs cuBLAS 12 or newer)"));
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
