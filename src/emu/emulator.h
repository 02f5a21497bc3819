#pragma once
// The CUDA execution model on the CPU, for the CPU build of the kernel sources (issue #12).
// A launch runs its blocks one after another on the calling OS thread, in the schedule's order;
// each block's threads are fibers (Boost.Context) switched only at synchronisation points:
// barriers, warp operations, atomics and the PTX operations of kernels/ptx.cuh. A barrier
// completes when every thread of the block has arrived, a warp operation when every lane of its
// mask has; anything else (a deadlock, lanes at different warp operations, a lane outside its
// mask, __trap) stops the launch with a KernelFault naming the kernel, the block and the thread.
// Plain C++: the CPU build of kernels/ reaches it through emu/device_api.h and kernels/launch.cuh.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

#include "convkit/error.h"

namespace convkit::emu {

// What a kernel did wrong, found by the emulator (a GPU shows these as a hang, a launch
// failure or silently wrong data). A CudaError, as the same kernel's failure on a GPU is.
class KernelFault : public CudaError {
public:
    using CudaError::CudaError;
};

struct Extent {
    unsigned x = 1, y = 1, z = 1;
    std::uint64_t count() const { return std::uint64_t{x} * y * z; }
};

// The order in which a block's runnable threads are resumed, and a grid's blocks run. Threads run
// between synchronisation points without interruption, so the schedule decides which side of a
// missing barrier runs first; blocks run one after another, so it decides which of two blocks
// writing one address writes last.
enum class Schedule {
    Forward,     // sweeps in ascending thread index, each thread to its next switch point; blocks ascending
    Reverse,     // sweeps in descending thread index; blocks descending
    RunToBlock,  // each thread as far as it can go (through atomics) before the next one; blocks ascending
    Random,      // a seeded random runnable thread at every switch, blocks in a seeded order (CONVKIT_EMU_SEED)
};
const char* schedule_name(Schedule schedule);
// CONVKIT_EMU_SCHEDULE=forward|reverse|run-to-block|random (default forward); a bad value is an
// InvalidArgument naming it.
Schedule schedule_from_environment();
// The schedule launches use: the override when set, else the environment's.
Schedule current_schedule();
// Sets (or, with nullopt, clears) a process-wide override, for tests that run one kernel under
// every schedule.
void set_schedule_override(std::optional<Schedule> schedule);

struct GridLaunch {
    std::string kernel;  // for messages: "conv_forward_kernel<float>"
    Extent grid;
    Extent block;
    std::size_t dynamic_shared_bytes = 0;
};

// Runs `thread_body` once per thread of every block of the launch. Throws KernelFault. One
// launch runs at a time in a process (static __shared__ variables are process-wide storage).
void run_grid(const GridLaunch& launch, const std::function<void()>& thread_body);

// ---- device side: called by the running thread (emu/device_api.h) -----------------------

struct ThreadPosition {
    Extent thread_index, block_index, block_dim, grid_dim;
};
const ThreadPosition& position();

enum class BarrierKind { Sync, Count, And, Or };
// __syncthreads and its counting forms; returns the count, or 0/1 for And/Or.
int block_barrier(BarrierKind kind, int predicate, const std::source_location& site);

// One lane's part in a warp operation. When every lane of `mask` has arrived at the same
// operation with the same mask, `evaluate` runs once with all their arrivals and writes each
// lane's output; it reports misuse through `lane_fault`.
struct WarpArrival {
    const char* operation = nullptr;
    unsigned mask = 0;
    std::source_location site;
    const void* input = nullptr;
    void* output = nullptr;
};
struct WarpLanes {
    const WarpArrival* lane[32] = {};  // null for lanes outside the mask
    unsigned mask = 0;
    int warp = 0;
};
using WarpEvaluate = void (*)(const WarpLanes& lanes);
void warp_collective(const WarpArrival& arrival, WarpEvaluate evaluate);
// Throws the KernelFault of a misuse found while evaluating a warp operation, naming the lane.
[[noreturn]] void lane_fault(const WarpLanes& lanes, int lane, const std::string& what);

// The same for the 128 threads of a warpgroup (warps 4g..4g+3; wgmma.*.sync.aligned): every
// thread of it must arrive at the same operation (the arrival's mask is ignored); a lane whose
// warp-mates wait at another operation is a fault, other warps' own operations are not.
struct WarpgroupLanes {
    const WarpArrival* thread[128] = {};
    int warpgroup = 0;
};
using WarpgroupEvaluate = void (*)(const WarpgroupLanes& lanes);
void warpgroup_collective(const WarpArrival& arrival, WarpgroupEvaluate evaluate);
[[noreturn]] void warpgroup_fault(const WarpgroupLanes& lanes, int thread, const std::string& what);

// Lanes of the calling thread's warp that have not exited (__activemask's approximation: the
// emulator has no notion of divergence between switch points).
unsigned live_lanes_of_warp();

// A switch point that does not block (atomics): other threads may run first under the
// forward, reverse and random schedules.
void switch_point();

// __trap(): stops the launch with a KernelFault naming this thread.
[[noreturn]] void trap(const std::source_location& site);
// A fault of the calling thread (misaligned ldmatrix, a pending cp.async read, ...).
[[noreturn]] void thread_fault(const std::string& what);

// The block's dynamic shared memory (poisoned at the start of every block).
void* dynamic_shared_memory();
// A program or library's static __shared__ variables, [begin, end): the section
// convkit_emu_shared of that module (emu/device_api.h puts them there, cmake/emu_shared_memory.ld
// gathers the templates' too). Every translation unit of CPU-built kernels registers its own
// module's, once a module (device_api.h); the emulator poisons every registered section before
// each block and takes an address in any of them as shared memory. A null or empty range is
// ignored; registering one again does nothing. Returns true (for a static initialiser).
bool register_static_shared(unsigned char* begin, unsigned char* end);
// The emulated shared window (what cvta.to.shared gives on a GPU), of the dynamic shared memory
// only: it starts at window address 1152 (past sm_90's 1 KiB reserved, not 1024-byte aligned).
// shared_window_address faults for any other pointer; shared_window_pointer gives null when
// [address, address + bytes) is not all inside it.
std::uint32_t shared_window_address(const void* p);
const unsigned char* shared_window_pointer(std::uint32_t address, std::size_t bytes);

// The calling thread's index within its block (x fastest), and the block's cp.async records
// (emu/async_copy.h).
int thread_rank();
class AsyncCopies;
AsyncCopies& block_async_copies();
// A fence of `thread` that makes the mbarriers it initialised visible to the async proxy
// (fence.mbarrier_init, fence.proxy.async): bulk copies may then complete on them.
void fence_barrier_inits(int thread);
// A bulk tensor copy (emu/bulk_tensor.cpp) of `image` to `destination` by the calling thread,
// completing its bytes as transactions on the mbarrier `barrier`; when it lands depends on the
// schedule (emu/ptx_emulation.h, bulk_tensor_load).
void start_bulk_copy(void* destination, std::vector<unsigned char> image, void* barrier,
                     const std::source_location& site);
// The block's wgmma.mma_async operations not yet waited for (emu/warpgroup_mma.h).
class WarpgroupMmas;
WarpgroupMmas& block_warpgroup_mmas();

}  // namespace convkit::emu
