// Convolution through cuDNN (its legacy convolution API, still shipped in cuDNN 9): the
// comparison point for the hand-written kernels. Zeros padding with equal padding on both
// sides only; anything else is NotSupported with the reason, never run differently.
//
// float32 and float64, and bfloat16/float16 computed in float32 on the tensor cores, like
// cuda.igemm; activations contiguous (NCDHW) or channels-last (NDHWC). For channels-last the
// weight is given to cuDNN in its NHWC filter format (KRSC), permuted into the variant's
// workspace on every call, and the filter gradient permuted back: the same work cuda.igemm
// does, so the two compare on equal terms.
//
// The epilogue (bias, residual, ReLU: ConvOperands) is applied with cuDNN's own calls, as a cuDNN
// user would and PyTorch's fused conv-add-ReLU does: a forward with a ReLU is the one fused call
// cudnnConvolutionBiasActivationForward (y = relu(conv(x, w) + residual + bias)); anything else,
// or a configuration that call refuses, is the convolution accumulating onto the residual copied
// into its output (beta = 1), then cudnnAddTensor for the bias and cudnnActivationForward in place.
// cudnn_last_epilogue_route() says which ran.
#include <algorithm>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

#include "backend_api/variant.h"
#include "backends/cuda/conv_weight_layout.h"
#include "backends/cudnn/cudnn_common.h"
#include "backends/cudnn/cudnn_epilogue_route.h"
#include "core/check.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"

namespace convkit::detail {

namespace {
enum class Pass { Forward, BackwardData, BackwardFilter };

// Everything that makes two calls need the same algorithm.
using AlgorithmKey =
    std::tuple<Pass, std::vector<int>, std::vector<int>, std::vector<int>, std::vector<int>, std::vector<int>,
               std::vector<int>, std::int64_t, DType, MathMode, AlgorithmSearch, int, bool, Layout>;

// The math type a problem allows: 16-bit operands run on the tensor cores (their precision is
// the caller's choice, as for cuda.igemm); strict float32 excludes TF32 tensor cores, reduced
// precision also lets cuDNN convert to half; float64 has no lower-precision path.
cudnnMathType_t math_type(DType dtype, MathMode math) {
    if (is_reduced_precision(dtype)) return CUDNN_TENSOR_OP_MATH;
    if (dtype == DType::Float64 || math == MathMode::Strict) return CUDNN_FMA_MATH;
    return math == MathMode::AllowTF32 ? CUDNN_DEFAULT_MATH : CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// The precision cuDNN accumulates in: float32 for 16-bit data, else the data's own.
cudnnDataType_t compute_type(DType dtype) {
    return is_reduced_precision(dtype) ? CUDNN_DATA_FLOAT : cudnn_type(dtype);
}

// Descriptors of one convolution, in cuDNN's terms (x: the geometry's input, y: its output).
struct ConvDescriptors {
    TensorDescriptor x;
    TensorDescriptor y;
    FilterDescriptor w;
    cudnnConvolutionDescriptor_t conv = nullptr;

    ConvDescriptors(const ConvGeometry& g, DType dtype, MathMode math, Layout layout)
        : x(dtype, cudnn_dims(g.batch, g.in_channels, g.input, g.spatial_rank), layout),
          y(dtype, cudnn_dims(g.batch, g.out_channels, g.output, g.spatial_rank), layout),
          w(dtype, cudnn_dims(g.out_channels, g.in_channels_per_group(), g.kernel, g.spatial_rank), layout) {
        CONVKIT_CHECK_CUDNN(cudnn().cudnnCreateConvolutionDescriptor(&conv));
        const std::vector<int> pad = cudnn_spatial(g.pad_begin, g.spatial_rank);
        const std::vector<int> stride = cudnn_spatial(g.stride, g.spatial_rank);
        const std::vector<int> dilation = cudnn_spatial(g.dilation, g.spatial_rank);
        try {
            CONVKIT_CHECK_CUDNN(cudnn().cudnnSetConvolutionNdDescriptor(conv, static_cast<int>(pad.size()), pad.data(),
                                                                        stride.data(), dilation.data(),
                                                                        CUDNN_CROSS_CORRELATION, compute_type(dtype)));
            CONVKIT_CHECK_CUDNN(cudnn().cudnnSetConvolutionGroupCount(conv, static_cast<int>(g.groups)));
            CONVKIT_CHECK_CUDNN(cudnn().cudnnSetConvolutionMathType(conv, math_type(dtype, math)));
        } catch (...) {
            cudnn().cudnnDestroyConvolutionDescriptor(conv);
            throw;
        }
    }
    ~ConvDescriptors() { cudnn().cudnnDestroyConvolutionDescriptor(conv); }
    ConvDescriptors(const ConvDescriptors&) = delete;
    ConvDescriptors& operator=(const ConvDescriptors&) = delete;
};

AlgorithmKey key_of(Pass pass, const ConvProblem& p, int device) {
    const ConvGeometry& g = p.geometry;
    const int r = g.spatial_rank;
    return {pass,
            {static_cast<int>(g.batch), static_cast<int>(g.in_channels), static_cast<int>(g.out_channels)},
            cudnn_spatial(g.input, r),
            cudnn_spatial(g.kernel, r),
            cudnn_spatial(g.stride, r),
            cudnn_spatial(g.dilation, r),
            cudnn_spatial(g.pad_begin, r),
            g.groups,
            p.dtype(),
            p.math,
            p.algorithm_search,
            device,
            p.deterministic,
            p.x_layout};
}

// The algorithm and workspace size chosen for a key, found once; and for a forward key, the
// status with which cuDNN refused its fused call (cudnnConvolutionBiasActivationForward) without
// and with a residual, success where it has not: a refused configuration is not asked again (each
// refusal would cost cuDNN's checks on every call).
struct Choice {
    int algorithm = 0;
    std::size_t workspace = 0;
    cudnnStatus_t fused_refusal[2] = {CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS};
};

std::mutex cache_mutex;
std::map<AlgorithmKey, Choice>& algorithm_cache() {
    static auto* cache = new std::map<AlgorithmKey, Choice>();
    return *cache;
}

// Picks from cuDNN's ranked list: the first that succeeded, preferring deterministic algorithms
// (the same inputs give the same bits, as with the hand-written kernels); in deterministic mode
// only those.
template <typename Perf>
Choice pick(const Perf* results, int count, const char* what, bool deterministic) {
    const int last_pass = deterministic ? 1 : 0;
    for (int want_deterministic = 1; want_deterministic >= last_pass; --want_deterministic) {
        for (int i = 0; i < count; ++i) {
            if (results[i].status != CUDNN_STATUS_SUCCESS) continue;
            if (want_deterministic && results[i].determinism != CUDNN_DETERMINISTIC) continue;
            return {static_cast<int>(results[i].algo), results[i].memory};
        }
    }
    throw NotSupported(concat("cudnn: no ", deterministic ? "deterministic " : "", "algorithm for ", what,
                              " on this shape", deterministic ? " (deterministic mode is on)" : ""));
}

// The timed search needs scratch space to try algorithms in; candidates needing more are skipped.
constexpr std::size_t kSearchWorkspace = std::size_t{256} << 20;

template <typename Find, typename Heuristic>
Choice choose(const AlgorithmKey& key, AlgorithmSearch search, Find find, Heuristic heuristic) {
    {
        std::lock_guard lock(cache_mutex);
        auto it = algorithm_cache().find(key);
        if (it != algorithm_cache().end()) return it->second;
    }
    // The key holds the problem's search, so this is the search it names.
    const Choice choice = search == AlgorithmSearch::Timed ? find() : heuristic();
    std::lock_guard lock(cache_mutex);
    // A thread that found it first keeps its entry (and any refusal recorded in it since).
    return algorithm_cache().try_emplace(key, choice).first->second;
}

// A bias [1, channels, 1, ...] of g's rank.
TensorDescriptor bias_descriptor(const ConvGeometry& g, DType dtype, std::int64_t channels) {
    return TensorDescriptor(dtype, cudnn_dims(1, channels, SpatialDims{1, 1, 1}, g.spatial_rank));
}

// data[n, c, ...] += bias[c] over a tensor described by `data_descriptor` (either layout).
void add_channel_bias(cudnnHandle_t handle, const ConvGeometry& g, DType dtype, std::int64_t channels, const void* bias,
                      const TensorDescriptor& data_descriptor, void* data) {
    const TensorDescriptor b = bias_descriptor(g, dtype, channels);
    const Scale one(dtype, 1.0);
    CONVKIT_CHECK_CUDNN(
        cudnn().cudnnAddTensor(handle, one.get(), b.get(), bias, one.get(), data_descriptor.get(), data));
}

// What a Forward or BackwardData pass applies after the convolution (ConvOperands).
struct Epilogue {
    const void* bias = nullptr;
    const void* residual = nullptr;
    bool relu = false;
};

// max(v, 0); NaN becomes 0, as fmaxf in cuda.igemm's epilogue and the host reference's ReLU. The
// coefficient, RELU's upper bound in cuDNN's text (ignored in practice), is the largest double, as
// PyTorch passes.
class ReluDescriptor {
public:
    ReluDescriptor() {
        CONVKIT_CHECK_CUDNN(cudnn().cudnnCreateActivationDescriptor(&descriptor_));
        const cudnnStatus_t status = cudnn().cudnnSetActivationDescriptor(
            descriptor_, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, std::numeric_limits<double>::max());
        if (status != CUDNN_STATUS_SUCCESS) {
            cudnn().cudnnDestroyActivationDescriptor(descriptor_);
            CONVKIT_CHECK_CUDNN(status);
        }
    }
    ~ReluDescriptor() { cudnn().cudnnDestroyActivationDescriptor(descriptor_); }
    ReluDescriptor(const ReluDescriptor&) = delete;
    ReluDescriptor& operator=(const ReluDescriptor&) = delete;
    cudnnActivationDescriptor_t get() const { return descriptor_; }

private:
    cudnnActivationDescriptor_t descriptor_ = nullptr;
};

// The calling thread's route (cudnn_last_epilogue_route).
thread_local std::string thread_epilogue_route;

// The separate route, before the convolution: its output starts as the residual, which the
// convolution then accumulates onto (its beta, returned: 1), or is overwritten (beta 0).
double start_from_residual(const void* residual, void* out, std::size_t out_bytes, Stream stream) {
    if (residual == nullptr) return 0.0;
    CONVKIT_CHECK_CUDA(cudaMemcpyAsync(out, residual, out_bytes, cudaMemcpyDeviceToDevice, to_cuda(stream)));
    return 1.0;
}

// The separate route, after the convolution: the bias, then the ReLU, each in place on `out`.
void finish_separately(cudnnHandle_t handle, const ConvGeometry& g, DType dtype, std::int64_t channels,
                       const Epilogue& e, const TensorDescriptor& out_descriptor, void* out) {
    if (e.bias != nullptr) add_channel_bias(handle, g, dtype, channels, e.bias, out_descriptor, out);
    if (e.relu) {
        const ReluDescriptor relu;
        const Scale one(dtype, 1.0), zero(dtype, 0.0);
        CONVKIT_CHECK_CUDNN(cudnn().cudnnActivationForward(handle, relu.get(), one.get(), out_descriptor.get(), out,
                                                           zero.get(), out_descriptor.get(), out));
    }
}

// The legacy API describes tensors with int dims and strides.
constexpr std::int64_t kIntMax = 2147483647;

std::string cudnn_unsupported_reason(const ConvProblem& p, ConvPass pass) {
    if (std::string reason = cudnn_unavailable_reason(); !reason.empty()) return concat("is not available: ", reason);
    if (p.x_layout != p.y_layout || p.w_layout != Layout::Contiguous) {
        return "runs x and y in one layout and contiguous weights only";
    }
    if (pass == ConvPass::BackwardBias) {
        const BiasGradShape& s = p.bias_grad;
        if (s.batch * s.channels * s.spatial > kIntMax) {
            return concat("handles tensors of at most 2^31 - 1 elements, not ", s.batch * s.channels * s.spatial);
        }
        return {};
    }
    const ConvGeometry& g = p.geometry;
    const std::int64_t largest =
        std::max({g.batch * g.in_channels * g.input_spatial(), g.batch * g.out_channels * g.output_spatial(),
                  g.out_channels * g.in_channels_per_group() * g.kernel_spatial()});
    if (largest > kIntMax) return concat("handles tensors of at most 2^31 - 1 elements, not ", largest);
    return symmetric_zero_padding_reason(g);
}

void remember_fused_refusal(const AlgorithmKey& key, bool residual, cudnnStatus_t status) {
    std::lock_guard lock(cache_mutex);
    algorithm_cache()[key].fused_refusal[residual ? 1 : 0] = status;
}

// Whether `status` is cuDNN declining the fused call for this configuration (a data type, layout
// or algorithm it does not fuse): remembered for the problem. A BAD_PARAM status may depend on
// this call's pointers or workspace, so it falls back for the call alone, its status in the route.
bool is_refusal(cudnnStatus_t status) {
    return CUDNN_STATUS_CATEGORY(status) == CUDNN_STATUS_NOT_SUPPORTED;
}
bool is_bad_parameter(cudnnStatus_t status) {
    return CUDNN_STATUS_CATEGORY(status) == CUDNN_STATUS_BAD_PARAM;
}

std::string status_text(cudnnStatus_t status) {
    return concat(cudnn().cudnnGetErrorString(status), " (", static_cast<int>(status), ")");
}

// y = relu(conv(x, w) + residual + bias) in cuDNN's one fused call, with the forward's `choice`
// (for `key`) of algorithm and its workspace. Without a residual the call's z is y itself, scaled
// by 0; without a bias a zero one. False where cuDNN refuses, the status remembered in the choice
// for `key`; `route` says which.
bool fused_forward(const ConvProblem& p, const AlgorithmKey& key, const Choice& choice, const ConvDescriptors& d,
                   const Workspace& workspace, const void* x, const void* w, const Epilogue& e, void* y, Stream stream,
                   std::string& route) {
    const bool residual = e.residual != nullptr;
    const auto refused_route = [](cudnnStatus_t status) {
        return concat("separate calls (cudnnConvolutionBiasActivationForward refused: ", status_text(status), ")");
    };
    if (const cudnnStatus_t refused = choice.fused_refusal[residual ? 1 : 0]; refused != CUDNN_STATUS_SUCCESS) {
        route = refused_route(refused);
        return false;
    }
    const ConvGeometry& g = p.geometry;
    const DType dtype = p.dtype();
    const TensorDescriptor bias = bias_descriptor(g, dtype, g.out_channels);
    const Workspace zeros(e.bias == nullptr ? static_cast<std::size_t>(g.out_channels) * dtype_size(dtype) : 0, stream);
    if (e.bias == nullptr) CONVKIT_CHECK_CUDA(cudaMemsetAsync(zeros.get(), 0, zeros.size(), to_cuda(stream)));
    const ReluDescriptor relu;
    const Scale one(dtype, 1.0), residual_scale(dtype, residual ? 1.0 : 0.0);
    const cudnnStatus_t status = cudnn().cudnnConvolutionBiasActivationForward(
        cudnn_handle(stream), one.get(), d.x.get(), x, d.w.get(), w, d.conv,
        static_cast<cudnnConvolutionFwdAlgo_t>(choice.algorithm), workspace.get(), workspace.size(),
        residual_scale.get(), d.y.get(), residual ? e.residual : y, bias.get(),
        e.bias != nullptr ? e.bias : zeros.get(), relu.get(), d.y.get(), y);
    if (status == CUDNN_STATUS_SUCCESS) {
        route = "fused: cudnnConvolutionBiasActivationForward";
        return true;
    }
    if (is_bad_parameter(status)) {
        route = concat("separate calls (cudnnConvolutionBiasActivationForward returned ", status_text(status),
                       " for this call)");
        return false;
    }
    if (!is_refusal(status)) throw_cudnn_error(status, "cudnnConvolutionBiasActivationForward", __FILE__, __LINE__);
    remember_fused_refusal(key, residual, status);
    route = refused_route(status);
    return false;
}

// The route of a pass that does not try the fused call.
std::string separate_route(const Epilogue& e, const char* why) {
    if (e.bias == nullptr && e.residual == nullptr && !e.relu) return "none";
    return concat("separate calls (", why, ")");
}

void forward(const ConvProblem& p, const void* x, const void* w, const Epilogue& e, void* y, Stream stream) {
    thread_epilogue_route.clear();  // set once the pass has run: a failed one leaves none
    const ConvGeometry& g = p.geometry;
    const DType dtype = p.dtype();
    const cudnnHandle_t handle = cudnn_handle(stream);
    const ConvDescriptors d(g, dtype, p.math, p.x_layout);
    const AlgorithmKey key = key_of(Pass::Forward, p, stream.device);
    const Choice choice = choose(
        key, p.algorithm_search,
        [&] {
            const Workspace search(kSearchWorkspace, stream);
            cudnnConvolutionFwdAlgoPerf_t results[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
            int count = 0;
            CONVKIT_CHECK_CUDNN(cudnn().cudnnFindConvolutionForwardAlgorithmEx(
                handle, d.x.get(), x, d.w.get(), w, d.conv, d.y.get(), y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count,
                results, search.get(), search.size()));
            return pick(results, count, "forward", p.deterministic);
        },
        [&] {
            cudnnConvolutionFwdAlgoPerf_t results[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
            int count = 0;
            CONVKIT_CHECK_CUDNN(cudnn().cudnnGetConvolutionForwardAlgorithm_v7(
                handle, d.x.get(), d.w.get(), d.conv, d.y.get(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, results));
            return pick(results, count, "forward", p.deterministic);
        });
    const Workspace workspace(choice.workspace, stream);
    const auto algorithm = static_cast<cudnnConvolutionFwdAlgo_t>(choice.algorithm);
    std::string route = separate_route(e, "no ReLU to fuse");
    if (e.relu && fused_forward(p, key, choice, d, workspace, x, w, e, y, stream, route)) {
        thread_epilogue_route = route;
        return;
    }
    const std::size_t y_bytes =
        static_cast<std::size_t>(g.batch * g.out_channels * g.output_spatial()) * dtype_size(dtype);
    const Scale one(dtype, 1.0), beta(dtype, start_from_residual(e.residual, y, y_bytes, stream));
    CONVKIT_CHECK_CUDNN(cudnn().cudnnConvolutionForward(handle, one.get(), d.x.get(), x, d.w.get(), w, d.conv,
                                                        algorithm, workspace.get(), workspace.size(), beta.get(),
                                                        d.y.get(), y));
    finish_separately(handle, g, dtype, g.out_channels, e, d.y, y);
    thread_epilogue_route = route;
}

// Backward-data (also the forward of a transposed convolution, whose epilogue it then carries):
// cuDNN has no fused call for it, so its epilogue takes the separate route.
void backward_data(const ConvProblem& p, const void* dy, const void* w, const Epilogue& e, void* dx, Stream stream) {
    thread_epilogue_route.clear();
    const ConvGeometry& g = p.geometry;
    const DType dtype = p.dtype();
    const cudnnHandle_t handle = cudnn_handle(stream);
    const ConvDescriptors d(g, dtype, p.math, p.x_layout);
    const Choice choice = choose(
        key_of(Pass::BackwardData, p, stream.device), p.algorithm_search,
        [&] {
            const Workspace search(kSearchWorkspace, stream);
            cudnnConvolutionBwdDataAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
            int count = 0;
            CONVKIT_CHECK_CUDNN(cudnn().cudnnFindConvolutionBackwardDataAlgorithmEx(
                handle, d.w.get(), w, d.y.get(), dy, d.conv, d.x.get(), dx, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                &count, results, search.get(), search.size()));
            return pick(results, count, "backward data", p.deterministic);
        },
        [&] {
            cudnnConvolutionBwdDataAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
            int count = 0;
            CONVKIT_CHECK_CUDNN(cudnn().cudnnGetConvolutionBackwardDataAlgorithm_v7(
                handle, d.w.get(), d.y.get(), d.conv, d.x.get(), CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count,
                results));
            return pick(results, count, "backward data", p.deterministic);
        });
    const Workspace workspace(choice.workspace, stream);
    const std::size_t dx_bytes =
        static_cast<std::size_t>(g.batch * g.in_channels * g.input_spatial()) * dtype_size(dtype);
    const Scale one(dtype, 1.0), beta(dtype, start_from_residual(e.residual, dx, dx_bytes, stream));
    CONVKIT_CHECK_CUDNN(
        cudnn().cudnnConvolutionBackwardData(handle, one.get(), d.w.get(), w, d.y.get(), dy, d.conv,
                                             static_cast<cudnnConvolutionBwdDataAlgo_t>(choice.algorithm),
                                             workspace.get(), workspace.size(), beta.get(), d.x.get(), dx));
    finish_separately(handle, g, dtype, g.in_channels, e, d.x, dx);
    thread_epilogue_route = separate_route(e, "cuDNN fuses no epilogue into backward-data");
}

void backward_filter(const ConvProblem& p, const void* dy, const void* x, void* dw, Stream stream) {
    const ConvGeometry& g = p.geometry;
    const DType dtype = p.dtype();
    const cudnnHandle_t handle = cudnn_handle(stream);
    const ConvDescriptors d(g, dtype, p.math, p.x_layout);
    const Choice choice = choose(
        key_of(Pass::BackwardFilter, p, stream.device), p.algorithm_search,
        [&] {
            const Workspace search(kSearchWorkspace, stream);
            cudnnConvolutionBwdFilterAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
            int count = 0;
            CONVKIT_CHECK_CUDNN(cudnn().cudnnFindConvolutionBackwardFilterAlgorithmEx(
                handle, d.x.get(), x, d.y.get(), dy, d.conv, d.w.get(), dw, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                &count, results, search.get(), search.size()));
            return pick(results, count, "backward filter", p.deterministic);
        },
        [&] {
            cudnnConvolutionBwdFilterAlgoPerf_t results[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
            int count = 0;
            CONVKIT_CHECK_CUDNN(cudnn().cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                handle, d.x.get(), d.y.get(), d.conv, d.w.get(), CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count,
                results));
            return pick(results, count, "backward filter", p.deterministic);
        });
    const Workspace workspace(choice.workspace, stream);
    const Scale one(dtype, 1.0);
    const Scale zero(dtype, 0.0);
    CONVKIT_CHECK_CUDNN(
        cudnn().cudnnConvolutionBackwardFilter(handle, one.get(), d.x.get(), x, d.y.get(), dy, d.conv,
                                               static_cast<cudnnConvolutionBwdFilterAlgo_t>(choice.algorithm),
                                               workspace.get(), workspace.size(), zero.get(), d.w.get(), dw));
}

void backward_bias(const BiasGradShape& s, DType dtype, Layout layout, const void* dy, void* db, Stream stream) {
    // unsupported_reason has checked that every size fits in an int.
    const cudnnHandle_t handle = cudnn_handle(stream);
    // The bias gradient does not care how space is shaped: [N, C, spatial, 1].
    const TensorDescriptor gradient(
        dtype, {static_cast<int>(s.batch), static_cast<int>(s.channels), static_cast<int>(s.spatial), 1}, layout);
    const TensorDescriptor bias(dtype, {1, static_cast<int>(s.channels), 1, 1});
    const Scale one(dtype, 1.0);
    const Scale zero(dtype, 0.0);
    CONVKIT_CHECK_CUDNN(
        cudnn().cudnnConvolutionBackwardBias(handle, one.get(), gradient.get(), dy, zero.get(), bias.get(), db));
}

class CudnnConv final : public ConvVariant {
public:
    const char* name() const override { return "cudnn"; }
    DeviceType device_type() const override { return DeviceType::CUDA; }
    bool computes(DType dtype) const override { return dtype != DType::Int64; }
    // With cuDNN's own calls (the file's comment).
    bool fuses_epilogue() const override { return true; }
    std::string unsupported_reason(const ConvProblem& p, ConvPass pass) const override {
        return cudnn_unsupported_reason(p, pass);
    }
    // Channels-last: the weight (or its gradient) in KRSC.
    std::size_t workspace(const ConvProblem& p, ConvPass pass) const override {
        return p.x_layout == Layout::ChannelsLast && pass != ConvPass::BackwardBias
                   ? conv_weight_bytes(p.geometry, p.dtype())
                   : 0;
    }
    void run(const ConvProblem& p, ConvPass pass, const ConvOperands& o, WorkspaceView workspace,
             Stream stream) const override {
        const bool krsc = p.x_layout == Layout::ChannelsLast;
        const void* w = o.w;
        if (krsc && o.w != nullptr) {
            permute_conv_weight(p.geometry, p.dtype(), o.w, workspace.data, true, stream);
            w = workspace.data;
        }
        switch (pass) {
            case ConvPass::Forward:
                forward(p, o.x, w, {o.bias, o.residual, o.relu}, o.out, stream);
                break;
            case ConvPass::BackwardData:
                backward_data(p, o.dy, w, {o.bias, o.residual, o.relu}, o.out, stream);
                break;
            case ConvPass::BackwardFilter:
                backward_filter(p, o.dy, o.x, krsc ? workspace.data : o.out, stream);
                if (krsc) permute_conv_weight(p.geometry, p.dtype(), workspace.data, o.out, false, stream);
                break;
            case ConvPass::BackwardBias:
                backward_bias(p.bias_grad, p.dtype(), p.x_layout, o.dy, o.out, stream);
                break;
        }
    }
};
}  // namespace

std::string cudnn_last_epilogue_route() {
    return thread_epilogue_route;
}

CONVKIT_REGISTER_CONV_VARIANT(CudnnConv);

}  // namespace convkit::detail
