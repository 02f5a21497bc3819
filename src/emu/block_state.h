#pragma once
// The block runner's state (emu/block_runner.cpp), shared with the parts of the emulator that
// suspend threads or complete their waits outside it: the mbarriers and the bulk copies that
// complete on them (emu/mbarrier.cpp). Private to src/emu.
#include <array>
#include <cstdint>
#include <map>
#include <source_location>
#include <string>
#include <vector>

#include <boost/context/fiber.hpp>

#include "emu/async_copy.h"
#include "emu/emulator.h"
#include "emu/fiber_stack.h"
#include "emu/warpgroup_mma.h"

namespace convkit::emu::runner {

enum class State { Runnable, AtBarrier, AtNamedBarrier, AtWarpOperation, AtMbarrier, Exited };

// Unwinds a suspended thread's stack when its block is abandoned after a fault.
struct AbandonBlock {};

struct Thread {
    int rank = 0;
    ThreadPosition position;
    State state = State::Runnable;
    boost::context::fiber fiber;  // the suspended thread (held by the scheduler)
    boost::context::fiber sink;   // the suspended scheduler (held by the running thread)
    boost::context::stack_context stack;
    SanitizerSwitch sanitizer;
    // At a barrier.
    BarrierKind barrier_kind = BarrierKind::Sync;
    int predicate = 0;
    std::source_location barrier_site;
    int barrier_result = 0;
    int named_barrier = 0;  // at a named barrier (AtNamedBarrier): its id
    // At a warp operation.
    const WarpArrival* arrival = nullptr;
    bool warpgroup_operation = false;  // the arrival is at a warpgroup_collective
    // At an mbarrier wait: for the phase of this parity to complete.
    const void* mbarrier = nullptr;
    unsigned mbarrier_parity = 0;
    std::source_location mbarrier_site;
};

// An initialised mbarrier (emu/emulator.h): its expected arrivals a phase, those still pending in
// the current phase, the current phase's pending transaction bytes (expect_tx adds, a landed bulk
// copy subtracts), and the current phase (its parity is phase % 2).
struct Mbarrier {
    unsigned expected = 0;
    unsigned pending = 0;
    std::int64_t transactions = 0;
    std::uint64_t phase = 0;
    // The thread that initialised it, and whether it has fenced the init since (fence.mbarrier_init
    // or fence.proxy.async): a bulk copy completes on the barrier through the async proxy, which
    // sees the generic proxy's init only after that fence.
    int initialiser = -1;
    bool init_fenced = false;
};

// A registered static __shared__ section (register_static_shared), [begin, end).
struct StaticSharedSection {
    unsigned char* begin;
    unsigned char* end;
};

// Named barriers (bar.sync id, count): ids 0 to 15, 0 being __syncthreads' (at_barrier).
inline constexpr int kNamedBarriers = 16;

// A named barrier's threads arrived so far and the count they wait for (bar.sync id, count).
struct NamedBarrier {
    int arrived = 0;
    int expected = 0;
};

struct Block {
    const GridLaunch* launch = nullptr;
    Extent index;
    std::vector<Thread> threads;
    int at_barrier = 0;
    std::array<NamedBarrier, kNamedBarriers> named_barriers{};
    bool abandoned = false;
    std::string fault;                                  // the first fault; the launch throws it
    std::vector<unsigned char> dynamic_shared_storage;  // over-allocated for the alignment below
    unsigned char* dynamic_shared = nullptr;            // 1024-byte aligned in host memory
    std::size_t dynamic_shared_bytes = 0;
    AsyncCopies async_copies;
    WarpgroupMmas warpgroup_mmas;
    std::vector<StaticSharedSection> static_shared;  // the registered sections, as the launch began
    std::map<const void*, Mbarrier> mbarriers;       // by address in shared memory
    std::uint64_t bulk_copies_started = 0;      // picks when each lands under the random schedule
    SanitizerSwitch scheduler_sanitizer;
    const void* scheduler_stack_bottom = nullptr;
    std::size_t scheduler_stack_size = 0;
};

// The block and thread running now (only while a launch runs, on its thread).
Block& block();
Thread& thread();

// Back to the scheduler; returns when this thread is resumed (throws AbandonBlock when its block
// has faulted meanwhile).
void suspend();

// "kernels/pool_max.cu:120": a site, with its folder.
std::string site_text(const std::source_location& site);

// A KernelFault naming the kernel, block, thread and schedule.
[[noreturn]] void fault_at(const Block& b, const Thread& t, const std::string& what);

// emu/mbarrier.cpp: completes the barrier's current phase if nothing is pending in it; lands every
// bulk copy in flight (the runner calls it once no thread can run).
void complete_phase_if_done(Block& b, const void* barrier, Mbarrier& m);
void land_bulk_copies(Block& b, const Thread& t);

}  // namespace convkit::emu::runner
