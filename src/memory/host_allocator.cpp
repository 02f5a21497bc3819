#include "memory/host_allocator.h"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "convkit/error.h"
#include "core/check.h"

namespace convkit::detail {

namespace {
constexpr std::size_t kAlignment = 64;

// Freed blocks of at least kCachedMinimum bytes wait here for the next request of the same
// (rounded) size, up to kCacheLimit bytes in all. Why: a training step allocates the same large
// activation and gradient tensors every step, and glibc serves blocks that large with fresh
// pages (mmap, or a heap top it trimmed), so every step paid a page fault per 4 KiB written:
// about 15% of a host training step of the Fashion-MNIST model (docs/host-backend.md). Smaller
// blocks stay with malloc, whose free lists already reuse them. Off under AddressSanitizer
// (reused blocks would hide use-after-free) and with CONVKIT_HOST_CACHE=0.
constexpr std::size_t kCachedMinimum = std::size_t{256} << 10;
constexpr std::size_t kCacheLimit = std::size_t{512} << 20;
constexpr std::size_t kPage = 4096;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

class HostBlockCache {
public:
    HostBlockCache() {
        const char* setting = std::getenv("CONVKIT_HOST_CACHE");
        enabled_ = !kSanitized && !(setting != nullptr && std::string(setting) == "0");
    }

    bool caches(std::size_t rounded) const { return enabled_ && rounded >= kCachedMinimum; }

    void* take(std::size_t rounded) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = free_.find(rounded);
        if (it == free_.end() || it->second.empty()) return nullptr;
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= rounded;
        return p;
    }

    // Keeps the block for reuse, or frees it when the cache is full.
    void give(void* p, std::size_t rounded) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (cached_bytes_ + rounded <= kCacheLimit) {
                free_[rounded].push_back(p);
                cached_bytes_ += rounded;
                return;
            }
        }
        std::free(p);
    }

    // Frees every cached block: the last resort before a failed allocation is OutOfMemory.
    void release_all() {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& entry : free_)
            for (void* p : entry.second) std::free(p);
        free_.clear();
        cached_bytes_ = 0;
    }

private:
    bool enabled_ = false;
    std::mutex mutex_;
    std::map<std::size_t, std::vector<void*>> free_;
    std::size_t cached_bytes_ = 0;
};

// Never destroyed: tensors freed during static destruction still find it.
HostBlockCache& block_cache() {
    static auto* cache = new HostBlockCache();
    return *cache;
}
}  // namespace

std::shared_ptr<void> allocate_host(std::size_t bytes) {
    if (bytes > SIZE_MAX - kPage) throw OutOfMemory(concat("host allocation of ", bytes, " bytes is impossible"));
    // aligned_alloc wants a multiple of the alignment; a zero-element tensor still gets a block.
    std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment + (bytes == 0 ? kAlignment : 0);
    HostBlockCache& cache = block_cache();
    if (cache.caches(rounded)) {
        rounded = (rounded + kPage - 1) / kPage * kPage;  // sizes that differ by less than a page share blocks
        void* p = cache.take(rounded);
        if (p == nullptr) p = std::aligned_alloc(kAlignment, rounded);
        if (p == nullptr) {
            cache.release_all();
            p = std::aligned_alloc(kAlignment, rounded);
        }
        if (p == nullptr) throw OutOfMemory(concat("host allocation of ", bytes, " bytes failed"));
        return std::shared_ptr<void>(p, [rounded](void* q) { block_cache().give(q, rounded); });
    }
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (p == nullptr) throw OutOfMemory(concat("host allocation of ", bytes, " bytes failed"));
    return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

}  // namespace convkit::detail
