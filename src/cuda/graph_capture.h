#pragma once
// The capture of a CUDA graph (CapturedStep, convkit/captured_step.h) as the rest of the library
// sees it: plain C++, so that ops and optimizers can ask whether their work is being captured.
// Whatever a captured step would otherwise bake into the graph as a value of capture time must
// either live in device memory that is refreshed before each replay (before_each_replay), or be
// refused with refuse_in_graph_capture: never silently replayed stale.
#include <functional>
#include <string>
#include <vector>

namespace convkit::detail {

class GraphCapture {
public:
    explicit GraphCapture(int device) : device_(device) {}
    int device() const { return device_; }
    // `hook` runs on the host before every replay of the graph, in the order added, with the
    // graph's stream current: it advances host state the step advances (an optimizer's step
    // counts) and enqueues the upload of device values that change per step (its coefficients).
    void before_each_replay(std::function<void()> hook) { before_.push_back(std::move(hook)); }
    // `hook` runs on the host after every replay has been enqueued, with the graph's stream
    // current: it enqueues work that must follow the replay (a deferred check's copy to the host).
    void after_each_replay(std::function<void()> hook) { after_.push_back(std::move(hook)); }
    void run_hooks_before_replay() const {
        for (const std::function<void()>& hook : before_) hook();
    }
    void run_hooks_after_replay() const {
        for (const std::function<void()>& hook : after_) hook();
    }
    void clear_hooks() {
        before_.clear();
        after_.clear();
    }

private:
    int device_;
    std::vector<std::function<void()>> before_, after_;
};

// The capture under way on this thread for `device`, or null.
GraphCapture* graph_capture_underway(int device);
// Whether any capture is under way on this thread.
bool graph_capture_underway();
// Sets (or, with null, clears) this thread's capture: CapturedStep's business only.
void set_graph_capture_underway(GraphCapture* capture);

// Throws NotSupported "<what> cannot be captured in a CUDA graph: <why>" while a capture is
// under way on this thread for `device`.
void refuse_in_graph_capture(int device, const std::string& what, const std::string& why);

}  // namespace convkit::detail
