// The host reference as the variants `host.reference` (convolution and pooling) and the host
// matrix-product table: untyped entry points that dispatch on dtype to the templated reference.
#include "backends/host/conv_reference.h"
#include "backends/host/linear_reference.h"
#include "backends/host/pool_reference.h"
#include "backend_api/backend_registry.h"
#include "backend_api/variant.h"
#include "core/check.h"
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

std::string always_supported_gemm(const GemmShape&, DType) { return {}; }

// The oracle of every test: runs every geometry in float32 and float64, in either layout.
// Convolution reads and writes channels-last activations in place (x and y in one layout); the
// weight is contiguous (the op layer converts it).
std::string reference_conv_unsupported_reason(const ConvProblem& p) {
    if (p.w_layout != Layout::Contiguous) return "runs contiguous weights only (host.reference)";
    if (p.x_layout != p.y_layout) return "runs x and y in one layout only (host.reference)";
    return {};
}

class HostReferenceConv final : public ConvVariant {
public:
    const char* name() const override { return "host.reference"; }
    DeviceType device_type() const override { return DeviceType::Host; }
    std::string unsupported_reason(const ConvProblem& p, ConvPass) const override {
        return reference_conv_unsupported_reason(p);
    }
    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView, Stream) const override {
        const ConvGeometry& g = p.geometry;
        const Layout layout = p.x_layout;
        dispatch_dtype(p.dtype(), [&](auto tag) {
            using T = decltype(tag);
            switch (pass) {
                case ConvPass::Forward:
                    host::conv_forward_reference<T>(g, layout, typed<T>(o.x), typed<T>(o.w), typed<T>(o.bias),
                                                    typed<T>(o.out));
                    break;
                case ConvPass::BackwardData:
                    host::conv_backward_data_reference<T>(g, layout, typed<T>(o.dy), typed<T>(o.w), typed<T>(o.bias),
                                                          typed<T>(o.out));
                    break;
                case ConvPass::BackwardFilter:
                    host::conv_backward_filter_reference<T>(g, layout, typed<T>(o.dy), typed<T>(o.x),
                                                            typed<T>(o.out));
                    break;
                case ConvPass::BackwardBias:
                    host::conv_backward_bias_reference<T>(p.bias_grad.batch, p.bias_grad.channels, p.bias_grad.spatial,
                                                          layout, typed<T>(o.dy), typed<T>(o.out));
                    break;
            }
        });
    }
};

class HostReferencePool final : public PoolVariant {
public:
    const char* name() const override { return "host.reference"; }
    DeviceType device_type() const override { return DeviceType::Host; }
    std::string unsupported_reason(const PoolProblem& p, PoolPass) const override {
        return p.x_layout == p.y_layout ? std::string() : "runs x and y in one layout only (host.reference)";
    }
    void run(const PoolProblem& p, PoolPass pass, const PoolOperands& o, WorkspaceView, Stream) const override {
        const PoolGeometry& g = p.geometry;
        const Layout layout = p.x_layout;
        dispatch_dtype(p.dtype(), [&](auto tag) {
            using T = decltype(tag);
            const bool forward = pass == PoolPass::Forward;
            switch (p.op) {
                case PoolOp::Max:
                    if (forward) {
                        host::max_pool_forward_reference<T>(g, layout, typed<T>(o.x), typed<T>(o.out));
                    } else {
                        host::max_pool_backward_reference<T>(g, layout, typed<T>(o.dy), typed<T>(o.x), typed<T>(o.out));
                    }
                    break;
                case PoolOp::Average:
                    if (forward) {
                        host::avg_pool_forward_reference<T>(g, layout, typed<T>(o.x), typed<T>(o.out));
                    } else {
                        host::avg_pool_backward_reference<T>(g, layout, typed<T>(o.dy), typed<T>(o.out));
                    }
                    break;
                case PoolOp::AdaptiveAverage:
                    if (forward) {
                        host::adaptive_avg_pool_forward_reference<T>(g, layout, typed<T>(o.x), typed<T>(o.out));
                    } else {
                        host::adaptive_avg_pool_backward_reference<T>(g, layout, typed<T>(o.dy), typed<T>(o.out));
                    }
                    break;
            }
        });
    }
};

void gemm(const GemmShape& shape, DType dtype, const void* a, const void* b, const void* bias, void* c, Stream) {
    dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        host::gemm_reference<T>(shape, typed<T>(a), typed<T>(b), typed<T>(bias), typed<T>(c));
    });
}
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(HostReferenceConv);
CONVKIT_REGISTER_POOL_VARIANT(HostReferencePool);

const GemmBackendOps& host_gemm_backend() {
    static const GemmBackendOps ops{always_supported_gemm, gemm};
    return ops;
}

}  // namespace convkit::detail
