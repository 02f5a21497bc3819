#include "convkit/backend.h"

#include <cstdlib>
#include <optional>

#include "core/check.h"

namespace convkit {

namespace {
Backend from_environment() {
    const char* name = std::getenv("CONVKIT_BACKEND");
    return name != nullptr && *name != '\0' ? parse_backend(name) : Backend::Cuda;
}

// Per thread, so that a test or a worker can pin its backend without affecting the others;
// initialised from the environment on first use.
thread_local std::optional<Backend> thread_backend;
}  // namespace

const char* backend_name(Backend backend) {
    switch (backend) {
        case Backend::Host: return "host";
        case Backend::Cuda: return "cuda";
    }
    return "unknown";
}

Backend parse_backend(const std::string& name) {
    if (name == "host") return Backend::Host;
    if (name == "cuda") return Backend::Cuda;
    throw InvalidArgument(detail::concat("backend: unknown backend '", name, "' (choose host or cuda)"));
}

Backend default_backend() {
    if (!thread_backend) thread_backend = from_environment();
    return *thread_backend;
}

void set_default_backend(Backend backend) { thread_backend = backend; }

BackendGuard::BackendGuard(Backend backend) : previous_(default_backend()) { set_default_backend(backend); }
BackendGuard::~BackendGuard() { set_default_backend(previous_); }

}  // namespace convkit
