#include "memory/host_allocator.h"

#include <cstdint>
#include <cstdlib>

#include "convkit/error.h"
#include "core/check.h"

namespace convkit::detail {

std::shared_ptr<void> allocate_host(std::size_t bytes) {
    constexpr std::size_t kAlignment = 64;
    if (bytes > SIZE_MAX - kAlignment) throw OutOfMemory(concat("host allocation of ", bytes, " bytes is impossible"));
    // aligned_alloc wants a multiple of the alignment; a zero-element tensor still gets a block.
    const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment + (bytes == 0 ? kAlignment : 0);
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) throw OutOfMemory(concat("host allocation of ", bytes, " bytes failed"));
    return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

}  // namespace convkit::detail
