#pragma once
// Which implementation runs an op on CUDA tensors. Host tensors always run on the host
// reference; the choice matters for tensors on a GPU.
//
//   the per-thread default         set_default_backend(Backend::Cuda)
//   one call or scope              BackendGuard guard(Backend::Cuda); conv_forward(...);
//   the process, from outside      CONVKIT_BACKEND=host|cuda|cudnn (read when a thread first asks)
//
// Without any of these, CUDA tensors run on the hand-written CUDA kernels.
#include <string>

namespace convkit {

enum class Backend {
    Host,   // the reference; cannot run on CUDA tensors (asking for it there is an error)
    Cuda,   // hand-written CUDA kernels (kernels/)
    Cudnn,  // NVIDIA cuDNN, for comparison; NotSupported (with the reason) where it cannot run a call
};

const char* backend_name(Backend backend);       // "host", "cuda", "cudnn"
Backend parse_backend(const std::string& name);  // throws InvalidArgument naming the choices

Backend default_backend();
void set_default_backend(Backend backend);

// Arithmetic allowed to float32 convolutions on the GPU. Strict: float32 multiply-adds only, as
// the hand-written kernels do (compare like with like). AllowTF32: cuDNN may use TF32 tensor
// cores (10-bit mantissa products, float32 accumulation). Per thread, like the backend;
// CONVKIT_MATH=strict|tf32 sets the initial value. float64 is always exact float64.
enum class MathMode { Strict, AllowTF32 };
const char* math_mode_name(MathMode mode);  // "strict", "tf32"
MathMode parse_math_mode(const std::string& name);
MathMode default_math_mode();
void set_default_math_mode(MathMode mode);

// How the cuDNN backend picks an algorithm for a new shape: its heuristics, or by timing every
// candidate once. Either way the choice is cached per shape, dtype and math mode. Per thread;
// CONVKIT_CUDNN_SEARCH=heuristic|timed sets the initial value.
enum class AlgorithmSearch { Heuristic, Timed };
const char* algorithm_search_name(AlgorithmSearch search);  // "heuristic", "timed"
AlgorithmSearch parse_algorithm_search(const std::string& name);
AlgorithmSearch default_algorithm_search();
void set_default_algorithm_search(AlgorithmSearch search);

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
