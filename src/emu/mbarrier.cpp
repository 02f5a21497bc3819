// The emulated mbarriers (kernels/ptx.cuh: mbarrier.init, arrive, arrive.expect_tx,
// try_wait.parity, inval, fence.mbarrier_init) and the start of a bulk tensor copy that completes
// on one (emu/bulk_tensor.cpp gathers it): a barrier's expected and pending arrivals and
// transaction bytes per phase, its waiters blocked in the scheduler (emu/block_runner.cpp) until
// the phase completes, and the faults of their misuse.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "emu/block_state.h"
#include "emu/ptx_emulation.h"

namespace convkit::emu {

using namespace runner;

namespace runner {

// Completes the barrier's current phase if nothing is pending in it (arrivals and transactions):
// its waiters for this parity run again, and the next phase expects `expected` arrivals.
void complete_phase_if_done(Block& b, const void* barrier, Mbarrier& m) {
    if (m.pending != 0 || m.transactions != 0) return;
    for (Thread& t : b.threads) {
        if (t.state == State::AtMbarrier && t.mbarrier == barrier && t.mbarrier_parity == m.phase % 2)
            t.state = State::Runnable;
    }
    ++m.phase;
    m.pending = m.expected;
}

// Lands every bulk copy in flight and completes their transactions (`t`: whom a fault names).
void land_bulk_copies(Block& b, const Thread& t) {
    for (const auto& [barrier, bytes] : b.async_copies.land_bulk()) {
        const auto found = b.mbarriers.find(barrier);
        if (found == b.mbarriers.end())
            fault_at(b, t, "a bulk tensor copy completes on an mbarrier that was invalidated while it was in flight");
        found->second.transactions -= static_cast<std::int64_t>(bytes);
        complete_phase_if_done(b, barrier, found->second);
    }
}

}  // namespace runner

namespace ptx {
namespace {
// 2^20 - 1: the largest expected arrival count (PTX ISA, mbarrier.init).
constexpr unsigned kMaximumMbarrierCount = (1u << 20) - 1;

bool in_shared_memory(const Block& b, const void* p, std::size_t bytes) {
    const auto* byte = static_cast<const unsigned char*>(p);
    const bool dynamic = byte >= b.dynamic_shared && byte + bytes <= b.dynamic_shared + b.dynamic_shared_bytes;
    const bool static_shared =
        std::any_of(b.static_shared.begin(), b.static_shared.end(),
                    [&](const StaticSharedSection& s) { return byte >= s.begin && byte + bytes <= s.end; });
    return dynamic || static_shared;
}

// The barrier at `p`, faulting (naming the operation and site) where it is misaligned, outside
// shared memory, or (unless `initialising`) not initialised.
Mbarrier* find_mbarrier(const void* p, const char* operation, const std::source_location& site, bool initialising) {
    Block& b = block();
    const std::string at = std::string(operation) + " at " + site_text(site) + ": ";
    if (reinterpret_cast<std::uintptr_t>(p) % 8 != 0) thread_fault(at + "the barrier is not 8-byte aligned");
    if (!in_shared_memory(b, p, 8)) thread_fault(at + "the barrier is not in shared memory");
    const auto found = b.mbarriers.find(p);
    if (found == b.mbarriers.end()) {
        if (!initialising) thread_fault(at + "the barrier was not initialised (mbarrier.init)");
        return nullptr;
    }
    return &found->second;
}
}  // namespace

void mbarrier_init(void* barrier, unsigned count, const std::source_location& site) {
    if (find_mbarrier(barrier, "mbarrier.init", site, true) != nullptr)
        thread_fault("mbarrier.init at " + site_text(site) +
                     ": the barrier is already initialised (mbarrier.inval it first)");
    if (count < 1 || count > kMaximumMbarrierCount)
        thread_fault("mbarrier.init at " + site_text(site) + ": count " + std::to_string(count) + " (1 to " +
                     std::to_string(kMaximumMbarrierCount) + ")");
    block().mbarriers[barrier] = Mbarrier{count, count, 0, 0, thread_rank(), false};
    std::memset(barrier, 0, 8);  // the object's bytes are the barrier's, not data
}

namespace {
// One arrival on the current phase, after adding `transactions` expected bytes to it.
std::uint64_t arrive(void* barrier, std::int64_t transactions, const char* operation,
                     const std::source_location& site) {
    Block& b = block();
    Mbarrier& m = *find_mbarrier(barrier, operation, site, false);
    const std::uint64_t arrived_on = m.phase;
    m.transactions += transactions;
    if (m.transactions > kMaximumMbarrierCount)
        thread_fault(std::string(operation) + " at " + site_text(site) + ": " + std::to_string(m.transactions) +
                     " transaction bytes pending in one phase (at most 2^20 - 1)");
    if (m.pending == 0)
        thread_fault(std::string(operation) + " at " + site_text(site) +
                     ": an arrival on a phase whose arrivals are all in (it waits for " +
                     std::to_string(m.transactions) + " transaction bytes)");
    --m.pending;
    complete_phase_if_done(b, barrier, m);
    switch_point();  // as an atomic: the others may run before this thread goes on
    return arrived_on;
}
}  // namespace

std::uint64_t mbarrier_arrive(void* barrier, const std::source_location& site) {
    return arrive(barrier, 0, "mbarrier.arrive", site);
}

std::uint64_t mbarrier_arrive_expect_tx(void* barrier, unsigned bytes, const std::source_location& site) {
    return arrive(barrier, bytes, "mbarrier.arrive.expect_tx", site);
}

void mbarrier_wait_parity(void* barrier, unsigned parity, const std::source_location& site) {
    if (parity > 1)
        thread_fault("mbarrier.try_wait.parity at " + site_text(site) + ": parity " + std::to_string(parity));
    // Checked at every resumption, as try_wait polls: a barrier whose phase advanced twice before
    // this thread ran again has the waited-for parity once more, and the wait goes on.
    while (find_mbarrier(barrier, "mbarrier.try_wait.parity", site, false)->phase % 2 == parity) {
        Thread& t = thread();
        t.state = State::AtMbarrier;
        t.mbarrier = barrier;
        t.mbarrier_parity = parity;
        t.mbarrier_site = site;
        suspend();  // until the arrival that completes the phase makes this thread runnable
    }
    switch_point();  // the phase of this parity has completed: a switch point, no wait
}

}  // namespace ptx

void fence_barrier_inits(int thread) {
    for (auto& [address, m] : block().mbarriers)
        if (m.initialiser == thread) m.init_fenced = true;
}

void start_bulk_copy(void* destination, std::vector<unsigned char> image, void* barrier,
                     const std::source_location& site) {
    Block& b = block();
    Mbarrier& m = *ptx::find_mbarrier(barrier, "cp.async.bulk.tensor", site, false);
    if (!m.init_fenced)
        thread_fault("cp.async.bulk.tensor at " + site_text(site) + ": its mbarrier's init by thread " +
                     std::to_string(m.initialiser) +
                     " was not fenced for the async proxy (fence.mbarrier_init or fence.proxy.async after "
                     "mbarrier.init)");
    if (-m.transactions + static_cast<std::int64_t>(image.size()) > ptx::kMaximumMbarrierCount)
        thread_fault("cp.async.bulk.tensor at " + site_text(site) + ": more than 2^20 - 1 transaction bytes " +
                     "complete on its mbarrier before an expect_tx covers them");
    switch_point();  // issued; others may run before it lands
    b.async_copies.issue_bulk(thread_rank(), destination, std::move(image), barrier);
    // When it lands: at once under reverse (a stage refilled too early changes under the wgmma that
    // reads it), every other copy under random, and otherwise once no thread can run (a read before
    // the wait sees the poison).
    const Schedule schedule = current_schedule();
    const bool now = schedule == Schedule::Reverse || (schedule == Schedule::Random && b.bulk_copies_started % 2 == 1);
    ++b.bulk_copies_started;
    if (now) land_bulk_copies(b, thread());
}

namespace ptx {
void fence_mbarrier_init() {
    fence_barrier_inits(thread_rank());
}

void mbarrier_inval(void* barrier, const std::source_location& site) {
    find_mbarrier(barrier, "mbarrier.inval", site, false);
    for (const Thread& t : block().threads) {
        if (t.state == State::AtMbarrier && t.mbarrier == barrier)
            thread_fault("mbarrier.inval at " + site_text(site) + ": thread " + std::to_string(t.rank) +
                         " still waits on the barrier");
    }
    block().mbarriers.erase(barrier);
}
}  // namespace ptx

}  // namespace convkit::emu
