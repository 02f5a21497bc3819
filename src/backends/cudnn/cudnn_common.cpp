#include "backends/cudnn/cudnn_common.h"

#include <map>
#include <mutex>

#include "backend_api/dtype_dispatch.h"
#include "core/check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"

namespace convkit::detail {

void throw_cudnn_error(cudnnStatus_t status, const char* expression, const char* file, int line) {
    const std::string message =
        concat(expression, " failed: ", cudnn().cudnnGetErrorString(status), " at ", file, ":", line);
    if (status == CUDNN_STATUS_ALLOC_FAILED) throw OutOfMemory(message);
    // cuDNN 9's refusals come with a reason inside the category (NOT_SUPPORTED_DATA_TYPE, ...).
    if (CUDNN_STATUS_CATEGORY(status) == CUDNN_STATUS_NOT_SUPPORTED) throw NotSupported(message);
    throw CudaError(message);
}

cudnnHandle_t cudnn_handle(Stream stream) {
    // Handles are costly to create and bound to a stream; one per (device, stream), never freed
    // (cuDNN's own teardown at exit would race with static destruction).
    static std::mutex mutex;
    static auto* handles = new std::map<std::pair<int, void*>, cudnnHandle_t>();
    std::lock_guard lock(mutex);
    auto& handle = (*handles)[{stream.device, stream.handle}];
    if (handle == nullptr) {
        CudaDeviceGuard guard(stream.device);
        CONVKIT_CHECK_CUDNN(cudnn().cudnnCreate(&handle));
        CONVKIT_CHECK_CUDNN(cudnn().cudnnSetStream(handle, to_cuda(stream)));
    }
    return handle;
}

cudnnDataType_t cudnn_type(DType dtype) {
    switch (dtype) {
        case DType::Float32: return CUDNN_DATA_FLOAT;
        case DType::Float64: return CUDNN_DATA_DOUBLE;
        case DType::BFloat16: return CUDNN_DATA_BFLOAT16;
        case DType::Float16: return CUDNN_DATA_HALF;
        case DType::Int64: break;
    }
    detail::throw_dtype_not_supported("cudnn", dtype);
}

std::vector<int> cudnn_spatial(const SpatialDims& dims, int spatial_rank) {
    std::vector<int> values;
    for (int s = spatial_rank == 3 ? 0 : 1; s < 3; ++s)
        values.push_back(static_cast<int>(dims[static_cast<std::size_t>(s)]));
    return values;
}

std::vector<int> cudnn_dims(std::int64_t n, std::int64_t c, const SpatialDims& spatial, int spatial_rank) {
    std::vector<int> dims{static_cast<int>(n), static_cast<int>(c)};
    const std::vector<int> rest = cudnn_spatial(spatial, spatial_rank);
    dims.insert(dims.end(), rest.begin(), rest.end());
    return dims;
}

namespace {
// Strides of a packed [N, C, spatial...] tensor: contiguous (W fastest) or channels-last (C
// fastest, then the spatial dims, then N).
std::vector<int> packed_strides(const std::vector<int>& dims, Layout layout) {
    std::vector<int> strides(dims.size(), 1);
    if (layout == Layout::Contiguous) {
        for (std::size_t i = dims.size() - 1; i > 0; --i) strides[i - 1] = strides[i] * dims[i];
        return strides;
    }
    int step = dims[1];
    for (std::size_t i = dims.size() - 1; i >= 2; --i) {
        strides[i] = step;
        step *= dims[i];
    }
    strides[1] = 1;
    strides[0] = step;
    return strides;
}
}  // namespace

TensorDescriptor::TensorDescriptor(DType dtype, const std::vector<int>& dims, Layout layout) {
    CONVKIT_CHECK_CUDNN(cudnn().cudnnCreateTensorDescriptor(&descriptor_));
    const std::vector<int> strides = packed_strides(dims, layout);
    const cudnnStatus_t status = cudnn().cudnnSetTensorNdDescriptor(
        descriptor_, cudnn_type(dtype), static_cast<int>(dims.size()), dims.data(), strides.data());
    if (status != CUDNN_STATUS_SUCCESS) {
        cudnn().cudnnDestroyTensorDescriptor(descriptor_);  // the destructor does not run for a throwing constructor
        CONVKIT_CHECK_CUDNN(status);
    }
}

TensorDescriptor::~TensorDescriptor() {
    cudnn().cudnnDestroyTensorDescriptor(descriptor_);
}

FilterDescriptor::FilterDescriptor(DType dtype, const std::vector<int>& dims, Layout layout) {
    CONVKIT_CHECK_CUDNN(cudnn().cudnnCreateFilterDescriptor(&descriptor_));
    const cudnnTensorFormat_t format = layout == Layout::Contiguous ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC;
    const cudnnStatus_t status = cudnn().cudnnSetFilterNdDescriptor(descriptor_, cudnn_type(dtype), format,
                                                                    static_cast<int>(dims.size()), dims.data());
    if (status != CUDNN_STATUS_SUCCESS) {
        cudnn().cudnnDestroyFilterDescriptor(descriptor_);
        CONVKIT_CHECK_CUDNN(status);
    }
}

FilterDescriptor::~FilterDescriptor() {
    cudnn().cudnnDestroyFilterDescriptor(descriptor_);
}

Workspace::Workspace(std::size_t bytes, Stream stream)
    : block_(bytes > 0 ? allocate_cuda(bytes, stream) : nullptr), bytes_(bytes) {}

}  // namespace convkit::detail
