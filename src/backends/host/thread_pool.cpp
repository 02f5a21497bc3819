#include "backends/host/thread_pool.h"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace convkit::host {

namespace {
// How long an idle worker (and the caller waiting for the workers) polls before it sleeps:
// long enough to catch the next loop of a training step's back-to-back ops, short enough
// that an idle pool costs nothing measurable.
constexpr auto kSpin = std::chrono::microseconds(50);

thread_local bool tls_inside_loop = false;

// A polling loop's pause: lets a sibling hyperthread run and saves power.
inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Polls `done` for up to kSpin; the clock is read every 64 polls only (a clock read costs as
// much as a few dozen polls).
template <typename Done>
void poll_until(Done&& done) {
    const auto end = std::chrono::steady_clock::now() + kSpin;
    for (int i = 1; !done(); ++i) {
        relax();
        if (i % 64 == 0 && std::chrono::steady_clock::now() >= end) return;
    }
}

using Body = std::function<void(std::int64_t, int)>;

// One loop: thread t runs the t-th chunk.
struct Job {
    const Body* body = nullptr;
    std::int64_t n = 0;
    int threads = 1;

    void run_chunk(int thread) const {
        const std::int64_t begin = n * thread / threads;
        const std::int64_t end = n * (thread + 1) / threads;
        // Restored however the chunk ends, an exception included.
        struct InsideLoop {
            bool outer = tls_inside_loop;
            InsideLoop() { tls_inside_loop = true; }
            ~InsideLoop() { tls_inside_loop = outer; }
        } inside;
        for (std::int64_t i = begin; i < end; ++i) (*body)(i, thread);
    }
};

class ThreadPool {
public:
    // Runs one loop; the caller holds busy_.
    void run(const Job& job) {
        ensure_workers(job.threads - 1);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job_ = job;
            remaining_.store(job.threads - 1, std::memory_order_relaxed);
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        run_guarded(job, 0);
        // Wait for the workers, also when this thread's chunk threw: they still read `job`'s
        // body. Poll a little, then sleep until the last one signals.
        poll_until([&] { return remaining_.load(std::memory_order_acquire) == 0; });
        if (remaining_.load(std::memory_order_acquire) != 0) {
            std::unique_lock<std::mutex> lock(mutex_);
            done_.wait(lock, [&] { return remaining_.load(std::memory_order_acquire) == 0; });
        }
        // The first exception of any chunk reaches the caller (an error, e.g. out of memory,
        // must not end the process from a worker thread).
        std::exception_ptr error;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            std::swap(error, error_);
        }
        if (error) std::rethrow_exception(error);
    }

    std::mutex& busy() { return busy_; }

private:
    // Runs a chunk, keeping its exception (the first of the loop) for the caller.
    void run_guarded(const Job& job, int thread) {
        try {
            job.run_chunk(thread);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
        }
    }

    // Called before the loop's generation is published, so a new worker waits for that one.
    void ensure_workers(int count) {
        while (static_cast<int>(workers_.size()) < count) {
            const int index = static_cast<int>(workers_.size()) + 1;
            const std::uint64_t seen = generation_.load(std::memory_order_acquire);
            workers_.emplace_back([this, index, seen] { work(index, seen); });
            workers_.back().detach();  // the pool lives until the process ends
        }
    }

    void work(int index, std::uint64_t seen) {
        for (;;) {
            poll_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
            Job job;
            {
                // The job is read under the lock it was written under, with its generation: a
                // worker that sat a loop out never mixes two loops' settings.
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                seen = generation_.load(std::memory_order_acquire);
                job = job_;
            }
            // Workers past this loop's thread count sit it out; the caller does not wait for them.
            if (index >= job.threads) continue;
            run_guarded(job, index);
            if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lock(mutex_);
                done_.notify_one();
            }
        }
    }

    std::mutex busy_;   // one loop at a time
    std::mutex mutex_;  // for the condition variables
    std::condition_variable wake_;
    std::condition_variable done_;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> remaining_{0};
    Job job_;
    std::exception_ptr error_;  // under mutex_
    std::vector<std::thread> workers_;
};

// Never destroyed: its workers run until the process ends. A child process made by fork() has
// none of its parent's workers (and maybe a lock held by a thread that is not there), so the
// child starts a pool of its own at its first loop; the parent's is left behind, unused.
std::atomic<ThreadPool*> current_pool{nullptr};

void forget_pool_in_child() { current_pool.store(nullptr); }

ThreadPool& pool() {
    static const bool registered = [] { return pthread_atfork(nullptr, nullptr, forget_pool_in_child) == 0; }();
    (void)registered;
    ThreadPool* p = current_pool.load();
    if (p == nullptr) {
        auto* fresh = new ThreadPool();
        if (current_pool.compare_exchange_strong(p, fresh)) {
            p = fresh;
        } else {
            delete fresh;  // another thread made one first; no worker of `fresh` was started
        }
    }
    return *p;
}
}  // namespace

int host_threads() { return std::max(1, omp_get_max_threads()); }

void parallel_for(std::int64_t n, int threads, const std::function<void(std::int64_t i, int thread)>& body) {
    threads = static_cast<int>(std::clamp<std::int64_t>(threads, 1, std::max<std::int64_t>(n, 1)));
    if (n <= 0) return;
    ThreadPool& p = pool();
    std::unique_lock<std::mutex> busy(p.busy(), std::defer_lock);
    const Job job{&body, n, threads};
    if (threads == 1 || tls_inside_loop || !busy.try_lock()) {
        // The same chunks with the same thread indices, one after the other: per-thread
        // partial sums, and so the results, are those of a parallel run.
        for (int t = 0; t < threads; ++t) job.run_chunk(t);
        return;
    }
    p.run(job);
}

}  // namespace convkit::host
