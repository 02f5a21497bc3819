#include "backend_api/dtype_dispatch.h"

#include "convkit/error.h"

namespace convkit::detail {

void throw_host_out_of_memory() {
    throw OutOfMemory("host: out of memory for the scratch space of a host op (std::bad_alloc)");
}

}  // namespace convkit::detail
