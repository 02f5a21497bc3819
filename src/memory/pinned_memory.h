#pragma once
#include <cstddef>
#include <memory>

namespace convkit::detail {

// Page-locked host memory from the CUDA driver (cudaHostAlloc), or ordinary aligned host memory
// when no GPU is usable, so code that stages copies through it runs everywhere. Throws
// OutOfMemory when the driver cannot pin that much.
std::shared_ptr<void> allocate_pinned_host(std::size_t bytes);

// Whether `pointer` lies in memory pinned through the CUDA driver; false without a GPU.
bool is_pinned_host(const void* pointer);

}  // namespace convkit::detail
