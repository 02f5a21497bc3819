#pragma once
#include <cstddef>
#include <memory>

namespace convkit::detail {

// 64-byte aligned host memory (a cache line, and enough for any SIMD load). Throws OutOfMemory.
std::shared_ptr<void> allocate_host(std::size_t bytes);

}  // namespace convkit::detail
