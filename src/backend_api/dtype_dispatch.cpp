#include "backend_api/dtype_dispatch.h"

#include <string>

#include "convkit/error.h"

namespace convkit::detail {

void throw_host_out_of_memory() {
    throw OutOfMemory("host: out of memory for the scratch space of a host op (std::bad_alloc)");
}

void throw_dtype_not_supported(const char* op, DType dtype) {
    throw NotSupported(std::string(op) + ": runs float32 and float64 only, not " + dtype_name(dtype));
}

}  // namespace convkit::detail
