// The heart of the emulator: a launch's blocks one at a time, each block's threads as fibers
// on this OS thread, resumed in the order of the schedule, with counted barriers and warp
// operations completed when their last lane arrives.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#else
#define ASAN_UNPOISON_MEMORY_REGION(address, size) ((void)(address), (void)(size))
#endif

#include "emu/block_state.h"
#include "emu/ptx_emulation.h"

namespace convkit::emu {

using namespace runner;

namespace {
namespace ctx = boost::context;

constexpr int kWarpSize = 32;
constexpr int kWarpgroupSize = 128;
// Where the block's dynamic shared memory starts in the emulated shared window (the addresses of
// shared_window_address, which wgmma descriptors carry). Past sm_90's 1 KiB of reserved shared
// memory, 128-byte aligned but deliberately not 1024-byte aligned: a kernel must align a
// 128-byte-swizzled tile itself, as it must on a GPU where static shared memory may come first.
constexpr std::uint32_t kDynamicSharedWindowStart = 1024 + 128;
constexpr std::uint32_t kSharedWindowBytes = 1u << 18;  // what a descriptor's 14-bit field reaches
constexpr unsigned char kPoison = 0xFF;                 // NaN in every floating-point type

Block* current_block = nullptr;
Thread* current_thread = nullptr;
std::mutex launch_mutex;  // one launch at a time: __shared__ storage is process-wide
std::optional<Schedule> schedule_override;

std::string extent_text(const Extent& e) {
    // Appended piecewise: GCC 12's -Wrestrict misfires on "(" + string once this is inlined.
    std::string text = "(";
    text += std::to_string(e.x);
    text += ',';
    text += std::to_string(e.y);
    text += ',';
    text += std::to_string(e.z);
    text += ')';
    return text;
}

std::string where(const Block& b, const Thread& t) {
    return "kernel " + b.launch->kernel + ", block " + extent_text(b.index) + ", thread " +
           extent_text(t.position.thread_index) + " [schedule " + schedule_name(current_schedule()) + "]";
}

// Modules register while they load (static initialisers, in any order and before main); never
// destroyed, so a launch from an exit handler still finds them. Its own lock, not the launch's: a
// module loading on another thread during a launch must not wait for the launch to end.
std::vector<StaticSharedSection>& registered_static_shared() {
    static auto* sections = new std::vector<StaticSharedSection>;
    return *sections;
}
std::mutex& static_shared_mutex() {
    static auto* mutex = new std::mutex;
    return *mutex;
}

// The sections registered so far, for a launch to keep.
std::vector<StaticSharedSection> static_shared_sections() {
    const std::lock_guard<std::mutex> lock(static_shared_mutex());
    return registered_static_shared();
}

}  // namespace

namespace runner {

std::string site_text(const std::source_location& site) {
    std::string file = site.file_name();
    const std::size_t slash = file.find_last_of('/');
    if (slash != std::string::npos) {
        // Keep the folder: "kernels/pool_max.cu", "tests/emu/planted_kernels.cu".
        const std::size_t before = file.find_last_of('/', slash - 1);
        file = file.substr(before == std::string::npos ? 0 : before + 1);
    }
    return file + ":" + std::to_string(site.line());
}

[[noreturn]] void fault_at(const Block& b, const Thread& t, const std::string& what) {
    throw KernelFault(where(b, t) + ": " + what);
}

Block& block() {
    return *current_block;
}
Thread& thread() {
    return *current_thread;
}

// Back to the scheduler; returns when this thread is resumed.
void suspend() {
    Block& b = block();
    Thread& t = thread();
    t.sanitizer.start(b.scheduler_stack_bottom, b.scheduler_stack_size);
    t.sink = std::move(t.sink).resume();
    t.sanitizer.finish(&b.scheduler_stack_bottom, &b.scheduler_stack_size);
    if (b.abandoned) throw AbandonBlock{};
}

}  // namespace runner

namespace {

std::string mask_text(unsigned mask) {
    std::ostringstream text;
    text << "0x" << std::hex << mask;
    return text.str();
}

// "3", "0-127", "0-31, 64-95": thread ranks, compactly.
std::string ranks_text(const std::vector<int>& ranks) {
    std::string text;
    for (std::size_t i = 0; i < ranks.size();) {
        std::size_t j = i;
        while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
        if (!text.empty()) text += ", ";
        text += std::to_string(ranks[i]);
        if (j > i) {
            text += '-';  // appended piecewise: GCC 12's -Wrestrict misfires on "-" + string here
            text += std::to_string(ranks[j]);
        }
        i = j + 1;
    }
    return text;
}

std::string waiting_place(const Block& b, const Thread& t) {
    switch (t.state) {
        case State::AtBarrier:
            return "wait at __syncthreads (" + site_text(t.barrier_site) + ")";
        case State::AtNamedBarrier:
            return "wait at named barrier " + std::to_string(t.named_barrier) + " for " +
                   std::to_string(b.named_barriers[static_cast<std::size_t>(t.named_barrier)].expected) + " threads (" +
                   site_text(t.barrier_site) + ")";
        case State::AtWarpOperation:
            return std::string("wait at ") + t.arrival->operation + " with mask " + mask_text(t.arrival->mask) + " (" +
                   site_text(t.arrival->site) + ")";
        case State::AtMbarrier:
            return "wait at an mbarrier for its phase of parity " + std::to_string(t.mbarrier_parity) + " (" +
                   site_text(t.mbarrier_site) + ")";
        case State::Exited:
            return "have returned";
        case State::Runnable:
            return "are runnable";
    }
    return "";
}

// No thread can run but some have not returned: say who waits where.
[[noreturn]] void deadlock(const Block& b) {
    std::map<std::string, std::vector<int>> groups;
    const Thread* first_waiting = nullptr;
    for (const Thread& t : b.threads) {
        groups[waiting_place(b, t)].push_back(t.rank);
        if (first_waiting == nullptr && t.state != State::Exited) first_waiting = &t;
    }
    std::string text = "deadlock:";
    for (const auto& [place, ranks] : groups) text += " threads " + ranks_text(ranks) + " " + place + ";";
    text.pop_back();
    fault_at(b, *first_waiting, text);
}

void release_barrier(Block& b) {
    const Thread& first = b.threads.front();
    int count = 0;
    for (const Thread& t : b.threads) {
        if (t.barrier_kind != first.barrier_kind || t.barrier_site.line() != first.barrier_site.line() ||
            std::strcmp(t.barrier_site.file_name(), first.barrier_site.file_name()) != 0) {
            fault_at(b, t,
                     "threads wait at different barriers: thread " + std::to_string(first.rank) + " at " +
                         site_text(first.barrier_site) + ", thread " + std::to_string(t.rank) + " at " +
                         site_text(t.barrier_site));
        }
        count += t.predicate != 0;
    }
    const int total = static_cast<int>(b.threads.size());
    int result = 0;
    switch (first.barrier_kind) {
        case BarrierKind::Sync:
            result = 0;
            break;
        case BarrierKind::Count:
            result = count;
            break;
        case BarrierKind::And:
            result = count == total;
            break;
        case BarrierKind::Or:
            result = count > 0;
            break;
    }
    for (Thread& t : b.threads) {
        t.barrier_result = result;
        t.state = State::Runnable;
    }
    b.at_barrier = 0;
}

unsigned existing_lanes(const Block& b, int warp) {
    const int lanes = std::min(kWarpSize, static_cast<int>(b.threads.size()) - warp * kWarpSize);
    return lanes >= kWarpSize ? 0xffffffffu : (1u << lanes) - 1;
}

void thread_main(const std::function<void()>& body) {
    Block& b = block();
    Thread& t = thread();
    try {
        if (!b.abandoned) body();
    } catch (const AbandonBlock&) {
    } catch (const std::exception& e) {
        if (b.fault.empty()) {
            b.fault = dynamic_cast<const KernelFault*>(&e) != nullptr ? e.what() : where(b, t) + ": " + e.what();
        }
        b.abandoned = true;
    }
    b.async_copies.complete_all(t.rank);
    t.state = State::Exited;
}

Thread make_thread(const Block& b, int rank) {
    Thread t;
    t.rank = rank;
    const Extent& dim = b.launch->block;
    t.position.thread_index = {static_cast<unsigned>(rank) % dim.x, static_cast<unsigned>(rank) / dim.x % dim.y,
                               static_cast<unsigned>(rank) / (dim.x * dim.y)};
    t.position.block_index = b.index;
    t.position.block_dim = dim;
    t.position.grid_dim = b.launch->grid;
    return t;
}

void start_fibers(Block& b, StackPool& stacks, const std::function<void()>& body) {
    for (Thread& t : b.threads) {
        Thread* self = &t;
        Block* owner = &b;
        t.fiber = ctx::fiber(
            std::allocator_arg, PooledStackAllocator{&stacks, &t.stack}, [self, owner, &body](ctx::fiber&& sink) {
                self->sink = std::move(sink);
                self->sanitizer.finish(&owner->scheduler_stack_bottom, &owner->scheduler_stack_size);
                thread_main(body);
                self->sanitizer.start_final(owner->scheduler_stack_bottom, owner->scheduler_stack_size);
                return std::move(self->sink);
            });
    }
}

// Resumes `t` (after telling ASan which stack comes next).
void run_thread(Block& b, Thread& t) {
    current_thread = &t;
    b.scheduler_sanitizer.start(static_cast<const char*>(t.stack.sp) - t.stack.size, t.stack.size);
    t.fiber = std::move(t.fiber).resume();
    b.scheduler_sanitizer.finish(nullptr, nullptr);
    current_thread = nullptr;
}

bool runnable(const Thread& t) {
    return t.state == State::Runnable && static_cast<bool>(t.fiber);
}

// One pass of the schedule; false when no thread could run.
bool schedule_pass(Block& b, Schedule schedule, std::mt19937_64& random) {
    const int n = static_cast<int>(b.threads.size());
    bool progressed = false;
    auto step = [&](int i) {
        Thread& t = b.threads[static_cast<std::size_t>(i)];
        if (!runnable(t) || b.abandoned) return false;
        run_thread(b, t);
        progressed = true;
        return true;
    };
    switch (schedule) {
        case Schedule::Forward:
            for (int i = 0; i < n; ++i) step(i);
            break;
        case Schedule::Reverse:
            for (int i = n - 1; i >= 0; --i) step(i);
            break;
        case Schedule::RunToBlock:
            for (int i = 0; i < n; ++i)
                while (step(i)) {
                }
            break;
        case Schedule::Random: {
            std::vector<int> ready;
            for (int i = 0; i < n; ++i)
                if (runnable(b.threads[static_cast<std::size_t>(i)])) ready.push_back(i);
            if (!ready.empty()) step(ready[random() % ready.size()]);
            break;
        }
    }
    return progressed;
}

void poison_shared_memory(Block& b) {
    for (const StaticSharedSection& section : b.static_shared) {
        const auto bytes = static_cast<std::size_t>(section.end - section.begin);
        // ASan's redzones between the gathered variables would report the memset.
        ASAN_UNPOISON_MEMORY_REGION(section.begin, bytes);
        std::memset(section.begin, kPoison, bytes);
    }
    std::fill(b.dynamic_shared_storage.begin(), b.dynamic_shared_storage.end(), kPoison);
}

std::uint64_t seed_from_environment() {
    const char* text = std::getenv("CONVKIT_EMU_SEED");
    return text != nullptr ? std::strtoull(text, nullptr, 10) : 1;
}

void run_block(Block& b, StackPool& stacks, const std::function<void()>& body, Schedule schedule,
               std::mt19937_64& random) {
    const std::size_t n = static_cast<std::size_t>(b.launch->block.count());
    b.threads.clear();
    b.threads.reserve(n);
    for (std::size_t i = 0; i < n; ++i) b.threads.push_back(make_thread(b, static_cast<int>(i)));
    b.at_barrier = 0;
    b.named_barriers = {};
    b.abandoned = false;
    b.async_copies.reset(n);
    b.warpgroup_mmas.reset(n);
    b.mbarriers.clear();
    b.bulk_copies_started = 0;
    poison_shared_memory(b);
    start_fibers(b, stacks, body);
    while (!b.abandoned) {
        if (schedule_pass(b, schedule, random)) continue;
        const bool all_exited =
            std::all_of(b.threads.begin(), b.threads.end(), [](const Thread& t) { return t.state == State::Exited; });
        if (all_exited) {
            std::string unfinished = b.warpgroup_mmas.unfinished();
            if (unfinished.empty() && b.async_copies.bulk_in_flight())
                unfinished = "a bulk tensor copy into shared memory is still in flight when every thread has returned";
            if (!unfinished.empty()) {
                b.fault = where(b, b.threads.front()) + ": " + unfinished;
                b.abandoned = true;
            }
            break;
        }
        // No thread can run: the copies in flight land (the latest a GPU could land them), which
        // may complete the phases the threads wait for.
        if (b.async_copies.bulk_in_flight()) {
            try {
                land_bulk_copies(b, b.threads.front());
            } catch (const KernelFault& f) {
                b.fault = f.what();
                b.abandoned = true;
            }
            continue;
        }
        try {
            deadlock(b);
        } catch (const KernelFault& f) {
            b.fault = f.what();
            b.abandoned = true;
        }
    }
    // Unwind every thread still suspended (they throw AbandonBlock from their switch point).
    for (Thread& t : b.threads)
        while (t.fiber) run_thread(b, t);
}
}  // namespace

bool register_static_shared(unsigned char* begin, unsigned char* end) {
    if (begin == nullptr || end <= begin) return true;
    const std::lock_guard<std::mutex> lock(static_shared_mutex());
    std::vector<StaticSharedSection>& sections = registered_static_shared();
    const bool known = std::any_of(sections.begin(), sections.end(),
                                   [&](const StaticSharedSection& s) { return s.begin == begin && s.end == end; });
    if (!known) sections.push_back({begin, end});
    return true;
}

const char* schedule_name(Schedule schedule) {
    switch (schedule) {
        case Schedule::Forward:
            return "forward";
        case Schedule::Reverse:
            return "reverse";
        case Schedule::RunToBlock:
            return "run-to-block";
        case Schedule::Random:
            return "random";
    }
    return "unknown";
}

Schedule schedule_from_environment() {
    const char* text = std::getenv("CONVKIT_EMU_SCHEDULE");
    if (text == nullptr || *text == '\0') return Schedule::Forward;
    for (Schedule s : {Schedule::Forward, Schedule::Reverse, Schedule::RunToBlock, Schedule::Random})
        if (std::strcmp(text, schedule_name(s)) == 0) return s;
    throw InvalidArgument(std::string("CONVKIT_EMU_SCHEDULE: unknown schedule '") + text +
                          "' (forward, reverse, run-to-block or random)");
}

Schedule current_schedule() {
    return schedule_override ? *schedule_override : schedule_from_environment();
}

void set_schedule_override(std::optional<Schedule> schedule) {
    schedule_override = schedule;
}

namespace {
// The order of a grid's blocks: at(i) is the linear index (x fastest) of the i-th block run,
// ascending under the forward and run-to-block schedules, descending under reverse, and under
// random a seeded permutation that needs no table (grids reach billions of blocks): i * stride +
// offset modulo the count, for a stride coprime with the count, and never either of the others
// (stride 1 with offset 0 is ascending, stride and offset count - 1 descending). Grids of fewer
// than 3 blocks run ascending under random. Each launch draws from a generator seeded afresh
// (CONVKIT_EMU_SEED), so grids of one size get one permutation in a run.
struct BlockOrder {
    std::uint64_t count = 1, stride = 1, offset = 0;
    Schedule schedule = Schedule::Forward;

    BlockOrder(std::uint64_t blocks, Schedule s, std::mt19937_64& random) : count(blocks), schedule(s) {
        // (At most 2^32 blocks, so that i * stride fits 64 bits; past that, ascending.)
        if (schedule != Schedule::Random || count < 3 || count > (std::uint64_t{1} << 32)) return;
        stride = random() % count;
        while (std::gcd(stride, count) != 1) stride = (stride + 1) % count;
        offset = random() % (count - 1);  // never count - 1
        if (stride == 1 && offset == 0) offset = 1;
    }
    std::uint64_t at(std::uint64_t i) const {
        switch (schedule) {
            case Schedule::Reverse:
                return count - 1 - i;
            case Schedule::Random:
                return (i * stride + offset) % count;
            case Schedule::Forward:
            case Schedule::RunToBlock:
                break;
        }
        return i;
    }
};
}  // namespace

void run_grid(const GridLaunch& launch, const std::function<void()>& thread_body) {
    const std::lock_guard<std::mutex> lock(launch_mutex);
    const Schedule schedule = current_schedule();
    std::mt19937_64 random(seed_from_environment());
    static StackPool stacks;  // guarded by launch_mutex
    Block b;
    b.launch = &launch;
    // Host memory 1024-byte aligned, so that window addresses and host addresses share their low
    // bits (the swizzle of a wgmma tile is a function of them).
    b.dynamic_shared_storage.resize(launch.dynamic_shared_bytes + 1024);
    const auto storage = reinterpret_cast<std::uintptr_t>(b.dynamic_shared_storage.data());
    b.dynamic_shared =
        b.dynamic_shared_storage.data() + ((1024 - storage % 1024) % 1024 + kDynamicSharedWindowStart) % 1024;
    b.dynamic_shared_bytes = launch.dynamic_shared_bytes;
    b.static_shared = static_shared_sections();
    current_block = &b;
    struct ClearCurrent {
        ~ClearCurrent() { current_block = nullptr; }
    } clear;
    // A GPU runs a grid's blocks in no promised order, so the schedule orders them too: a block
    // that wrote where another block writes (a stray store a later block happened to cover) or
    // read what another block writes gives a different result under some order.
    const BlockOrder order(launch.grid.count(), schedule, random);
    for (std::uint64_t i = 0; i < order.count; ++i) {
        const std::uint64_t linear = order.at(i);
        b.index = {static_cast<unsigned>(linear % launch.grid.x),
                   static_cast<unsigned>(linear / launch.grid.x % launch.grid.y),
                   static_cast<unsigned>(linear / (std::uint64_t{launch.grid.x} * launch.grid.y))};
        run_block(b, stacks, thread_body, schedule, random);
        if (!b.fault.empty()) throw KernelFault(b.fault);
    }
}

const ThreadPosition& position() {
    return thread().position;
}

int thread_rank() {
    return thread().rank;
}

AsyncCopies& block_async_copies() {
    return block().async_copies;
}

int block_barrier(BarrierKind kind, int predicate, const std::source_location& site) {
    Block& b = block();
    Thread& t = thread();
    t.state = State::AtBarrier;
    t.barrier_kind = kind;
    t.predicate = predicate;
    t.barrier_site = site;
    if (++b.at_barrier == static_cast<int>(b.threads.size())) release_barrier(b);
    // Even the last to arrive goes back to the scheduler, which picks who runs first.
    suspend();
    return t.barrier_result;
}

void warp_collective(const WarpArrival& arrival, WarpEvaluate evaluate) {
    Block& b = block();
    Thread& t = thread();
    const int lane = t.rank % kWarpSize;
    const int warp = t.rank / kWarpSize;
    if ((arrival.mask >> lane & 1u) == 0) {
        fault_at(b, t,
                 std::string(arrival.operation) + " with mask " + mask_text(arrival.mask) +
                     ", which excludes the calling lane " + std::to_string(lane) + " (" + site_text(arrival.site) +
                     ")");
    }
    const unsigned exist = existing_lanes(b, warp);
    if ((arrival.mask & ~exist) != 0) {
        fault_at(b, t,
                 std::string(arrival.operation) + " with mask " + mask_text(arrival.mask) +
                     " names lanes that do not exist in a block of " + std::to_string(b.threads.size()) + " threads (" +
                     site_text(arrival.site) + ")");
    }
    unsigned arrived = 1u << lane;
    for (int other = 0; other < kWarpSize; ++other) {
        if (other == lane || ((exist >> other) & 1u) == 0) continue;
        const Thread& o = b.threads[static_cast<std::size_t>(warp * kWarpSize + other)];
        if (o.state != State::AtWarpOperation) continue;
        const bool related = ((arrival.mask >> other) & 1u) != 0 || ((o.arrival->mask >> lane) & 1u) != 0;
        if (!related) continue;
        // Names are string literals: equal pointers are the common case, strcmp the fallback.
        const bool same_operation =
            o.arrival->operation == arrival.operation || std::strcmp(o.arrival->operation, arrival.operation) == 0;
        if (!same_operation || o.arrival->mask != arrival.mask) {
            fault_at(b, t,
                     "lanes of warp " + std::to_string(warp) + " at different warp operations: lane " +
                         std::to_string(lane) + " at " + arrival.operation + " with mask " + mask_text(arrival.mask) +
                         " (" + site_text(arrival.site) + "), lane " + std::to_string(other) + " at " +
                         o.arrival->operation + " with mask " + mask_text(o.arrival->mask) + " (" +
                         site_text(o.arrival->site) + ")");
        }
        arrived |= 1u << other;
    }
    t.state = State::AtWarpOperation;
    t.arrival = &arrival;
    t.warpgroup_operation = false;
    if (arrived == arrival.mask) {
        WarpLanes lanes;
        lanes.mask = arrival.mask;
        lanes.warp = warp;
        for (int l = 0; l < kWarpSize; ++l)
            if ((arrival.mask >> l) & 1u)
                lanes.lane[l] = b.threads[static_cast<std::size_t>(warp * kWarpSize + l)].arrival;
        evaluate(lanes);
        for (int l = 0; l < kWarpSize; ++l)
            if ((arrival.mask >> l) & 1u)
                b.threads[static_cast<std::size_t>(warp * kWarpSize + l)].state = State::Runnable;
    }
    suspend();
}

void lane_fault(const WarpLanes& lanes, int lane, const std::string& what) {
    Block& b = block();
    fault_at(b, b.threads[static_cast<std::size_t>(lanes.warp * kWarpSize + lane)], what);
}

unsigned live_lanes_of_warp() {
    Block& b = block();
    const int warp = thread().rank / kWarpSize;
    unsigned mask = 0;
    for (int l = 0; l < kWarpSize; ++l) {
        const std::size_t r = static_cast<std::size_t>(warp * kWarpSize + l);
        if (r < b.threads.size() && b.threads[r].state != State::Exited) mask |= 1u << l;
    }
    return mask;
}

void switch_point() {
    suspend();  // stays runnable: the schedule decides who goes next
}

void trap(const std::source_location& site) {
    thread_fault("__trap() at " + site_text(site));
}

void thread_fault(const std::string& what) {
    fault_at(block(), thread(), what);
}

void* dynamic_shared_memory() {
    return block().dynamic_shared;
}

WarpgroupMmas& block_warpgroup_mmas() {
    return block().warpgroup_mmas;
}

std::uint32_t shared_window_address(const void* p) {
    const Block& b = block();
    const auto* byte = static_cast<const unsigned char*>(p);
    if (byte < b.dynamic_shared || byte >= b.dynamic_shared + b.dynamic_shared_bytes) {
        std::ostringstream text;
        text << "the shared-window address of " << p
             << ", which is not in the block's dynamic shared memory (the emulator maps only that into the "
                "window wgmma descriptors address)";
        thread_fault(text.str());
    }
    const auto address = kDynamicSharedWindowStart + static_cast<std::uint64_t>(byte - b.dynamic_shared);
    if (address >= kSharedWindowBytes) {
        thread_fault("the shared-window address " + std::to_string(address) +
                     " is past the 256 KiB a wgmma descriptor's 14-bit start field reaches");
    }
    return static_cast<std::uint32_t>(address);
}

const unsigned char* shared_window_pointer(std::uint32_t address, std::size_t bytes) {
    const Block& b = block();
    if (address < kDynamicSharedWindowStart || address + bytes > kDynamicSharedWindowStart + b.dynamic_shared_bytes)
        return nullptr;
    return b.dynamic_shared + (address - kDynamicSharedWindowStart);
}

void warpgroup_collective(const WarpArrival& arrival, WarpgroupEvaluate evaluate) {
    Block& b = block();
    Thread& t = thread();
    const int group = t.rank / kWarpgroupSize;
    const auto first = static_cast<std::size_t>(group * kWarpgroupSize);
    if (first + kWarpgroupSize > b.threads.size()) {
        fault_at(b, t,
                 std::string(arrival.operation) + " in a block of " + std::to_string(b.threads.size()) +
                     " threads, whose warpgroup " + std::to_string(group) + " is incomplete (" +
                     site_text(arrival.site) + ")");
    }
    int arrived = 1;
    for (std::size_t r = first; r < first + kWarpgroupSize; ++r) {
        const Thread& o = b.threads[r];
        if (o.rank == t.rank || o.state != State::AtWarpOperation) continue;
        const bool same_warp = o.rank / kWarpSize == t.rank / kWarpSize;
        if (!o.warpgroup_operation && !same_warp) continue;  // another warp's own operation: not here yet
        if (!o.warpgroup_operation || std::strcmp(o.arrival->operation, arrival.operation) != 0) {
            fault_at(b, t,
                     "threads of warpgroup " + std::to_string(group) + " at different operations: thread " +
                         std::to_string(t.rank) + " at " + arrival.operation + " (" + site_text(arrival.site) +
                         "), thread " + std::to_string(o.rank) + " at " + o.arrival->operation + " (" +
                         site_text(o.arrival->site) + ")");
        }
        ++arrived;
    }
    t.state = State::AtWarpOperation;
    t.arrival = &arrival;
    t.warpgroup_operation = true;
    if (arrived == kWarpgroupSize) {
        WarpgroupLanes lanes;
        lanes.warpgroup = group;
        for (int i = 0; i < kWarpgroupSize; ++i)
            lanes.thread[i] = b.threads[first + static_cast<std::size_t>(i)].arrival;
        evaluate(lanes);
        for (std::size_t r = first; r < first + kWarpgroupSize; ++r) b.threads[r].state = State::Runnable;
    }
    suspend();
}

void warpgroup_fault(const WarpgroupLanes& lanes, int thread, const std::string& what) {
    Block& b = block();
    fault_at(b, b.threads[static_cast<std::size_t>(lanes.warpgroup * kWarpgroupSize + thread)], what);
}

namespace ptx {

void bar_sync(int id, int count, const std::source_location& site) {
    Block& b = block();
    Thread& t = thread();
    t.barrier_site = site;
    if (id < 1 || id >= kNamedBarriers)
        fault_at(b, t,
                 "bar.sync " + std::to_string(id) + " (" + site_text(site) + "): named barriers are 1 to " +
                     std::to_string(kNamedBarriers - 1) + " (0 is __syncthreads')");
    if (count <= 0 || count % kWarpSize != 0 || count > static_cast<int>(b.threads.size()))
        fault_at(b, t,
                 "bar.sync " + std::to_string(id) + ", " + std::to_string(count) + " (" + site_text(site) +
                     "): the count must be a positive multiple of 32 within the block's " +
                     std::to_string(b.threads.size()) + " threads");
    NamedBarrier& n = b.named_barriers[static_cast<std::size_t>(id)];
    if (n.arrived > 0 && n.expected != count)
        fault_at(b, t,
                 "threads wait at named barrier " + std::to_string(id) + " for different counts: " +
                     std::to_string(n.expected) + " and " + std::to_string(count) + " (" + site_text(site) + ")");
    n.expected = count;
    t.state = State::AtNamedBarrier;
    t.named_barrier = id;
    if (++n.arrived == count) {
        // The hardware counts whole warps (bar.sync is .aligned): a warp released in part would
        // have been counted differently there.
        for (const Thread& w : b.threads) {
            if (w.state != State::AtNamedBarrier || w.named_barrier != id) continue;
            const std::size_t first = static_cast<std::size_t>(w.rank / kWarpSize * kWarpSize);
            const std::size_t end = std::min(first + kWarpSize, b.threads.size());
            for (std::size_t r = first; r < end; ++r) {
                const Thread& lane = b.threads[r];
                if (lane.state != State::AtNamedBarrier || lane.named_barrier != id)
                    fault_at(b, lane,
                             "named barrier " + std::to_string(id) + " (" + site_text(site) +
                                 ") filled with part of warp " + std::to_string(w.rank / kWarpSize) + ": thread " +
                                 std::to_string(w.rank) + " arrived, this one did not (bar.sync counts whole warps)");
            }
        }
        for (Thread& w : b.threads)
            if (w.state == State::AtNamedBarrier && w.named_barrier == id) w.state = State::Runnable;
        n.arrived = 0;
    }
    suspend();
}

}  // namespace ptx
}  // namespace convkit::emu
