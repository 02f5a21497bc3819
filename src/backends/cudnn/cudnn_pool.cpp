// Max and average pooling through cuDNN, for comparison with the hand-written kernels, in either
// layout (NCHW, or NHWC: channels-last, x and y alike). cuDNN has no dilated windows, no
// ceil-mode windows and no adaptive pooling: those calls are NotSupported with the reason.
#include "backends/cudnn/cudnn_common.h"
#include "core/check.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "backend_api/variant.h"

namespace convkit::detail {

namespace {
struct PoolDescriptors {
    TensorDescriptor x;
    TensorDescriptor y;
    cudnnPoolingDescriptor_t pool = nullptr;

    PoolDescriptors(const PoolGeometry& g, DType dtype, cudnnPoolingMode_t mode, Layout layout)
        : x(dtype, cudnn_dims(g.batch, g.channels, g.input, g.spatial_rank), layout),
          y(dtype, cudnn_dims(g.batch, g.channels, g.output, g.spatial_rank), layout) {
        CONVKIT_CHECK_CUDNN(cudnn().cudnnCreatePoolingDescriptor(&pool));
        const std::vector<int> window = cudnn_spatial(g.kernel, g.spatial_rank);
        const std::vector<int> padding = cudnn_spatial(g.padding, g.spatial_rank);
        const std::vector<int> stride = cudnn_spatial(g.stride, g.spatial_rank);
        const cudnnStatus_t status =
            cudnn().cudnnSetPoolingNdDescriptor(pool, mode, CUDNN_PROPAGATE_NAN, static_cast<int>(window.size()),
                                                window.data(), padding.data(), stride.data());
        if (status != CUDNN_STATUS_SUCCESS) {
            cudnn().cudnnDestroyPoolingDescriptor(pool);
            CONVKIT_CHECK_CUDNN(status);
        }
    }
    ~PoolDescriptors() { cudnn().cudnnDestroyPoolingDescriptor(pool); }
    PoolDescriptors(const PoolDescriptors&) = delete;
    PoolDescriptors& operator=(const PoolDescriptors&) = delete;
};

cudnnPoolingMode_t average_mode(const PoolGeometry& g) {
    return g.count_include_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                               : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
}

std::string cudnn_unsupported_reason(const PoolProblem& p) {
    if (std::string reason = cudnn_unavailable_reason(); !reason.empty()) return concat("is not available: ", reason);
    if (p.op == PoolOp::AdaptiveAverage) return "has no adaptive pooling";
    if (p.x_layout != p.y_layout) return "pools x and y in one layout only";
    // Its NHWC pooling is documented and used for float and 16-bit types; float64 is left to the
    // contiguous kernels rather than tried first on a GPU run.
    if (p.x_layout == Layout::ChannelsLast && p.dtype() == DType::Float64)
        return "pools channels-last float64 tensors in no kernel we rely on";
    const PoolGeometry& g = p.geometry;
    constexpr std::int64_t kIntMax = 2147483647;
    if (g.planes() * g.input_spatial() > kIntMax) return "handles tensors of at most 2^31 - 1 elements";
    for (int s = 0; s < 3; ++s) {
        if (g.dilation[s] != 1) return "has no dilated pooling windows";
        if ((g.input[s] + 2 * g.padding[s] - g.kernel[s]) / g.stride[s] + 1 != g.output[s]) {
            return "has no ceil_mode windows";
        }
    }
    return {};
}

void run_forward(const PoolGeometry& g, DType dtype, Layout layout, cudnnPoolingMode_t mode, const void* x, void* y,
                 Stream stream) {
    const PoolDescriptors d(g, dtype, mode, layout);
    const Scale one(dtype, 1.0);
    const Scale zero(dtype, 0.0);
    CONVKIT_CHECK_CUDNN(
        cudnn().cudnnPoolingForward(cudnn_handle(stream), d.pool, one.get(), d.x.get(), x, zero.get(), d.y.get(), y));
}

// cuDNN's backward wants the forward output too; the ops API does not keep it, so for max
// pooling it is recomputed into scratch space.
void max_pool_gradient(const PoolGeometry& g, DType dtype, Layout layout, const void* dy, const void* x, void* dx,
                       Stream stream) {
    const PoolDescriptors d(g, dtype, CUDNN_POOLING_MAX_DETERMINISTIC, layout);
    const std::shared_ptr<void> y =
        allocate_cuda(static_cast<std::size_t>(g.planes() * g.output_spatial()) * dtype_size(dtype), stream);
    const Scale one(dtype, 1.0);
    const Scale zero(dtype, 0.0);
    const cudnnHandle_t handle = cudnn_handle(stream);
    CONVKIT_CHECK_CUDNN(
        cudnn().cudnnPoolingForward(handle, d.pool, one.get(), d.x.get(), x, zero.get(), d.y.get(), y.get()));
    CONVKIT_CHECK_CUDNN(cudnn().cudnnPoolingBackward(handle, d.pool, one.get(), d.y.get(), y.get(), d.y.get(), dy,
                                                     d.x.get(), x, zero.get(), d.x.get(), dx));
}

// Average pooling's gradient depends on neither x nor y, but the call takes both: dy stands in
// for y, and dx (zeroed first, so nothing uninitialised is read) for x.
void average_pool_gradient(const PoolGeometry& g, DType dtype, Layout layout, const void* dy, void* dx, Stream stream) {
    const PoolDescriptors d(g, dtype, average_mode(g), layout);
    const Scale one(dtype, 1.0);
    const Scale zero(dtype, 0.0);
    const std::size_t bytes = static_cast<std::size_t>(g.planes() * g.input_spatial()) * dtype_size(dtype);
    {
        CudaDeviceGuard guard(stream.device);
        CONVKIT_CHECK_CUDA(cudaMemsetAsync(dx, 0, bytes, to_cuda(stream)));
    }
    CONVKIT_CHECK_CUDNN(cudnn().cudnnPoolingBackward(cudnn_handle(stream), d.pool, one.get(), d.y.get(), dy, d.y.get(),
                                                     dy, d.x.get(), dx, zero.get(), d.x.get(), dx));
}

class CudnnPool final : public PoolVariant {
public:
    const char* name() const override { return "cudnn"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    std::string unsupported_reason(const PoolProblem& p, PoolPass) const override {
        return cudnn_unsupported_reason(p);
    }
    void run(const PoolProblem& p, PoolPass pass, const PoolOperands& o, WorkspaceView, Stream stream) const override {
        const PoolGeometry& g = p.geometry;
        const bool max = p.op == PoolOp::Max;  // adaptive pooling is refused above
        const Layout layout = p.x_layout;  // y's too (unsupported_reason)
        if (pass == PoolPass::Forward) {
            run_forward(g, p.dtype(), layout, max ? CUDNN_POOLING_MAX_DETERMINISTIC : average_mode(g), o.x, o.out,
                        stream);
        } else if (max) {
            max_pool_gradient(g, p.dtype(), layout, o.dy, o.x, o.out, stream);
        } else {
            average_pool_gradient(g, p.dtype(), layout, o.dy, o.out, stream);
        }
    }
};
}  // namespace

CONVKIT_REGISTER_POOL_VARIANT(CudnnPool);

}  // namespace convkit::detail
