// The host reference behind the backend tables: untyped entry points that dispatch on dtype
// to the templated reference code.
#include "backends/host/conv_reference.h"
#include "backends/host/linear_reference.h"
#include "backends/host/pool_reference.h"
#include "backend_api/backend_registry.h"
#include "backend_api/dtype_dispatch.h"

namespace convkit::detail {

namespace {
template <typename T>
const T* typed(const void* p) {
    return static_cast<const T*>(p);
}
template <typename T>
T* typed(void* p) {
    return static_cast<T*>(p);
}

std::string always_supported(const ConvGeometry&, DType) { return {}; }
std::string always_supported_pool(const PoolGeometry&, PoolOp, DType) { return {}; }
std::string always_supported_gemm(const GemmShape&, DType) { return {}; }

void conv_forward(const ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias, void* y,
                  Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::conv_forward_reference<T>(g, typed<T>(x), typed<T>(w), typed<T>(bias), typed<T>(y));
    });
}

void conv_backward_data(const ConvGeometry& g, DType dtype, const void* dy, const void* w, const void* bias, void* dx,
                        Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::conv_backward_data_reference<T>(g, typed<T>(dy), typed<T>(w), typed<T>(bias), typed<T>(dx));
    });
}

void conv_backward_filter(const ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw, Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::conv_backward_filter_reference<T>(g, typed<T>(dy), typed<T>(x), typed<T>(dw));
    });
}

void conv_backward_bias(std::int64_t batch, std::int64_t channels, std::int64_t spatial, DType dtype, const void* dy,
                        void* db, Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::conv_backward_bias_reference<T>(batch, channels, spatial, typed<T>(dy), typed<T>(db));
    });
}

// The pooling passes share one shape: (geometry, inputs..., output).
#define CONVKIT_HOST_POOL_PASS(name, reference)                                                \
    void name(const PoolGeometry& g, DType dtype, const void* in, void* out, Stream) {         \
        dispatch_dtype(dtype, [&](auto tag) {                                                  \
            using T = decltype(tag);                                                           \
            host::reference<T>(g, typed<T>(in), typed<T>(out));                                \
        });                                                                                    \
    }
CONVKIT_HOST_POOL_PASS(max_forward, max_pool_forward_reference)
CONVKIT_HOST_POOL_PASS(avg_forward, avg_pool_forward_reference)
CONVKIT_HOST_POOL_PASS(avg_backward, avg_pool_backward_reference)
CONVKIT_HOST_POOL_PASS(adaptive_forward, adaptive_avg_pool_forward_reference)
CONVKIT_HOST_POOL_PASS(adaptive_backward, adaptive_avg_pool_backward_reference)
#undef CONVKIT_HOST_POOL_PASS

void max_backward(const PoolGeometry& g, DType dtype, const void* dy, const void* x, void* dx, Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::max_pool_backward_reference<T>(g, typed<T>(dy), typed<T>(x), typed<T>(dx));
    });
}

void gemm(const GemmShape& shape, DType dtype, const void* a, const void* b, const void* bias, void* c, Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::gemm_reference<T>(shape, typed<T>(a), typed<T>(b), typed<T>(bias), typed<T>(c));
    });
}
}  // namespace

const ConvBackendOps& host_conv_backend() {
    static const ConvBackendOps ops{always_supported, conv_forward, conv_backward_data, conv_backward_filter,
                                    conv_backward_bias};
    return ops;
}

const PoolBackendOps& host_pool_backend() {
    static const PoolBackendOps ops{always_supported_pool, max_forward,      max_backward,     avg_forward,
                                    avg_backward,          adaptive_forward, adaptive_backward};
    return ops;
}

const GemmBackendOps& host_gemm_backend() {
    static const GemmBackendOps ops{always_supported_gemm, gemm};
    return ops;
}

}  // namespace convkit::detail
