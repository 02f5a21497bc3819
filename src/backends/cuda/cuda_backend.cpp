// The hand-written CUDA kernels (kernels/) as the variant `cuda.direct`. They run every
// geometry the host reference accepts: convolution in float32 and float64, contiguous layouts;
// pooling in every float dtype and either memory format. And the
// matrix-product table of convkit's own GEMM kernel, the emulated CUDA device's.
#include "backend_api/backend_registry.h"
#include "backend_api/variant.h"
#include "kernels/conv_direct.h"
#include "kernels/gemm.h"
#include "kernels/pool.h"

namespace convkit::detail {

namespace {
std::string always_supported_gemm(const GemmShape&, DType) { return {}; }

class CudaDirectConv final : public ConvVariant {
public:
    const char* name() const override { return "cuda.direct"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    std::string unsupported_reason(const ConvProblem& p, ConvPass) const override {
        return p.all_contiguous() ? std::string() : std::string("runs contiguous layouts only");
    }
    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView, Stream stream) const override {
        const ConvGeometry& g = p.geometry;
        switch (pass) {
            case ConvPass::Forward: kernels::conv_forward_direct(g, p.dtype(), o.x, o.w, o.bias, o.out, stream); break;
            case ConvPass::BackwardData:
                kernels::conv_backward_data_direct(g, p.dtype(), o.dy, o.w, o.bias, o.out, stream);
                break;
            case ConvPass::BackwardFilter:
                kernels::conv_backward_filter_direct(g, p.dtype(), o.dy, o.x, o.out, stream);
                break;
            case ConvPass::BackwardBias:
                kernels::conv_backward_bias(p.bias_grad.batch, p.bias_grad.channels, p.bias_grad.spatial, p.dtype(),
                                            o.dy, o.out, stream);
                break;
        }
    }
};

// Pooling reads and writes its activations in either memory format (x and y share it) and
// computes every float dtype, bfloat16/float16 in float.
class CudaDirectPool final : public PoolVariant {
public:
    const char* name() const override { return "cuda.direct"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    bool computes(DType dtype) const override { return is_floating_point(dtype); }
    std::string unsupported_reason(const PoolProblem& p, PoolPass) const override {
        return p.x_layout == p.y_layout ? std::string() : std::string("reads x and y in one memory format only");
    }
    bool records_argmax_taps(const PoolProblem& p) const override {
        return p.op == PoolOp::Max && kernels::max_pool_taps_fit(p.geometry);
    }
    void run(const PoolProblem& p, PoolPass pass, const PoolOperands& o, WorkspaceView, Stream stream) const override {
        const PoolGeometry& g = p.geometry;
        const MemoryFormat layout = p.x_layout;
        const bool forward = pass == PoolPass::Forward;
        auto* taps = static_cast<std::uint8_t*>(o.argmax_taps);
        switch (p.op) {
            case PoolOp::Max:
                if (forward) {
                    kernels::max_pool_forward(g, p.dtype(), o.x, o.out, stream, layout, taps);
                } else if (taps != nullptr) {
                    kernels::max_pool_backward_from_taps(g, p.dtype(), o.dy, taps, o.out, stream, layout);
                } else {
                    kernels::max_pool_backward(g, p.dtype(), o.dy, o.x, o.out, stream, layout);
                }
                break;
            case PoolOp::Average:
                if (forward) {
                    kernels::avg_pool_forward(g, p.dtype(), o.x, o.out, stream, layout);
                } else {
                    kernels::avg_pool_backward(g, p.dtype(), o.dy, o.out, stream, layout);
                }
                break;
            case PoolOp::AdaptiveAverage:
                if (forward) {
                    kernels::adaptive_avg_pool_forward(g, p.dtype(), o.x, o.out, stream, layout);
                } else {
                    kernels::adaptive_avg_pool_backward(g, p.dtype(), o.dy, o.out, stream, layout);
                }
                break;
        }
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaDirectConv);
CONVKIT_REGISTER_POOL_VARIANT(CudaDirectPool);

const GemmBackendOps& cuda_gemm_backend() {
    static const GemmBackendOps ops{always_supported_gemm, kernels::gemm_tiled};
    return ops;
}

}  // namespace convkit::detail
