// The caching allocator's policy, exercised with a fake device so it runs without a GPU: blocks
// are reused per stream, cross-stream frees wait for their events, and running out of memory
// releases the cache, retries, then throws OutOfMemory with the allocator still usable.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "convkit/error.h"
#include "memory/caching_allocator.h"

namespace convkit::detail {
namespace {

class FakeDevice final : public DeviceMemoryBackend {
public:
    std::size_t capacity = 1 << 20;
    std::size_t in_use = 0;
    int mallocs = 0;
    int frees = 0;
    std::map<void*, std::size_t> blocks;
    std::set<void*> finished_events;
    int next_event = 1;

    FakeDevice() = default;
    FakeDevice(const FakeDevice&) = delete;
    FakeDevice& operator=(const FakeDevice&) = delete;
    // Like a CUDA context's teardown, frees whatever the allocator still holds (a block whose
    // release failed is deliberately never returned).
    ~FakeDevice() override {
        for (const auto& [pointer, bytes] : blocks) delete[] static_cast<char*>(pointer);
    }

    void* malloc(std::size_t bytes, int) override {
        if (in_use + bytes > capacity) return nullptr;
        void* p = new char[bytes];
        blocks[p] = bytes;
        in_use += bytes;
        ++mallocs;
        return p;
    }
    void free(void* p, int) override {
        in_use -= blocks.at(p);
        blocks.erase(p);
        delete[] static_cast<char*>(p);
        ++frees;
    }
    bool fail_events = false;
    void* record_event(void*, int) override {
        if (fail_events) throw CudaError("cudaEventRecord failed (fake)");
        return reinterpret_cast<void*>(static_cast<std::intptr_t>(next_event++));
    }
    bool event_done(void* event, int) override { return finished_events.count(event) > 0; }
    int waits = 0;
    void wait_event(void* event, int) override {
        ++waits;
        finished_events.insert(event);
    }
    void destroy_event(void*, int) override {}
};

void* const kStreamA = reinterpret_cast<void*>(0xA);
void* const kStreamB = reinterpret_cast<void*>(0xB);

TEST(CachingAllocator, ReusesAFreedBlockOnTheSameStream) {
    FakeDevice device;
    CachingAllocator cache(device);
    void* p = cache.allocate(1000, 0, kStreamA);
    cache.deallocate(p);
    void* q = cache.allocate(1000, 0, kStreamA);
    EXPECT_EQ(p, q);
    EXPECT_EQ(device.mallocs, 1);
    const MemoryStats stats = cache.stats(0);
    EXPECT_EQ(stats.device_mallocs, 1u);
    EXPECT_EQ(stats.cache_hits, 1u);
    EXPECT_EQ(stats.allocated_bytes, 1024u);  // rounded to the 512-byte granularity
    cache.deallocate(q);
}

TEST(CachingAllocator, DoesNotHandABlockToAnotherStream) {
    FakeDevice device;
    CachingAllocator cache(device);
    void* p = cache.allocate(4096, 0, kStreamA);
    cache.deallocate(p);
    void* q = cache.allocate(4096, 0, kStreamB);
    EXPECT_NE(p, q);
    EXPECT_EQ(device.mallocs, 2);
    cache.deallocate(q);
}

TEST(CachingAllocator, ReusesOnlyBlocksThatWasteLittle) {
    EXPECT_TRUE(CachingAllocator::fits(4096, 4096));
    EXPECT_TRUE(CachingAllocator::fits(4096, 3072));
    EXPECT_FALSE(CachingAllocator::fits(4096, 2560));  // would waste more than a quarter
    EXPECT_FALSE(CachingAllocator::fits(4096, 8192));
    FakeDevice device;
    CachingAllocator cache(device);
    void* big = cache.allocate(64 * 1024, 0, kStreamA);
    cache.deallocate(big);
    void* small = cache.allocate(512, 0, kStreamA);
    EXPECT_NE(big, small);
    cache.deallocate(small);
}

TEST(CachingAllocator, BlockUsedOnAnotherStreamWaitsForItsEvent) {
    FakeDevice device;
    CachingAllocator cache(device);
    void* p = cache.allocate(2048, 0, kStreamA);
    cache.record_stream(p, kStreamB);
    cache.deallocate(p);
    void* q = cache.allocate(2048, 0, kStreamA);
    EXPECT_NE(p, q) << "reused while stream B may still read it";
    cache.deallocate(q);
    device.finished_events.insert(reinterpret_cast<void*>(1));
    void* r = cache.allocate(2048, 0, kStreamA);
    void* s = cache.allocate(2048, 0, kStreamA);
    EXPECT_TRUE((r == p && s == q) || (r == q && s == p)) << "both blocks are free again";
    cache.deallocate(r);
    cache.deallocate(s);
}

TEST(CachingAllocator, OutOfMemoryReleasesTheCacheThenThrowsAndStaysUsable) {
    FakeDevice device;
    device.capacity = 8192;
    CachingAllocator cache(device);
    void* held = cache.allocate(4096, 0, kStreamA);
    void* cached = cache.allocate(2048, 0, kStreamB);
    cache.deallocate(cached);  // 2048 cached on stream B
    // 4096 more does not fit while the cached block is held: the cache must let it go.
    void* p = cache.allocate(4096, 0, kStreamA);
    EXPECT_EQ(device.frees, 1);
    EXPECT_EQ(cache.stats(0).reserved_bytes, 8192u);
    try {
        cache.allocate(4096, 0, kStreamA);
        FAIL() << "expected OutOfMemory";
    } catch (const OutOfMemory& e) {
        EXPECT_NE(std::string(e.what()).find("out of memory allocating 4096 bytes"), std::string::npos) << e.what();
    }
    cache.deallocate(p);
    void* again = cache.allocate(4096, 0, kStreamA);
    EXPECT_EQ(again, p);
    cache.deallocate(again);
    cache.deallocate(held);
}

TEST(CachingAllocator, OutOfMemoryWaitsForBlocksInUseOnOtherStreams) {
    FakeDevice device;
    device.capacity = 4096;
    CachingAllocator cache(device);
    void* p = cache.allocate(4096, 0, kStreamA);
    cache.record_stream(p, kStreamB);
    cache.deallocate(p);  // pending: stream B may still read it
    void* q = cache.allocate(2048, 0, kStreamB);
    EXPECT_EQ(device.waits, 1);
    EXPECT_EQ(device.frees, 1);
    EXPECT_EQ(cache.stats(0).reserved_bytes, 2048u);
    cache.deallocate(q);
}

TEST(CachingAllocator, EmptyCacheReturnsEverythingUnused) {
    FakeDevice device;
    CachingAllocator cache(device);
    void* a = cache.allocate(1024, 0, kStreamA);
    void* b = cache.allocate(1024, 1, kStreamA);
    void* live = cache.allocate(1024, 0, kStreamA);
    cache.deallocate(a);
    cache.deallocate(b);
    cache.empty_cache();
    EXPECT_EQ(device.frees, 2);
    EXPECT_EQ(cache.stats(0).reserved_bytes, 1024u);
    EXPECT_EQ(cache.stats(1).reserved_bytes, 0u);
    EXPECT_EQ(cache.stats(0).peak_allocated_bytes, 2048u);
    cache.deallocate(live);
}

TEST(CachingAllocator, ReleaseStreamFreesOnlyThatStreamsCache) {
    FakeDevice device;
    CachingAllocator cache(device);
    void* a = cache.allocate(1024, 0, kStreamA);
    void* b = cache.allocate(1024, 0, kStreamB);
    cache.deallocate(a);
    cache.deallocate(b);
    void* marked = cache.allocate(4096, 0, kStreamA);
    cache.record_stream(marked, kStreamB);
    cache.release_stream(0, kStreamB);
    EXPECT_EQ(device.frees, 1);
    EXPECT_EQ(device.blocks.count(b), 0u);
    EXPECT_EQ(cache.allocate(1024, 0, kStreamA), a);  // stream A's block is still cached
    cache.deallocate(a);
    // B is gone: freeing the block it was marked with records no event and caches it at once.
    device.fail_events = true;
    cache.deallocate(marked);
    EXPECT_EQ(cache.allocate(4096, 0, kStreamA), marked);
    cache.deallocate(marked);
}

TEST(CachingAllocator, AFailedReleaseLeavesTheBlockLiveAndNeverReused) {
    FakeDevice device;
    CachingAllocator cache(device);
    void* p = cache.allocate(2048, 0, kStreamA);
    cache.record_stream(p, kStreamB);
    device.fail_events = true;
    EXPECT_THROW(cache.deallocate(p), CudaError);
    device.fail_events = false;
    EXPECT_EQ(cache.stats(0).allocated_bytes, 2048u);
    void* q = cache.allocate(2048, 0, kStreamA);
    EXPECT_NE(q, p);
    cache.deallocate(q);
}

TEST(CachingAllocator, ForeignOrDoubleFreeIsAnError) {
    FakeDevice device;
    CachingAllocator cache(device);
    int local = 0;
    EXPECT_THROW(cache.deallocate(&local), InvalidArgument);
    void* p = cache.allocate(100, 0, kStreamA);
    cache.deallocate(p);
    EXPECT_THROW(cache.deallocate(p), InvalidArgument);
}

}  // namespace
}  // namespace convkit::detail
