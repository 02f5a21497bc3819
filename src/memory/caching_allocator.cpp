#include "memory/caching_allocator.h"

#include "core/check.h"

namespace convkit::detail {

CachingAllocator::~CachingAllocator() {
    for (const auto& [pointer, block] : cached_) backend_.free(pointer, block.device);
}

bool CachingAllocator::fits(std::size_t block_size, std::size_t request) {
    return block_size >= request && block_size - request <= block_size / 4;
}

void* CachingAllocator::take_cached(std::size_t rounded, int device, void* stream) {
    auto pool = pools_.find({device, stream});
    if (pool == pools_.end()) return nullptr;
    auto it = pool->second.lower_bound(rounded);  // the smallest block that is large enough
    if (it == pool->second.end() || !fits(it->first, rounded)) return nullptr;
    void* pointer = it->second;
    pool->second.erase(it);
    live_[pointer] = cached_.at(pointer);
    cached_.erase(pointer);
    return pointer;
}

void CachingAllocator::cache(void* pointer, const Block& block) {
    Block cached = block;
    cached.other_streams.clear();
    pools_[{block.device, block.stream}].emplace(block.size, pointer);
    cached_[pointer] = cached;
}

void CachingAllocator::collect_finished_pending() {
    for (auto it = pending_.begin(); it != pending_.end();) {
        bool done = true;
        for (void* event : it->events) done = done && backend_.event_done(event, it->block.device);
        if (!done) {
            ++it;
            continue;
        }
        for (void* event : it->events) backend_.destroy_event(event, it->block.device);
        cache(it->pointer, it->block);
        it = pending_.erase(it);
    }
}

void CachingAllocator::wait_for_pending(int device) {
    for (const PendingBlock& pending : pending_) {
        if (pending.block.device != device) continue;
        for (void* event : pending.events) backend_.wait_event(event, device);
    }
    collect_finished_pending();
}

void CachingAllocator::release_cached(int device) {
    auto& stats = stats_[device];
    // A live graph's pool stays: its replays write to those blocks.
    for (auto it = cached_.begin(); it != cached_.end();) {
        if (it->second.device != device || live_graph_pools_.count({device, it->second.stream}) != 0) {
            ++it;
            continue;
        }
        backend_.free(it->first, device);
        stats.reserved_bytes -= it->second.size;
        it = cached_.erase(it);
    }
    for (auto it = pools_.begin(); it != pools_.end();) {
        const bool release = it->first.first == device && live_graph_pools_.count(it->first) == 0;
        it = release ? pools_.erase(it) : std::next(it);
    }
}

void* CachingAllocator::allocate(std::size_t bytes, int device, void* stream, bool unshared) {
    const std::size_t rounded = (bytes + kGranularity - 1) / kGranularity * kGranularity + (bytes == 0 ? kGranularity : 0);
    std::lock_guard lock(mutex_);
    auto& stats = stats_[device];
    const bool capturing = !graph_captures_.empty();
    // Events recorded before a capture cannot be queried during it; they are collected after.
    if (!capturing) collect_finished_pending();
    if (const auto graph = graph_captures_.find({device, stream}); graph != graph_captures_.end()) {
        stream = graph->second;
    }
    void* pointer = unshared ? nullptr : take_cached(rounded, device, stream);
    if (pointer != nullptr) {
        ++stats.cache_hits;
    } else {
        pointer = backend_.malloc(rounded, device);
        if (pointer == nullptr && capturing) {
            throw OutOfMemory(concat("cuda:", device, ": out of memory allocating ", bytes,
                                     " bytes during CUDA graph capture (cached blocks cannot be returned to the driver "
                                     "while a capture is under way; ",
                                     stats.reserved_bytes, " bytes reserved by convkit)"));
        }
        if (pointer == nullptr) {
            // Blocks cached for other sizes or streams are memory the driver can give again, and
            // so are blocks waiting for other streams' work, once that work is done.
            wait_for_pending(device);
            release_cached(device);
            pointer = backend_.malloc(rounded, device);
        }
        if (pointer == nullptr) {
            throw OutOfMemory(concat("cuda:", device, ": out of memory allocating ", bytes, " bytes (",
                                     stats.allocated_bytes, " bytes in use by tensors, ", stats.reserved_bytes,
                                     " reserved by convkit)"));
        }
        ++stats.device_mallocs;
        stats.reserved_bytes += rounded;
        live_[pointer] = Block{rounded, device, stream, {}};
    }
    stats.allocated_bytes += rounded;
    if (stats.allocated_bytes > stats.peak_allocated_bytes) stats.peak_allocated_bytes = stats.allocated_bytes;
    return pointer;
}

void CachingAllocator::deallocate(void* pointer) {
    if (pointer == nullptr) return;
    std::lock_guard lock(mutex_);
    auto it = live_.find(pointer);
    CONVKIT_REQUIRE(it != live_.end(), "CachingAllocator::deallocate", "pointer ", pointer,
                    " was not allocated by this allocator or was freed twice");
    // Events first: if recording one fails, the block stays live (counted, never reused) and the
    // state is as before the call.
    std::vector<void*> events;
    try {
        for (void* other : it->second.other_streams) events.push_back(backend_.record_event(other, it->second.device));
    } catch (...) {
        for (void* event : events) backend_.destroy_event(event, it->second.device);
        throw;
    }
    Block block = std::move(it->second);
    live_.erase(it);
    stats_[block.device].allocated_bytes -= block.size;
    if (released_graph_pools_.count({block.device, block.stream}) != 0) {
        for (void* event : events) backend_.destroy_event(event, block.device);
        backend_.free(pointer, block.device);
        stats_[block.device].reserved_bytes -= block.size;
        return;
    }
    // A block freed during a capture may be used by the captured work: it joins the graph's pool.
    for (const auto& [key, pool] : graph_captures_) {
        if (key.first == block.device) block.stream = pool;
    }
    if (events.empty()) {
        cache(pointer, block);
    } else {
        pending_.push_back(PendingBlock{pointer, std::move(block), std::move(events)});
    }
}

void CachingAllocator::record_stream(void* pointer, void* stream) {
    std::lock_guard lock(mutex_);
    auto it = live_.find(pointer);
    CONVKIT_REQUIRE(it != live_.end(), "record_stream", "pointer ", pointer, " is not a live CUDA allocation");
    Block& block = it->second;
    if (stream == block.stream) return;
    for (void* known : block.other_streams)
        if (known == stream) return;
    block.other_streams.push_back(stream);
}

void CachingAllocator::empty_cache() {
    std::lock_guard lock(mutex_);
    collect_finished_pending();
    std::vector<int> devices;
    for (const auto& [device, stats] : stats_) devices.push_back(device);
    for (int device : devices) release_cached(device);
}

void CachingAllocator::release_stream(int device, void* stream) {
    std::lock_guard lock(mutex_);
    // The stream's work has finished: live blocks need not wait for it any more, and must not try
    // to record an event on it once it is destroyed.
    for (auto& [pointer, block] : live_) {
        if (block.device != device) continue;
        std::erase(block.other_streams, stream);
    }
    free_pool({device, stream});
}

void CachingAllocator::free_pool(const PoolKey& key) {
    auto pool = pools_.find(key);
    if (pool == pools_.end()) return;
    for (const auto& [size, pointer] : pool->second) {
        backend_.free(pointer, key.first);
        stats_[key.first].reserved_bytes -= size;
        cached_.erase(pointer);
    }
    pools_.erase(pool);
}

void CachingAllocator::begin_graph_pool(int device, void* stream, void* pool) {
    std::lock_guard lock(mutex_);
    CONVKIT_REQUIRE(graph_captures_.count({device, stream}) == 0, "CachingAllocator::begin_graph_pool",
                    "stream ", stream, " of cuda:", device, " is capturing already");
    graph_captures_[{device, stream}] = pool;
    live_graph_pools_.insert({device, pool});
    released_graph_pools_.erase({device, pool});
}

void CachingAllocator::end_graph_capture(int device, void* stream) {
    std::lock_guard lock(mutex_);
    graph_captures_.erase({device, stream});
}

void CachingAllocator::release_graph_pool(int device, void* pool) {
    std::lock_guard lock(mutex_);
    released_graph_pools_.insert({device, pool});
    live_graph_pools_.erase({device, pool});
    free_pool({device, pool});
}

std::vector<std::pair<void*, std::size_t>> CachingAllocator::graph_pool_blocks(int device, void* pool) const {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<void*, std::size_t>> blocks;
    for (const auto* blocks_by_pointer : {&cached_, &live_}) {
        for (const auto& [pointer, block] : *blocks_by_pointer) {
            if (block.device == device && block.stream == pool) blocks.emplace_back(pointer, block.size);
        }
    }
    return blocks;
}

bool CachingAllocator::capturing(int device) const {
    std::lock_guard lock(mutex_);
    for (const auto& [key, pool] : graph_captures_) {
        if (key.first == device) return true;
    }
    return false;
}

MemoryStats CachingAllocator::stats(int device) const {
    std::lock_guard lock(mutex_);
    auto it = stats_.find(device);
    return it == stats_.end() ? MemoryStats{} : it->second;
}

}  // namespace convkit::detail
