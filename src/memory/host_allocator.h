#pragma once
#include <cstddef>
#include <memory>

namespace convkit::detail {

// 64-byte aligned host memory (a cache line, and enough for any SIMD load). Throws OutOfMemory.
// Blocks of 256 KiB and more are kept for reuse when freed, up to 512 MiB (host_allocator.cpp).
std::shared_ptr<void> allocate_host(std::size_t bytes);

}  // namespace convkit::detail
