#pragma once
// Stacks for the emulator's fibers, and the AddressSanitizer annotations of a stack switch.
// A block of 256 threads needs 256 stacks; mapping fresh ones for every block would cost more
// than running most blocks, so a pool keeps them. Each stack has a guard page below it, so an
// overflow faults instead of corrupting the neighbour.
#include <cstddef>
#include <vector>

#include <boost/context/stack_context.hpp>

namespace convkit::emu {

class StackPool {
public:
    StackPool();
    ~StackPool();
    StackPool(const StackPool&) = delete;
    StackPool& operator=(const StackPool&) = delete;
    boost::context::stack_context acquire();
    void release(boost::context::stack_context& stack);
    std::size_t stack_bytes() const { return stack_bytes_; }

private:
    std::size_t stack_bytes_;
    std::vector<void*> free_;  // usable bottoms (above the guard page)
    std::vector<void*> mapped_;
};

// Boost.Context's StackAllocator concept over a pool.
// `record` receives the stack's bounds, which ASan needs at every switch to the fiber.
struct PooledStackAllocator {
    StackPool* pool;
    boost::context::stack_context* record;
    boost::context::stack_context allocate() { return *record = pool->acquire(); }
    void deallocate(boost::context::stack_context& stack) { pool->release(stack); }
};

// ASan keeps a shadow of the current stack; every switch between fibers must tell it where the
// next stack is (no-ops without -fsanitize=address).
struct SanitizerSwitch {
    void* fake_stack = nullptr;
    void start(const void* bottom, std::size_t size);
    void start_final(const void* bottom, std::size_t size);  // leaving a fiber for good
    // After arriving: where the stack we came from lives (either pointer may be null).
    void finish(const void** from_bottom, std::size_t* from_size);
};

}  // namespace convkit::emu
