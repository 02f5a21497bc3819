// The host-blas thread pool (src/backends/host/thread_pool.h): every index runs exactly once,
// on the thread its fixed chunk names, for any count and thread count; loops nested in a loop
// body and loops started by several threads at once run too (serially, same chunks), and
// results of a host-blas convolution do not depend on whether the pool or a caller ran them;
// elementwise loops split over the pool give every element's value once.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "backends/host/thread_pool.h"
#include "test_util.h"

namespace convkit {
namespace {

#ifdef CONVKIT_WITH_OPENBLAS

using host::parallel_for;

// Runs a loop of n over `threads` and checks that index i ran once, on the thread of its chunk.
void expect_each_index_once(std::int64_t n, int threads) {
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
    std::vector<std::atomic<int>> thread_of(static_cast<std::size_t>(n));
    parallel_for(n, threads, [&](std::int64_t i, int thread) {
        runs[static_cast<std::size_t>(i)].fetch_add(1);
        thread_of[static_cast<std::size_t>(i)].store(thread);
    });
    const std::int64_t used = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, n));
    for (std::int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << "index " << i << " of " << n << ", " << threads;
        const int t = thread_of[static_cast<std::size_t>(i)].load();
        EXPECT_LE(n * t / used, i);
        EXPECT_LT(i, n * (t + 1) / used);
    }
}

TEST(ThreadPool, RunsEveryIndexOnceOnItsChunksThread) {
    for (int threads : {1, 2, 3, 5, 8})
        for (std::int64_t n : {0, 1, 2, 3, 7, 64, 1001}) expect_each_index_once(n, threads);
}

TEST(ThreadPool, ManyShortLoopsInARow) {
    std::atomic<std::int64_t> sum{0};
    for (int loop = 0; loop < 2000; ++loop) parallel_for(4, 2, [&](std::int64_t i, int) { sum += i; });
    EXPECT_EQ(sum.load(), 2000 * 6);
}

// An exception in any chunk (a worker's or the caller's) reaches the caller once every chunk has
// ended, instead of ending the process; the pool stays usable.
TEST(ThreadPool, AnExceptionInAnyChunkReachesTheCaller) {
    for (int thrower : {0, 1, 3}) {
        std::atomic<int> ran{0};
        try {
            parallel_for(4, 4, [&](std::int64_t i, int) {
                ++ran;
                if (i == thrower) throw OutOfMemory("chunk " + std::to_string(i));
            });
            FAIL() << "expected the chunk's exception";
        } catch (const OutOfMemory& e) {
            EXPECT_EQ(std::string(e.what()), "chunk " + std::to_string(thrower));
        }
        EXPECT_EQ(ran.load(), 4);  // the other chunks ran to their end
    }
    std::atomic<std::int64_t> sum{0};
    parallel_for(100, 4, [&](std::int64_t i, int) { sum += i; });
    EXPECT_EQ(sum.load(), 4950);
    // A nested loop after a thrown one runs in parallel again: the inside-a-loop mark was reset.
    std::atomic<int> distinct{0};
    parallel_for(2, 2, [&](std::int64_t, int thread) { distinct += thread == 1; });
    EXPECT_EQ(distinct.load(), 1);
}

TEST(ThreadPool, NestedLoopsRunSerially) {
    std::atomic<int> total{0};
    parallel_for(4, 2, [&](std::int64_t, int) {
        parallel_for(10, 3, [&](std::int64_t, int thread) {
            EXPECT_LT(thread, 3);
            ++total;
        });
    });
    EXPECT_EQ(total.load(), 40);
}

TEST(ThreadPool, LoopsFromSeveralThreadsAtOnce) {
    std::vector<std::thread> callers;
    std::atomic<int> failures{0};
    for (int c = 0; c < 4; ++c) {
        callers.emplace_back([&] {
            for (int loop = 0; loop < 200; ++loop) {
                std::vector<int> seen(97, 0);
                parallel_for(97, 2, [&](std::int64_t i, int) { ++seen[static_cast<std::size_t>(i)]; });
                for (int v : seen) failures += v != 1;
            }
        });
    }
    for (auto& t : callers) t.join();
    EXPECT_EQ(failures.load(), 0);
}

// A filter gradient sums per-thread partials: the same chunks whether the pool or a busy
// caller runs them, so the result is the same bit for bit.
TEST(ThreadPool, ConvolutionFromSeveralThreadsEqualsOneThread) {
    BackendGuard guard(Backend::HostBlas);
    const Tensor x = Tensor::uniform(Shape{6, 4, 9, 9}, -1, 1, 1, DType::Float32);
    const Tensor dy = Tensor::uniform(Shape{6, 5, 9, 9}, -1, 1, 2, DType::Float32);
    const ConvParams params = ConvParams(2).set_padding(1);
    const Tensor expected = conv_backward_filter(dy, x, Shape{5, 4, 3, 3}, params);
    std::vector<std::thread> callers;
    std::atomic<int> mismatches{0};
    for (int c = 0; c < 3; ++c) {
        callers.emplace_back([&] {
            BackendGuard inner(Backend::HostBlas);
            for (int loop = 0; loop < 20; ++loop)
                mismatches += !testing::exactly_equal(conv_backward_filter(dy, x, Shape{5, 4, 3, 3}, params), expected);
        });
    }
    for (auto& t : callers) t.join();
    EXPECT_EQ(mismatches.load(), 0);
}

// A child made by fork() has no workers of its parent's pool: its loops start a pool of their
// own instead of waiting forever for workers that are not there.
TEST(ThreadPool, WorksInAForkedChild) {
    parallel_for(8, 2, [](std::int64_t, int) {});  // the parent's pool exists and has a worker
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::atomic<int> count{0};
        parallel_for(100, 2, [&](std::int64_t, int) { ++count; });
        _exit(count.load() == 100 ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

// Unary ops and Adam split tensors of 128 Ki elements and more over the pool
// (backends/host/elementwise_split.h): each element's value is that of the same element in a
// small tensor, which runs as one loop, so a piece left out or done twice shows.
TEST(ElementwiseSplit, LargeUnaryOpsEqualTheirSmallSlices) {
    constexpr std::int64_t kCount = 300001;  // several pieces and a short last one
    const Tensor x0 = Tensor::uniform(Shape{kCount}, -2, 2, 5, DType::Float32);
    const Tensor dy = Tensor::uniform(Shape{kCount}, -1, 1, 6, DType::Float32);
    Tensor x = x0.clone().set_requires_grad();
    const Tensor y = tanh(x);
    y.backward(dy);
    const Tensor e = exp(x0);
    for (std::int64_t start : {std::int64_t{0}, std::int64_t{65535}, std::int64_t{131072}, kCount - 1000}) {
        Tensor xs = slice(x0, 0, start, start + 1000).clone().set_requires_grad();
        const Tensor ys = tanh(xs);
        ys.backward(slice(dy, 0, start, start + 1000).clone());
        EXPECT_TRUE(testing::exactly_equal(slice(y.detach(), 0, start, start + 1000), ys.detach())) << start;
        EXPECT_TRUE(testing::exactly_equal(slice(x.grad(), 0, start, start + 1000), xs.grad())) << start;
        EXPECT_TRUE(testing::exactly_equal(slice(e, 0, start, start + 1000), exp(slice(x0, 0, start, start + 1000))))
            << start;
    }
}

#endif

}  // namespace
}  // namespace convkit
