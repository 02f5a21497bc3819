#pragma once
// The policy of the CUDA caching allocator, kept apart from the CUDA calls so that it can be
// tested on a machine without a GPU (tests substitute a fake DeviceMemoryBackend).
//
// Blocks are cached per (device, stream): a block freed by work on stream S is handed out again
// only for allocations on S, where stream order makes the reuse safe without synchronisation.
// A block that was also used on other streams (record_stream) waits for an event on each of
// them before it returns to its pool.
//
// A CUDA graph's memory is a private pool (begin_graph_pool): while a stream captures, its
// allocations come from the pool, and every block freed on the device goes to it, since the
// graph's recorded work may still use the block when it replays. The pool's blocks are handed
// out only to allocations of a capture into that pool, never to other tensors, and return to the
// driver when the graph releases the pool (release_graph_pool) and no tensor holds them.
#include <cstddef>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "convkit/memory.h"

namespace convkit::detail {

class DeviceMemoryBackend {
public:
    virtual ~DeviceMemoryBackend() = default;
    // Returns nullptr when the device is out of memory; throws on any other failure.
    virtual void* malloc(std::size_t bytes, int device) = 0;
    virtual void free(void* pointer, int device) = 0;
    // An event recorded now on `stream`, and a query whether the work before it has finished.
    virtual void* record_event(void* stream, int device) = 0;
    virtual bool event_done(void* event, int device) = 0;
    virtual void wait_event(void* event, int device) = 0;
    virtual void destroy_event(void* event, int device) = 0;
};

class CachingAllocator {
public:
    explicit CachingAllocator(DeviceMemoryBackend& backend) : backend_(backend) {}
    ~CachingAllocator();
    CachingAllocator(const CachingAllocator&) = delete;
    CachingAllocator& operator=(const CachingAllocator&) = delete;

    // Throws OutOfMemory if the backend fails even after every cached block was released and
    // every block waiting on another stream's work was waited for.
    // `unshared`: never a cached block (memory/cuda_memory.h, allocate_cuda_unshared).
    void* allocate(std::size_t bytes, int device, void* stream, bool unshared = false);
    // Returns a block to its pool. If the backend fails (recording an event for another stream),
    // throws and leaves the block live: it is never handed out again, which is safe.
    void deallocate(void* pointer);
    void record_stream(void* pointer, void* stream);
    void empty_cache();
    // Frees the cached blocks of a stream that is about to be destroyed (its work has finished)
    // and forgets it in the record_stream marks of live blocks. Live blocks allocated on it keep
    // it as their pool key and are released by empty_cache.
    void release_stream(int device, void* stream);
    MemoryStats stats(int device) const;

    // From now until end_graph_capture, allocations on (device, stream) come from the private
    // pool `pool` (a key no stream has, such as the address of the graph that owns it), and blocks
    // of the device freed meanwhile join it. The pool must not be capturing already.
    void begin_graph_pool(int device, void* stream, void* pool);
    void end_graph_capture(int device, void* stream);
    // Returns the pool's cached blocks to the driver; its blocks still held by tensors follow
    // when they are freed. The graph's work must have finished.
    void release_graph_pool(int device, void* pool);
    // The blocks of a pool, cached or live, as (start, bytes): for tests that check that the pool
    // is private.
    std::vector<std::pair<void*, std::size_t>> graph_pool_blocks(int device, void* pool) const;
    // Whether a capture into a graph pool is under way on the device (the allocator then must
    // not query events or free memory, which a capture forbids).
    bool capturing(int device) const;

    // Requests are rounded up to this granularity, which keeps size classes few.
    static constexpr std::size_t kGranularity = 512;
    // A cached block is reused for a request only if it wastes at most a quarter of the block.
    static bool fits(std::size_t block_size, std::size_t request);

private:
    struct Block {
        std::size_t size = 0;
        int device = 0;
        void* stream = nullptr;
        std::vector<void*> other_streams;
    };
    struct PendingBlock {
        void* pointer;
        Block block;
        std::vector<void*> events;
    };
    using PoolKey = std::pair<int, void*>;  // (device, stream)

    void* take_cached(std::size_t rounded, int device, void* stream);
    void collect_finished_pending();
    void wait_for_pending(int device);  // blocks until the device's pending blocks are free
    void release_cached(int device);  // every cached block of the device back to the backend
    void cache(void* pointer, const Block& block);
    void free_pool(const PoolKey& key);  // the pool's cached blocks back to the backend

    DeviceMemoryBackend& backend_;
    mutable std::mutex mutex_;
    std::map<PoolKey, std::multimap<std::size_t, void*>> pools_;
    std::unordered_map<void*, Block> cached_;
    std::unordered_map<void*, Block> live_;
    std::vector<PendingBlock> pending_;
    std::map<int, MemoryStats> stats_;
    std::map<PoolKey, void*> graph_captures_;  // (device, capturing stream) -> its graph pool
    std::set<PoolKey> live_graph_pools_;       // (device, pool) of graphs alive: never emptied
    std::set<PoolKey> released_graph_pools_;   // (device, pool): freed blocks go to the driver
};

}  // namespace convkit::detail
