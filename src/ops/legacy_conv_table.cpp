// The old table interface over the `cudnn` variant, for tests/test_cuda_cudnn.cpp only (see
// ops/backend_registry.h).
#include "backend_api/variant.h"
#include "core/check.h"
#include "ops/backend_registry.h"

namespace convkit::detail {

namespace {
const ConvVariant& cudnn_variant() {
    const ConvVariant* v = find_conv_variant("cudnn");
    if (v == nullptr) throw NotSupported("cudnn: this build has no cuDNN variant");
    return *v;
}

void run(const ConvGeometry& g, DType dtype, ConvPass pass, const ConvOperands& operands, Stream stream) {
    const ConvProblem problem = conv_problem(g, dtype, Device::cuda(stream.device));
    cudnn_variant().run(problem, pass, operands, {}, stream);
}
}  // namespace

const ConvBackendOps& cudnn_conv_backend() {
    static const ConvBackendOps ops{
        [](const ConvGeometry& g, DType dtype) {
            return cudnn_variant().unsupported_reason(conv_problem(g, dtype, Device::cuda()), ConvPass::Forward);
        },
        [](const ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias, void* y, Stream s) {
            run(g, dtype, ConvPass::Forward, {.x = x, .w = w, .bias = bias, .out = y}, s);
        },
        [](const ConvGeometry& g, DType dtype, const void* dy, const void* w, const void* bias, void* dx, Stream s) {
            run(g, dtype, ConvPass::BackwardData, {.w = w, .dy = dy, .bias = bias, .out = dx}, s);
        },
        [](const ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw, Stream s) {
            run(g, dtype, ConvPass::BackwardFilter, {.x = x, .dy = dy, .out = dw}, s);
        },
        [](std::int64_t batch, std::int64_t channels, std::int64_t spatial, DType dtype, const void* dy, void* db,
           Stream s) {
            ConvProblem problem = conv_problem(ConvGeometry{}, dtype, Device::cuda(s.device));
            problem.bias_grad = {batch, channels, spatial};
            cudnn_variant().run(problem, ConvPass::BackwardBias, {.dy = dy, .out = db}, {}, s);
        }};
    return ops;
}

}  // namespace convkit::detail
