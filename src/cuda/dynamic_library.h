#pragma once
// Resolving the functions of a library opened with dlopen (cuBLAS, cuDNN: loaded on first use,
// docs/packaging.md), each into a typed function pointer, collecting the names that are missing.
#include <dlfcn.h>

#include <string>

namespace convkit::detail {

template <typename Function>
void resolve_symbol(void* library, const char* name, Function& function, std::string& missing) {
    function = reinterpret_cast<Function>(dlsym(library, name));
    if (function == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(name);
}

}  // namespace convkit::detail
