// The tiled implicit-GEMM convolution (kernels/conv_tiled.h) as the variant `cuda.tiled`:
// float32 and float64, contiguous layouts, zeros padding, the forward, backward-data and
// backward-filter passes (the bias gradient is cuda.direct's). The CUDA backend's default runs it
// wherever it applies and the tensor cores do not (backend_api/selection.cpp): every float32
// convolution in strict math, so the direct kernels remain only for the other padding modes and
// the bias gradient.
#include "backend_api/variant.h"
#include "kernels/conv_tiled.h"

namespace convkit::detail {

namespace {
kernels::TiledConvPass tiled_pass(ConvPass pass) {
    switch (pass) {
        case ConvPass::Forward: return kernels::TiledConvPass::Forward;
        case ConvPass::BackwardData: return kernels::TiledConvPass::BackwardData;
        default: return kernels::TiledConvPass::BackwardFilter;
    }
}

class CudaTiledConv final : public ConvVariant {
public:
    const char* name() const override { return "cuda.tiled"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    bool implements(ConvPass pass) const override { return pass != ConvPass::BackwardBias; }
    std::string unsupported_reason(const ConvProblem& p, ConvPass) const override {
        if (!p.all_contiguous()) return "runs contiguous layouts only";
        return kernels::conv_tiled_unsupported_reason(p.geometry);
    }
    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        return kernels::conv_tiled_workspace_bytes(p.geometry, tiled_pass(pass), p.dtype());
    }
    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        const ConvGeometry& g = p.geometry;
        switch (pass) {
            case ConvPass::Forward:
                kernels::conv_forward_tiled(g, p.dtype(), o.x, o.w, o.bias, o.out, workspace.data, stream);
                break;
            case ConvPass::BackwardData:
                kernels::conv_backward_data_tiled(g, p.dtype(), o.dy, o.w, o.bias, o.out, workspace.data, stream);
                break;
            case ConvPass::BackwardFilter:
                kernels::conv_backward_filter_tiled(g, p.dtype(), o.dy, o.x, o.out, workspace.data, stream);
                break;
            case ConvPass::BackwardBias: break;  // not implemented (implements() says so)
        }
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaTiledConv);

}  // namespace convkit::detail
