#pragma once
// What every op entry point does before its arithmetic: check that the tensors are defined and
// agree on device and dtype, pick the backend, and dispatch on dtype.
#include <initializer_list>
#include <new>
#include <string>
#include <utility>

#include "convkit/tensor.h"

namespace convkit::detail {

struct NamedTensor {
    const char* name;
    const Tensor& tensor;
};

// All tensors defined, on one device, of one dtype; throws InvalidArgument naming the culprit.
void check_same_device_and_dtype(const std::string& op, std::initializer_list<NamedTensor> tensors);

// A bias must be undefined (no bias) or a vector [channels] like `like`.
void check_bias(const std::string& op, const Tensor& bias, std::int64_t channels, const Tensor& like);

// A backward pass's grad_output must have the shape of the forward op's output.
void check_grad_output(const std::string& op, const Tensor& grad_output, const Shape& expected);

// The stream an op on `tensor` enqueues its kernels on.
Stream stream_of(const Tensor& tensor);

[[noreturn]] void throw_host_out_of_memory();

// Calls f with a value of the C++ type matching `dtype` (float or double). Host backends
// allocate scratch space (accumulators); running out of it is an OutOfMemory like any other.
template <typename F>
decltype(auto) dispatch_dtype(DType dtype, F&& f) {
    try {
        if (dtype == DType::Float32) return std::forward<F>(f)(float{});
        return std::forward<F>(f)(double{});
    } catch (const std::bad_alloc&) {
        throw_host_out_of_memory();
    }
}

}  // namespace convkit::detail
