#include "backends/cudnn/cudnn_api.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include "convkit/error.h"
#include "core/check.h"
#include "cuda/dynamic_library.h"

namespace convkit::detail {

namespace {
#define CONVKIT_STRINGIFY_VALUE(x) #x
#define CONVKIT_STRINGIFY(x) CONVKIT_STRINGIFY_VALUE(x)
constexpr const char* kDefaultLibrary = "libcudnn.so." CONVKIT_STRINGIFY(CUDNN_MAJOR);

std::string library_name() {
    const char* chosen = std::getenv("CONVKIT_CUDNN_LIBRARY");
    return chosen != nullptr && *chosen != '\0' ? chosen : kDefaultLibrary;
}

std::string install_hint() {
    return concat("install cuDNN ", CUDNN_MAJOR, " (NVIDIA's cudnn packages, or pip's nvidia-cudnn-cu",
                  CUDART_VERSION / 1000,
                  ") or set CONVKIT_CUDNN_LIBRARY to its path; convkit's own CUDA kernels and the host "
                  "backends work without it");
}

// Loads the library and resolves every listed function; the reason on failure.
struct Loaded {
    CudnnApi api{};
    std::string error;
};

Loaded load() {
    Loaded loaded;
#ifdef CONVKIT_EMULATED_DEVICE
    loaded.error =
        "cuDNN: not available on the emulated CUDA device (a CONVKIT_EMULATED_DEVICE build runs convkit's own "
        "kernels on the CPU; NVIDIA's libraries need a GPU)";
    return loaded;
#endif
    const std::string name = library_name();
    // Never closed: handles made from it live for the process.
    void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
        const char* reason = dlerror();
        loaded.error =
            concat("cuDNN: cannot load ", name, " (", reason ? reason : "unknown reason", "); ", install_hint());
        return loaded;
    }
    std::string missing;
#define CONVKIT_CUDNN_RESOLVE(name) resolve_symbol(library, #name, loaded.api.name, missing);
    CONVKIT_CUDNN_FUNCTIONS(CONVKIT_CUDNN_RESOLVE)
#undef CONVKIT_CUDNN_RESOLVE
    if (!missing.empty()) {
        loaded.error = concat("cuDNN: ", name, " lacks ", missing, " (convkit was compiled against cuDNN ", CUDNN_MAJOR,
                              "); ", install_hint());
    }
    return loaded;
}

// Tried once per process: the library, its path and the environment do not change while it runs.
const Loaded& loaded_once() {
    static const Loaded loaded = load();
    return loaded;
}
}  // namespace

const CudnnApi& cudnn() {
    const Loaded& loaded = loaded_once();
    if (!loaded.error.empty()) throw NotSupported(loaded.error);
    return loaded.api;
}

std::string cudnn_unavailable_reason() {
    return loaded_once().error;
}

}  // namespace convkit::detail
