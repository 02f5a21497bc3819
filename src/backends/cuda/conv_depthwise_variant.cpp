// The depthwise convolution kernels (kernels/conv_depthwise.h) as the variant `cuda.depthwise`:
// groups == in_channels, 1-D/2-D/3-D, every stride and dilation; forward, backward data and
// backward filter, and the bias gradient, so the variant can be named for every pass.
// Deterministic: backward filter adds fixed partial sums in a fixed order.
// - Contiguous activations (kernels/conv_depthwise.cu): any channel multiplier, every padding
//   mode, float32 and float64.
// - Channels-last activations (kernels/conv_depthwise_nhwc.cu): one output channel per input
//   channel, zeros padding, 16-byte packs of adjacent channels; bfloat16 and float16 in every pass
//   (the bias gradient by the channels-last channel sums, kernels/conv_bias_grad.h), float32 and
//   float64 forward and backward-data. A contiguous 16-bit problem is converted to channels-last
//   for them by the op layer, a channels-last float32 weight or bias gradient to contiguous: every
//   pass sums in one order whatever the layout, so both layouts give the same bits.
#include <cstdint>
#include <string>

#include "backend_api/variant.h"
#include "convkit/error.h"
#include "kernels/conv_bias_grad.h"
#include "kernels/conv_depthwise.h"
#include "kernels/conv_direct.h"

namespace convkit::detail {

namespace {

// Channels-last activations (x and y; the weight is always contiguous).
bool channels_last(const ConvProblem& p) {
    return p.x_layout == Layout::ChannelsLast && p.y_layout == Layout::ChannelsLast && p.w_layout == Layout::Contiguous;
}

class CudaDepthwiseConv final : public ConvVariant {
public:
    const char* name() const override { return "cuda.depthwise"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    // Every floating dtype: 16-bit on channels-last activations, float32 and float64 contiguous and
    // their forward and backward-data channels-last (the other combinations refused by reason in
    // unsupported_reason).
    bool computes(DType dtype) const override { return dtype != DType::Int64; }
    std::string unsupported_reason(const ConvProblem& p, ConvPass pass) const override {
        if (channels_last(p)) {
            const bool parameter_gradient = pass == ConvPass::BackwardFilter || pass == ConvPass::BackwardBias;
            return kernels::depthwise_channels_last_unsupported_reason(p.geometry, p.dtype(), parameter_gradient);
        }
        if (!p.all_contiguous()) return "runs activations and weight contiguous, or the activations channels-last";
        return kernels::depthwise_unsupported_reason(p.geometry, p.dtype());
    }
    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        const ConvGeometry& g = p.geometry;
        const DType dtype = p.dtype();
        const bool last = channels_last(p);
        switch (pass) {
            case ConvPass::Forward:
                return last ? kernels::depthwise_channels_last_filter_by_tap_bytes(g, dtype) : 0;
            case ConvPass::BackwardData:
                return last ? kernels::depthwise_channels_last_filter_by_tap_bytes(g, dtype)
                            : kernels::depthwise_backward_data_workspace(g, dtype);
            case ConvPass::BackwardFilter:
                return last ? kernels::depthwise_channels_last_filter_workspace(g, dtype)
                            : kernels::depthwise_backward_filter_workspace(g, dtype);
            case ConvPass::BackwardBias:
                return last ? kernels::conv_backward_bias_channels_last_workspace_bytes(
                                  p.bias_grad.batch * p.bias_grad.spatial, p.bias_grad.channels, dtype)
                            : 0;
        }
        return 0;
    }
    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        if (workspace.bytes < this->workspace(p, pass)) {
            throw InvalidArgument(std::string(name()) + ": a workspace of " + std::to_string(workspace.bytes) +
                                  " bytes, fewer than the " + std::to_string(this->workspace(p, pass)) + " it needs");
        }
        if (channels_last(p)) {
            // The permuted filter is read in 16-byte packs.
            if (reinterpret_cast<std::uintptr_t>(workspace.data) % 16 != 0) {
                throw InvalidArgument(std::string(name()) + ": a workspace off a 16-byte boundary");
            }
            run_channels_last(p, pass, o, workspace.data, stream);
        } else {
            run_contiguous(p, pass, o, workspace.data, stream);
        }
    }

private:
    static void run_contiguous(const ConvProblem& p, ConvPass pass, const ConvOperands& o, void* workspace,
                               Stream stream) {
        const ConvGeometry& g = p.geometry;
        switch (pass) {
            case ConvPass::Forward: kernels::conv_forward_depthwise(g, p.dtype(), o.x, o.w, o.bias, o.out, stream); break;
            case ConvPass::BackwardData:
                kernels::conv_backward_data_depthwise(g, p.dtype(), o.dy, o.w, o.bias, o.out, workspace, stream);
                break;
            case ConvPass::BackwardFilter:
                kernels::conv_backward_filter_depthwise(g, p.dtype(), o.dy, o.x, o.out, workspace, stream);
                break;
            case ConvPass::BackwardBias:
                kernels::conv_backward_bias(p.bias_grad.batch, p.bias_grad.channels, p.bias_grad.spatial, p.dtype(),
                                            o.dy, o.out, stream);
                break;
        }
    }
    static void run_channels_last(const ConvProblem& p, ConvPass pass, const ConvOperands& o, void* workspace,
                                  Stream stream) {
        const ConvGeometry& g = p.geometry;
        const DType dtype = p.dtype();
        switch (pass) {
            case ConvPass::Forward:
                kernels::conv_forward_depthwise_channels_last(g, dtype, o.x, o.w, o.bias, o.out, workspace, stream);
                break;
            case ConvPass::BackwardData:
                kernels::conv_backward_data_depthwise_channels_last(g, dtype, o.dy, o.w, o.bias, o.out, workspace,
                                                                    stream);
                break;
            case ConvPass::BackwardFilter:
                kernels::conv_backward_filter_depthwise_channels_last(g, dtype, o.dy, o.x, o.out, workspace, stream);
                break;
            case ConvPass::BackwardBias:
                kernels::conv_backward_bias_channels_last(p.bias_grad.batch * p.bias_grad.spatial, p.bias_grad.channels,
                                                          dtype, o.dy, o.out, workspace, stream);
                break;
        }
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(CudaDepthwiseConv);

}  // namespace convkit::detail
