#pragma once
// Which implementation runs an op. Each thread has two settings, one per kind of tensor:
//
//   host tensors      default_host_backend(): Host (the reference) or HostBlas (the default)
//   CUDA tensors      default_backend():      Cuda (the default) or Cudnn
//
// A host backend never runs CUDA tensors and a GPU backend never runs host tensors, so choosing
// one kind leaves the other alone.
//
//   the per-thread default         set_default_backend(Backend::Cudnn)     (sets the slot of its kind)
//   one call or scope              BackendGuard guard(Backend::Host); conv_forward(...);
//   the process, from outside      CONVKIT_HOST_BACKEND=host|host-blas   CONVKIT_BACKEND=cuda|cudnn
//                                  (read when a thread first asks; a name of the other kind is an error)
//
// `BackendGuard guard(Backend::Host)` thus forces the reference for host tensors, which is how
// the tests use the reference as the oracle of the fast host path.
#include <string>

namespace convkit {

enum class Backend {
    Host,      // the reference: loops straight from the definitions, double accumulation
    HostBlas,  // host: convolution as unfolded patches times an OpenBLAS matrix product (OpenMP
               // over images); the matrix product through OpenBLAS; pooling has no BLAS variant
               // and runs the reference. NotSupported in a build without OpenBLAS.
    Cuda,      // hand-written CUDA kernels (kernels/); the matrix product through cuBLAS
    Cudnn,     // NVIDIA cuDNN, for comparison; NotSupported (with the reason) where it cannot run a
               // call; the matrix product through cuBLAS
};

const char* backend_name(Backend backend);       // "host", "host-blas", "cuda", "cudnn"
Backend parse_backend(const std::string& name);  // throws InvalidArgument naming the choices
constexpr bool is_host_backend(Backend backend) { return backend == Backend::Host || backend == Backend::HostBlas; }

// The backend for host tensors. Initially CONVKIT_HOST_BACKEND, else HostBlas (Host in a build
// without OpenBLAS, whose HostBlas could not run anything). Setting a GPU backend here throws
// InvalidArgument.
Backend default_host_backend();
void set_default_host_backend(Backend backend);

// The backend for CUDA tensors. Initially CONVKIT_BACKEND, else Cuda.
Backend default_backend();
// Sets the slot of the backend's kind: Host/HostBlas the host slot, Cuda/Cudnn the GPU slot.
void set_default_backend(Backend backend);

// Arithmetic allowed to float32 convolutions and matrix products on the GPU. Strict: float32
// multiply-adds only, as the hand-written kernels do (compare like with like). AllowTF32: cuDNN
// and cuBLAS may use TF32 tensor cores (10-bit mantissa products, float32 accumulation). Per
// thread, like the backend; CONVKIT_MATH=strict|tf32 sets the initial value. float64 is always
// exact float64. AllowReduced: any reduced-precision product the library offers (cuDNN may
// also convert float32 operands to half on tensor cores; cuBLAS as AllowTF32); CONVKIT_MATH=reduced.
enum class MathMode { Strict, AllowTF32, AllowReduced };
const char* math_mode_name(MathMode mode);  // "strict", "tf32", "reduced"
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

// Sets the slot of `backend`'s kind for a scope and restores that slot afterwards.
// Deterministic mode: every op gives the same bits for the same inputs, run after run. convkit's
// own kernels (hand-written CUDA, the host reference) always are: every sum has a fixed order
// and no floating-point atomics are used. host-blas is too for a fixed OpenMP thread count (its
// weight gradient adds per-thread partial sums in thread order). What the mode changes: cuDNN
// may then use only algorithms it reports as deterministic, and a shape with none is a
// NotSupported instead of a silent choice of a non-deterministic one. Off by default, where
// cuDNN still prefers deterministic algorithms. Per thread; CONVKIT_DETERMINISTIC=1 sets the
// initial value.
bool deterministic_mode();
void set_deterministic_mode(bool enabled);

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
