#pragma once
// Host implementation of dropout; the same entry point as kernels/dropout.h.
#include <cstdint>

#include "convkit/dtype.h"

namespace convkit::detail {

void dropout_host(DType dtype, const void* x, void* y, std::int64_t count, double p, std::uint64_t seed);

}  // namespace convkit::detail
