#pragma once
// The threads of the host-blas backend's parallel loops: a small pool of its own instead of
// OpenMP's, because of how each waits when idle. libgomp's idle threads spin for about 300,000
// iterations (milliseconds) after every parallel region unless OMP_WAIT_POLICY=passive is set
// before the program starts, which a library cannot do for its users. A training step runs
// dozens of short regions with single-threaded work between them, so an OpenMP worker spun
// nearly all the time, and on a machine shared with other work it took the cores that the
// main thread and other processes needed: on the busy 2-core development machine a training
// step took 2-3 times as long as with OMP_WAIT_POLICY=passive (docs/host-backend.md). These
// workers spin only briefly (~50 us) after a loop, then sleep on a condition variable.
//
// OMP_NUM_THREADS still sets the thread count (omp_get_max_threads(), read at every call).
#include <cstdint>
#include <functional>

namespace convkit::host {

// The threads a parallel loop uses now: omp_get_max_threads() (OMP_NUM_THREADS), at least 1.
int host_threads();

// Runs body(i, thread) for every i in [0, n) on up to `threads` threads, the caller among
// them, and returns when all are done. Thread t (0 = the caller) gets the t-th of `threads`
// contiguous, equal (+-1) chunks of [0, n), the same every call: per-thread partial sums come
// out the same each time (deterministic for a given thread count), and `thread` can index
// per-thread scratch allocated beforehand. Threads past n are not used. Runs serially when
// called from inside a loop body, or while another thread's loop holds the pool.
// `body` must not throw (allocate before the loop, as OpenMP needed too).
void parallel_for(std::int64_t n, int threads, const std::function<void(std::int64_t i, int thread)>& body);

// The same with host_threads() threads.
inline void parallel_for(std::int64_t n, const std::function<void(std::int64_t i, int thread)>& body) {
    parallel_for(n, host_threads(), body);
}

}  // namespace convkit::host
