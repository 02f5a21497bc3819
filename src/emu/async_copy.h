#pragma once
// cp.async as the emulator models it: the copy is recorded when issued, its destination is
// poisoned (0xFF bytes: NaN in every float type) until the issuing thread's
// cp.async.wait_group covers its group, and only then are the bytes copied. A read of the
// destination before the wait sees poison; an ldmatrix of it is a KernelFault.
#include <cstddef>
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
    // The issuing thread of an uncompleted copy whose destination overlaps [p, p + bytes), or -1.
    int pending_writer(const void* p, std::size_t bytes) const;

private:
    struct Copy {
        int thread;
        int group;  // -1 until committed
        unsigned char* destination;
        const unsigned char* source;
        std::size_t bytes;
        std::size_t source_bytes;
    };
    void complete_if(int thread, int below_group, bool uncommitted_too);
    std::vector<Copy> pending_;
    std::vector<int> committed_groups_;  // per thread
};

}  // namespace convkit::emu
