#pragma once
// Dispatch on a tensor's dtype for the host backends: the one place that maps DType to the C++
// element type, shared by the op layer and every host backend.
#include <new>
#include <utility>

#include "convkit/dtype.h"

namespace convkit::detail {

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
