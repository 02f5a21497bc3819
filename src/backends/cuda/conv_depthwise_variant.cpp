// The depthwise convolution kernels (kernels/conv_depthwise.h) as the variant `cuda.depthwise`:
// groups == in_channels (any channel multiplier), 1-D/2-D/3-D, every stride, dilation and
// padding mode, float32 and float64, contiguous layouts; forward, backward data and backward
// filter, and the bias gradient through cuda.direct's kernel (a per-channel sum that depthwise
// does not change), so the variant can be named for every pass. Deterministic: backward filter
// adds fixed partial sums in a fixed order.
#include <string>

#include "backend_api/variant.h"
#include "convkit/error.h"
#include "kernels/conv_depthwise.h"
#include "kernels/conv_direct.h"

namespace convkit::detail {

namespace {
class CudaDepthwiseConv final : public ConvVariant {
public:
    const char* name() const override { return "cuda.depthwise"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    std::string unsupported_reason(const ConvProblem& p, ConvPass) const override {
        if (!p.all_contiguous()) return "runs contiguous layouts only, not channels-last";
        return kernels::depthwise_unsupported_reason(p.geometry, p.dtype());
    }
    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        switch (pass) {
            case ConvPass::BackwardData: return kernels::depthwise_backward_data_workspace(p.geometry, p.dtype());
            case ConvPass::BackwardFilter: return kernels::depthwise_backward_filter_workspace(p.geometry, p.dtype());
            case ConvPass::Forward:
            case ConvPass::BackwardBias: break;
        }
        return 0;
    }
    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        const ConvGeometry& g = p.geometry;
        if (workspace.bytes < this->workspace(p, pass)) {
            throw InvalidArgument(std::string(name()) + ": a workspace of " + std::to_string(workspace.bytes) +
                                  " bytes, fewer than the " + std::to_string(this->workspace(p, pass)) + " it needs");
        }
        switch (pass) {
            case ConvPass::Forward: kernels::conv_forward_depthwise(g, p.dtype(), o.x, o.w, o.bias, o.out, stream); break;
            case ConvPass::BackwardData:
                kernels::conv_backward_data_depthwise(g, p.dtype(), o.dy, o.w, o.bias, o.out, workspace.data, stream);
                break;
            case ConvPass::BackwardFilter:
                kernels::conv_backward_filter_depthwise(g, p.dtype(), o.dy, o.x, o.out, workspace.data, stream);
                break;
            case ConvPass::BackwardBias:
                kernels::conv_backward_bias(p.bias_grad.batch, p.bias_grad.channels, p.bias_grad.spatial, p.dtype(),
                                            o.dy, o.out, stream);
                break;
        }
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaDepthwiseConv);

}  // namespace convkit::detail
