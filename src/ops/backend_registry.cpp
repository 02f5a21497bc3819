#include "ops/backend_registry.h"

#include "core/check.h"

namespace convkit::detail {

namespace {
// Host tensors always run the reference; CUDA tensors the thread's default backend, which must
// be one that runs on a GPU.
Backend backend_for_device(const std::string& op, Device device) {
    if (device.is_host()) return Backend::Host;
    const Backend backend = default_backend();
    if (backend == Backend::Host) {
        throw NotSupported(concat(op, ": the host backend was chosen (set_default_backend or CONVKIT_BACKEND) but the ",
                                  "tensors are on ", device.to_string(),
                                  "; move them with .to(Device::host()) or choose a GPU backend"));
    }
    return backend;
}

#ifndef CONVKIT_WITH_CUDNN
[[noreturn]] void no_cudnn(const std::string& op) {
    throw NotSupported(concat(op, ": this build has no cuDNN backend (configured with CONVKIT_WITH_CUDNN=OFF)"));
}
#endif

template <typename Ops, typename... Args>
const Ops& checked(const std::string& op, Backend backend, const Ops& ops, Args&&... args) {
    const std::string reason = ops.unsupported_reason(std::forward<Args>(args)...);
    if (!reason.empty()) throw NotSupported(concat(op, ": the ", backend_name(backend), " backend ", reason));
    return ops;
}
}  // namespace

const ConvBackendOps& conv_backend_for(const std::string& op, const ConvGeometry& g, DType dtype, Device device) {
    const Backend backend = backend_for_device(op, device);
    switch (backend) {
        case Backend::Host: return checked(op, backend, host_conv_backend(), g, dtype);
        case Backend::Cuda: return checked(op, backend, cuda_conv_backend(), g, dtype);
        case Backend::Cudnn:
#ifdef CONVKIT_WITH_CUDNN
            return checked(op, backend, cudnn_conv_backend(), g, dtype);
#else
            no_cudnn(op);
#endif
    }
    throw NotSupported(concat(op, ": unknown backend"));
}

const PoolBackendOps& pool_backend_for(const std::string& op, const PoolGeometry& g, PoolOp pool_op, DType dtype,
                                       Device device) {
    const Backend backend = backend_for_device(op, device);
    switch (backend) {
        case Backend::Host: return checked(op, backend, host_pool_backend(), g, pool_op, dtype);
        case Backend::Cuda: return checked(op, backend, cuda_pool_backend(), g, pool_op, dtype);
        case Backend::Cudnn:
#ifdef CONVKIT_WITH_CUDNN
            return checked(op, backend, cudnn_pool_backend(), g, pool_op, dtype);
#else
            no_cudnn(op);
#endif
    }
    throw NotSupported(concat(op, ": unknown backend"));
}

}  // namespace convkit::detail
