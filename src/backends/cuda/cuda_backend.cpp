// The hand-written CUDA kernels behind the backend tables. They run every geometry the host
// reference accepts, in float32 and float64.
#include "kernels/conv_direct.h"
#include "kernels/pool.h"
#include "backend_api/backend_registry.h"

namespace convkit::detail {

namespace {
std::string always_supported(const ConvGeometry&, DType) { return {}; }
std::string always_supported_pool(const PoolGeometry&, PoolOp, DType) { return {}; }
}  // namespace

const ConvBackendOps& cuda_conv_backend() {
    static const ConvBackendOps ops{always_supported, kernels::conv_forward_direct, kernels::conv_backward_data_direct,
                                    kernels::conv_backward_filter_direct, kernels::conv_backward_bias};
    return ops;
}

const PoolBackendOps& cuda_pool_backend() {
    static const PoolBackendOps ops{always_supported_pool,       kernels::max_pool_forward,
                                    kernels::max_pool_backward,  kernels::avg_pool_forward,
                                    kernels::avg_pool_backward,  kernels::adaptive_avg_pool_forward,
                                    kernels::adaptive_avg_pool_backward};
    return ops;
}

}  // namespace convkit::detail
