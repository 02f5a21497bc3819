#pragma once
// Shared pieces of the cuDNN backend: status checking, one handle per (device, stream), and
// owning wrappers of descriptors built from a geometry. This directory is the only place that
// includes cudnn.h (through cudnn_api.h, which loads the library on first use).
#include "backends/cudnn/cudnn_api.h"

#include <array>
#include <memory>
#include <vector>

#include "convkit/backend.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "backend_api/geometry.h"
#include "backend_api/problem.h"

namespace convkit::detail {

// cuDNN 9 groups its statuses in categories of 1000 (NOT_SUPPORTED_DATA_TYPE within NOT_SUPPORTED);
// cuDNN 8's are all top-level.
#ifndef CUDNN_STATUS_CATEGORY
#define CUDNN_STATUS_CATEGORY(status) (status)
#endif

[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* expression, const char* file, int line);

#define CONVKIT_CHECK_CUDNN(expression)                                                            \
    do {                                                                                           \
        const cudnnStatus_t convkit_cudnn_status_ = (expression);                                  \
        if (convkit_cudnn_status_ != CUDNN_STATUS_SUCCESS) {                                       \
            ::convkit::detail::throw_cudnn_error(convkit_cudnn_status_, #expression, __FILE__, __LINE__); \
        }                                                                                          \
    } while (0)

// The handle bound to `stream` (created on first use, kept for the process).
cudnnHandle_t cudnn_handle(Stream stream);

cudnnDataType_t cudnn_type(DType dtype);

// The scaling factors alpha = 1, beta = 0 (or 1 to accumulate) in the type cuDNN expects for
// `dtype`: double for float64 data, float otherwise (bfloat16 and float16 included).
struct Scale {
    explicit Scale(DType dtype, double value) : as_double(value), as_float(static_cast<float>(value)), dtype_(dtype) {}
    const void* get() const { return dtype_ == DType::Float64 ? static_cast<const void*>(&as_double) : &as_float; }
    double as_double;
    float as_float;

private:
    DType dtype_;
};

// Dims of an NC(D)HW tensor for cuDNN from widened spatial dims: 4-D for spatial ranks 1 and 2
// (1-D runs as H = 1), 5-D for 3.
std::vector<int> cudnn_dims(std::int64_t n, std::int64_t c, const SpatialDims& spatial, int spatial_rank);

// The op's spatial entries of widened dims, as cuDNN's int arrays: H, W for ranks 1 and 2
// (1-D runs as H = 1), D, H, W for 3.
std::vector<int> cudnn_spatial(const SpatialDims& dims, int spatial_rank);

// A packed tensor of logical dims [N, C, spatial...], in memory contiguous or channels-last.
class TensorDescriptor {
public:
    TensorDescriptor(DType dtype, const std::vector<int>& dims, Layout layout = Layout::Contiguous);
    ~TensorDescriptor();
    TensorDescriptor(const TensorDescriptor&) = delete;
    TensorDescriptor& operator=(const TensorDescriptor&) = delete;
    cudnnTensorDescriptor_t get() const { return descriptor_; }

private:
    cudnnTensorDescriptor_t descriptor_ = nullptr;
};

// A filter of logical dims [K, C/groups, kernel...], in memory KCRS (contiguous) or KRSC
// (channels-last: cuDNN's NHWC filter format).
class FilterDescriptor {
public:
    FilterDescriptor(DType dtype, const std::vector<int>& dims, Layout layout = Layout::Contiguous);
    ~FilterDescriptor();
    FilterDescriptor(const FilterDescriptor&) = delete;
    FilterDescriptor& operator=(const FilterDescriptor&) = delete;
    cudnnFilterDescriptor_t get() const { return descriptor_; }

private:
    cudnnFilterDescriptor_t descriptor_ = nullptr;
};

// Scratch device memory for cuDNN from the caching allocator, released to the stream-ordered
// cache when it goes out of scope.
class Workspace {
public:
    Workspace(std::size_t bytes, Stream stream);
    void* get() const { return block_.get(); }
    std::size_t size() const { return bytes_; }

private:
    std::shared_ptr<void> block_;
    std::size_t bytes_;
};

}  // namespace convkit::detail
