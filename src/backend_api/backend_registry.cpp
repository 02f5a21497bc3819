#include "backend_api/backend_registry.h"

#include "core/check.h"

namespace convkit::detail {

namespace {
// Each kind of tensor has its own slot, which can only hold a backend of that kind.
Backend backend_for_device(Device device) { return device.is_host() ? default_host_backend() : default_backend(); }

#ifndef CONVKIT_WITH_OPENBLAS
[[noreturn]] void no_openblas(const std::string& op) {
    throw NotSupported(concat(op, ": this build has no host-blas backend (configured with CONVKIT_WITH_OPENBLAS=OFF; ",
                              "choose the host backend)"));
}
#endif

template <typename Ops, typename... Args>
const Ops& checked(const std::string& op, Backend backend, const Ops& ops, Args&&... args) {
    const std::string reason = ops.unsupported_reason(std::forward<Args>(args)...);
    if (!reason.empty()) throw NotSupported(concat(op, ": the ", backend_name(backend), " backend ", reason));
    return ops;
}
}  // namespace

const GemmBackendOps& gemm_backend_for(const std::string& op, const GemmShape& shape, DType dtype, Device device) {
    const Backend backend = backend_for_device(device);
    switch (backend) {
        case Backend::Host: return checked(op, backend, host_gemm_backend(), shape, dtype);
        case Backend::HostBlas:
#ifdef CONVKIT_WITH_OPENBLAS
            return checked(op, backend, host_blas_gemm_backend(), shape, dtype);
#else
            no_openblas(op);
#endif
        // cuDNN has no matrix product; cuBLAS serves both GPU backends, except on the emulated
        // device, where only convkit's own kernels can run.
        case Backend::Cuda:
        case Backend::Cudnn:
#ifdef CONVKIT_EMULATED_DEVICE
            return checked(op, backend, cuda_gemm_backend(), shape, dtype);
#else
            return checked(op, backend, cublas_gemm_backend(), shape, dtype);
#endif
    }
    throw NotSupported(concat(op, ": unknown backend"));
}

}  // namespace convkit::detail
