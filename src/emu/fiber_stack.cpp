#include "emu/fiber_stack.h"

#include <sys/mman.h>
#include <unistd.h>

#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CONVKIT_EMU_ASAN 1
#endif

namespace convkit::emu {

namespace {
// Kernels are shallow, but ASan's redzones make frames several times larger.
#ifdef CONVKIT_EMU_ASAN
constexpr std::size_t kStackBytes = 512 * 1024;
#else
constexpr std::size_t kStackBytes = 128 * 1024;
#endif
}  // namespace

StackPool::StackPool() : stack_bytes_(kStackBytes) {}

StackPool::~StackPool() {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    for (void* base : mapped_) munmap(base, stack_bytes_ + page);
}

boost::context::stack_context StackPool::acquire() {
    if (free_.empty()) {
        const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        void* base = mmap(nullptr, stack_bytes_ + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) throw std::bad_alloc();
        mprotect(base, page, PROT_NONE);  // the guard page below the stack
        mapped_.push_back(base);
        free_.push_back(static_cast<char*>(base) + page);
    }
    void* bottom = free_.back();
    free_.pop_back();
    boost::context::stack_context stack;
    stack.size = stack_bytes_;
    stack.sp = static_cast<char*>(bottom) + stack_bytes_;  // stacks grow down from the top
    return stack;
}

void StackPool::release(boost::context::stack_context& stack) {
    free_.push_back(static_cast<char*>(stack.sp) - stack.size);
}

void SanitizerSwitch::start([[maybe_unused]] const void* bottom, [[maybe_unused]] std::size_t size) {
#ifdef CONVKIT_EMU_ASAN
    __sanitizer_start_switch_fiber(&fake_stack, bottom, size);
#endif
}

void SanitizerSwitch::start_final([[maybe_unused]] const void* bottom, [[maybe_unused]] std::size_t size) {
#ifdef CONVKIT_EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, bottom, size);
#endif
}

void SanitizerSwitch::finish([[maybe_unused]] const void** from_bottom, [[maybe_unused]] std::size_t* from_size) {
#ifdef CONVKIT_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, from_bottom, from_size);
#endif
}

}  // namespace convkit::emu
