#pragma once
// Which implementation runs an op on CUDA tensors. Host tensors always run on the host
// reference; the choice matters for tensors on a GPU.
//
//   the per-thread default         set_default_backend(Backend::Cuda)
//   one call or scope              BackendGuard guard(Backend::Cuda); conv_forward(...);
//   the process, from outside      CONVKIT_BACKEND=host|cuda (read when a thread first asks)
//
// Without any of these, CUDA tensors run on the hand-written CUDA kernels.
#include <string>

namespace convkit {

enum class Backend {
    Host,  // the reference; cannot run on CUDA tensors (asking for it there is an error)
    Cuda,  // hand-written CUDA kernels (kernels/)
};

const char* backend_name(Backend backend);               // "host", "cuda"
Backend parse_backend(const std::string& name);          // throws InvalidArgument naming the choices

Backend default_backend();
void set_default_backend(Backend backend);

class BackendGuard {
public:
    explicit BackendGuard(Backend backend);
    ~BackendGuard();
    BackendGuard(const BackendGuard&) = delete;
    BackendGuard& operator=(const BackendGuard&) = delete;

private:
    Backend previous_;
};

}  // namespace convkit
