#pragma once
// Dispatch on a tensor's dtype for the host backends: the one place that maps DType to the C++
// element type, shared by the op layer and every host backend.
#include <new>
#include <utility>

#include "convkit/dtype.h"

namespace convkit::detail {

[[noreturn]] void throw_host_out_of_memory();
// NotSupported: "<op>: runs float32 and float64 only, not <dtype>".
[[noreturn]] void throw_dtype_not_supported(const char* op, DType dtype);

// Calls f with a value of the C++ type matching `dtype` (float or double); any other dtype is
// NotSupported naming `op` (never run as another type). Host backends allocate scratch space
// (accumulators); running out of it is an OutOfMemory like any other.
template <typename F>
decltype(auto) dispatch_dtype(const char* op, DType dtype, F&& f) {
    try {
        switch (dtype) {
            case DType::Float32: return std::forward<F>(f)(float{});
            case DType::Float64: return std::forward<F>(f)(double{});
            case DType::Int64:
            case DType::BFloat16:
            case DType::Float16: break;
        }
    } catch (const std::bad_alloc&) {
        throw_host_out_of_memory();
    }
    throw_dtype_not_supported(op, dtype);
}
template <typename F>
decltype(auto) dispatch_dtype(DType dtype, F&& f) {
    return dispatch_dtype("a host op", dtype, std::forward<F>(f));
}

}  // namespace convkit::detail
