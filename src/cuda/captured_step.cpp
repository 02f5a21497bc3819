// CapturedStep: warm-up, capture into a private memory pool, replay (convkit/captured_step.h,
// docs/architecture.md "CUDA graphs").
#include "convkit/captured_step.h"

#include <mutex>

#include "convkit/error.h"
#include "core/check.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "cuda/graph_capture.h"

namespace convkit {

namespace {
// The stream every CapturedStep of a device captures and replays on, created once and never
// destroyed: blocks allocated on it (the optimizer state a warm-up makes) keep it as their pool
// key, which a destroyed and reused handle would confuse.
Stream capture_stream(int device) {
    constexpr int kMaxDevices = 64;
    static std::mutex mutex;
    static Stream streams[kMaxDevices] = {};
    CONVKIT_REQUIRE(device >= 0 && device < kMaxDevices, "CapturedStep", "device index ", device, " is out of range");
    std::lock_guard lock(mutex);
    if (streams[device].handle == nullptr) streams[device] = create_stream(device);
    return streams[device];
}

// An event without timing, destroyed with its owner.
class OrderingEvent {
public:
    OrderingEvent() { CONVKIT_CHECK_CUDA(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
    ~OrderingEvent() { cudaEventDestroy(event_); }
    OrderingEvent(const OrderingEvent&) = delete;
    OrderingEvent& operator=(const OrderingEvent&) = delete;
    // Work enqueued on `later` after this starts after the work enqueued on `earlier` before it;
    // the host does not wait.
    void order(Stream earlier, Stream later) const {
        if (earlier == later) return;
        CONVKIT_CHECK_CUDA(cudaEventRecord(event_, detail::to_cuda(earlier)));
        CONVKIT_CHECK_CUDA(cudaStreamWaitEvent(detail::to_cuda(later), event_, 0));
    }

private:
    cudaEvent_t event_ = nullptr;
};
}  // namespace

struct CapturedStep::State {
    explicit State(int device) : capture(device) {}
    detail::GraphCapture capture;  // its replay hooks; its address is also the pool's key
    Stream stream;
    cudaGraphExec_t graph = nullptr;
    OrderingEvent before, after;
    std::int64_t replays = 0;
};

namespace {
// Ends the capture on every path: the allocator's pool redirection, the library's and CUDA's
// capture state. Returns the graph, or null when the capture failed.
cudaGraph_t end_capture(Stream stream, cudaError_t* status) {
    detail::set_graph_capture_underway(nullptr);
    detail::end_graph_capture(stream);
    cudaGraph_t graph = nullptr;
    *status = cudaStreamEndCapture(detail::to_cuda(stream), &graph);
    if (*status != cudaSuccess) cudaGetLastError();
    return graph;
}

// Captures one call of `step` on `stream` into `*graph_exec`; the pool's key is `&hooks`.
void capture(const std::function<void()>& step, Stream stream, detail::GraphCapture& hooks,
             cudaGraphExec_t* graph_exec) {
    detail::begin_graph_pool(stream, &hooks);
    detail::set_graph_capture_underway(&hooks);
    // Thread-local mode: a call of this thread that would break the capture (a synchronisation,
    // a synchronous copy) fails at once, while other threads' work is unaffected.
    const cudaError_t begun = cudaStreamBeginCapture(detail::to_cuda(stream), cudaStreamCaptureModeThreadLocal);
    if (begun != cudaSuccess) {
        detail::set_graph_capture_underway(nullptr);
        detail::end_graph_capture(stream);
        CONVKIT_CHECK_CUDA(begun);
    }
    cudaError_t status = cudaSuccess;
    try {
        step();
    } catch (...) {
        if (cudaGraph_t graph = end_capture(stream, &status)) cudaGraphDestroy(graph);
        hooks.clear_hooks();
        throw;
    }
    cudaGraph_t graph = end_capture(stream, &status);
    if (status != cudaSuccess) {
        hooks.clear_hooks();
        throw CudaError(detail::concat(
            "CapturedStep: the capture of the step failed (cudaStreamEndCapture: ", cudaGetErrorName(status),
            "): a call during the step broke it, such as a synchronisation or a "
            "synchronous copy made directly with the CUDA runtime"));
    }
    const cudaError_t instantiated = cudaGraphInstantiate(graph_exec, graph, 0);
    cudaGraphDestroy(graph);
    CONVKIT_CHECK_CUDA(instantiated);
}
}  // namespace

CapturedStep::CapturedStep(std::function<void()> step, CapturedStepOptions options) {
    CONVKIT_REQUIRE(static_cast<bool>(step), "CapturedStep", "the step is empty");
    CONVKIT_REQUIRE(options.warmup_steps >= 1, "CapturedStep", "warmup_steps must be at least 1, got ",
                    options.warmup_steps, " (an optimizer's first step creates state, which cannot be captured)");
    detail::require_cuda_device(options.device, "CapturedStep");
    CONVKIT_REQUIRE(!detail::graph_capture_underway(), "CapturedStep", "a capture is already under way on this thread");
    detail::CudaDeviceGuard guard(options.device);
    auto s = std::make_unique<State>(options.device);
    s->stream = capture_stream(options.device);
    const Stream caller = current_stream(options.device);
    s->before.order(caller, s->stream);
    try {
        StreamGuard on_graph_stream(s->stream);
        for (int i = 0; i < options.warmup_steps; ++i) step();
        try {
            capture(step, s->stream, s->capture, &s->graph);
        } catch (...) {
            detail::release_graph_pool(options.device, &s->capture);
            throw;
        }
    } catch (...) {
        s->after.order(s->stream, caller);  // the caller's later work follows the warm-up's
        throw;
    }
    s->after.order(s->stream, caller);
    state_ = std::move(s);
}

CapturedStep::~CapturedStep() {
    if (!state_) return;
    try {
        const int device = state_->capture.device();
        detail::CudaDeviceGuard guard(device);
        // The pool's blocks go back to the driver: the graph's replays must have finished.
        detail::wait_for_stream(detail::to_cuda(state_->stream), "CapturedStep destruction");
        cudaGraphExecDestroy(state_->graph);
        state_->capture.clear_hooks();  // they hold device tables of the pool
        detail::release_graph_pool(device, &state_->capture);
    } catch (...) {
        // A destructor must not throw; the pool stays reserved (lost, never reused unsafely).
    }
}

void CapturedStep::replay() {
    State& s = *state_;
    const int device = s.capture.device();
    detail::CudaDeviceGuard guard(device);
    const Stream caller = current_stream(device);
    s.before.order(caller, s.stream);
    {
        StreamGuard on_graph_stream(s.stream);
        s.capture.run_hooks_before_replay();
        CONVKIT_CHECK_CUDA(cudaGraphLaunch(s.graph, detail::to_cuda(s.stream)));
        s.capture.run_hooks_after_replay();
    }
    s.after.order(s.stream, caller);
    ++s.replays;
}

std::int64_t CapturedStep::replays() const {
    return state_->replays;
}

Stream CapturedStep::stream() const {
    return state_->stream;
}

std::size_t CapturedStep::pool_bytes() const {
    std::size_t bytes = 0;
    for (const auto& [pointer, size] : detail::graph_pool_blocks(state_->capture.device(), &state_->capture)) {
        bytes += size;
    }
    return bytes;
}

const void* CapturedStep::pool_key() const {
    return &state_->capture;
}

}  // namespace convkit
