#pragma once
// cp.async as the emulator models it: the copy is recorded when issued, its destination is
// poisoned (0xFF bytes: NaN in every float type) until the issuing thread's
// cp.async.wait_group covers its group, and only then are the bytes copied. A read of the
// destination before the wait sees poison; an ldmatrix of it is a KernelFault.
//
// The proxies (PTX ISA "Memory Consistency Model" > proxies): a landed copy, like a store the
// emulator sees (st.shared of ptx::round_shared_chunk_to_tf32), is a write through the generic
// proxy, which wgmma's operand reads (the async proxy) see only after the writing thread's
// fence.proxy.async. Such writes are remembered per thread until its fence; a wgmma that reads
// one is a KernelFault (emu/warpgroup_mma.cpp). Plain C++ stores to shared memory are not seen.
//
// A bulk tensor copy (TMA, emu/bulk_tensor.cpp) is held here too, as the image of its box: poisoned
// destination until land_bulk(), which the block runner calls (emu/block_runner.cpp decides when)
// and which completes the copy's transactions on its mbarrier. Its writes are the async proxy's,
// so they need no fence before a wgmma reads them.
#include <cstddef>
#include <utility>
#include <vector>

namespace convkit::emu {

class AsyncCopies {
public:
    // Starts a block of `threads` threads with nothing in flight.
    void reset(std::size_t threads);
    // cp.async of `bytes` bytes, of which the first `source_bytes` come from `source` and the
    // rest are zero (PTX's src-size operand).
    void issue(int thread, void* destination, const void* source, std::size_t bytes, std::size_t source_bytes);
    void commit(int thread);
    // cp.async.wait_group: completes the thread's committed groups but the newest `allowed`.
    void wait(int thread, int allowed);
    // At a thread's exit every copy it issued lands.
    void complete_all(int thread);
    // The issuing thread of an uncompleted copy (cp.async or bulk) whose destination overlaps
    // [p, p + bytes), or -1.
    int pending_writer(const void* p, std::size_t bytes) const;
    // A generic-proxy write of [p, p + bytes) by `thread` (besides the landed copies).
    void generic_write(int thread, void* p, std::size_t bytes);
    // fence.proxy.async by `thread`: its generic writes so far are visible to the async proxy.
    void fence_proxy_async(int thread);
    // The thread of a generic write overlapping [p, p + bytes) not yet fenced, or -1.
    int unfenced_writer(const void* p, std::size_t bytes) const;
    // A bulk copy by `thread` of `image` to `destination`, completing on `barrier`.
    void issue_bulk(int thread, void* destination, std::vector<unsigned char> image, const void* barrier);
    bool bulk_in_flight() const { return !bulk_.empty(); }
    // Lands every bulk copy in flight, in issue order; the barrier and bytes of each, for their
    // transactions.
    std::vector<std::pair<const void*, std::size_t>> land_bulk();

private:
    struct Copy {
        int thread;
        int group;  // -1 until committed
        unsigned char* destination;
        const unsigned char* source;
        std::size_t bytes;
        std::size_t source_bytes;
    };
    struct Write {
        int thread;
        const unsigned char* begin;
        std::size_t bytes;
    };
    struct BulkCopy {
        int thread;
        unsigned char* destination;
        std::vector<unsigned char> image;
        const void* barrier;
    };
    void complete_if(int thread, int below_group, bool uncommitted_too);
    std::vector<Copy> pending_;
    std::vector<BulkCopy> bulk_;
    std::vector<Write> unfenced_;        // generic-proxy writes, per thread until its fence.proxy.async
    std::vector<int> committed_groups_;  // per thread
};

}  // namespace convkit::emu
