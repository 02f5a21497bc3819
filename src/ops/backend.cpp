#include "convkit/backend.h"

#include <cstdlib>
#include <optional>

#include "core/check.h"

namespace convkit {

namespace {
// A per-thread setting, so that a test or a worker can pin it without affecting the others;
// initialised from an environment variable on first use.
template <typename T>
T thread_setting(std::optional<T>& slot, const char* variable, T fallback, T (*parse)(const std::string&)) {
    if (!slot) {
        const char* text = std::getenv(variable);
        slot = text != nullptr && *text != '\0' ? parse(text) : fallback;
    }
    return *slot;
}

thread_local std::optional<Backend> thread_host_backend;
thread_local std::optional<Backend> thread_device_backend;

// The fast host path is the default where the build has it: training without a GPU should be
// practical without any setting. A build without OpenBLAS defaults to the reference instead of
// to a backend that refuses every call.
#ifdef CONVKIT_WITH_OPENBLAS
constexpr Backend kDefaultHostBackend = Backend::HostBlas;
#else
constexpr Backend kDefaultHostBackend = Backend::Host;
#endif

Backend parse_host_backend(const std::string& name) {
    const Backend backend = parse_backend(name);
    CONVKIT_REQUIRE(is_host_backend(backend), "CONVKIT_HOST_BACKEND", "'", name,
                    "' is not a host backend (choose host or host-blas; CONVKIT_BACKEND chooses the GPU backend)");
    return backend;
}

Backend parse_device_backend(const std::string& name) {
    const Backend backend = parse_backend(name);
    CONVKIT_REQUIRE(!is_host_backend(backend), "CONVKIT_BACKEND", "'", name,
                    "' is not a GPU backend (choose cuda or cudnn; CONVKIT_HOST_BACKEND chooses the host backend)");
    return backend;
}
thread_local std::optional<MathMode> thread_math_mode;
thread_local std::optional<AlgorithmSearch> thread_algorithm_search;
}  // namespace

const char* backend_name(Backend backend) {
    switch (backend) {
        case Backend::Host: return "host";
        case Backend::HostBlas: return "host-blas";
        case Backend::Cuda: return "cuda";
        case Backend::Cudnn: return "cudnn";
    }
    return "unknown";
}

Backend parse_backend(const std::string& name) {
    if (name == "host") return Backend::Host;
    if (name == "host-blas") return Backend::HostBlas;
    if (name == "cuda") return Backend::Cuda;
    if (name == "cudnn") return Backend::Cudnn;
    throw InvalidArgument(
        detail::concat("backend: unknown backend '", name, "' (choose host, host-blas, cuda or cudnn)"));
}

Backend default_host_backend() {
    return thread_setting(thread_host_backend, "CONVKIT_HOST_BACKEND", kDefaultHostBackend, parse_host_backend);
}

void set_default_host_backend(Backend backend) {
    CONVKIT_REQUIRE(is_host_backend(backend), "set_default_host_backend", backend_name(backend),
                    " is not a host backend (choose host or host-blas)");
    thread_host_backend = backend;
}

Backend default_backend() {
    return thread_setting(thread_device_backend, "CONVKIT_BACKEND", Backend::Cuda, parse_device_backend);
}

void set_default_backend(Backend backend) {
    if (is_host_backend(backend)) {
        thread_host_backend = backend;
    } else {
        thread_device_backend = backend;
    }
}

const char* math_mode_name(MathMode mode) {
    switch (mode) {
        case MathMode::Strict: return "strict";
        case MathMode::AllowTF32: return "tf32";
        case MathMode::AllowReduced: return "reduced";
    }
    return "unknown";
}

MathMode parse_math_mode(const std::string& name) {
    if (name == "strict") return MathMode::Strict;
    if (name == "tf32") return MathMode::AllowTF32;
    if (name == "reduced") return MathMode::AllowReduced;
    throw InvalidArgument(detail::concat("math mode: unknown mode '", name, "' (choose strict, tf32 or reduced)"));
}

MathMode default_math_mode() {
    return thread_setting(thread_math_mode, "CONVKIT_MATH", MathMode::Strict, parse_math_mode);
}
void set_default_math_mode(MathMode mode) { thread_math_mode = mode; }

const char* algorithm_search_name(AlgorithmSearch search) {
    return search == AlgorithmSearch::Heuristic ? "heuristic" : "timed";
}

AlgorithmSearch parse_algorithm_search(const std::string& name) {
    if (name == "heuristic") return AlgorithmSearch::Heuristic;
    if (name == "timed") return AlgorithmSearch::Timed;
    throw InvalidArgument(
        detail::concat("algorithm search: unknown search '", name, "' (choose heuristic or timed)"));
}

AlgorithmSearch default_algorithm_search() {
    return thread_setting(thread_algorithm_search, "CONVKIT_CUDNN_SEARCH", AlgorithmSearch::Heuristic,
                          parse_algorithm_search);
}
void set_default_algorithm_search(AlgorithmSearch search) { thread_algorithm_search = search; }

namespace {
thread_local std::optional<bool> thread_deterministic;

bool parse_flag(const std::string& text) {
    if (text == "1" || text == "true" || text == "on") return true;
    if (text == "0" || text == "false" || text == "off") return false;
    throw InvalidArgument(detail::concat("CONVKIT_DETERMINISTIC: expected 1/0, true/false or on/off, got '", text, "'"));
}
}  // namespace

bool deterministic_mode() { return thread_setting(thread_deterministic, "CONVKIT_DETERMINISTIC", false, parse_flag); }
void set_deterministic_mode(bool enabled) { thread_deterministic = enabled; }

BackendGuard::BackendGuard(Backend backend)
    : previous_(is_host_backend(backend) ? default_host_backend() : default_backend()) {
    set_default_backend(backend);
}
BackendGuard::~BackendGuard() { set_default_backend(previous_); }

}  // namespace convkit
