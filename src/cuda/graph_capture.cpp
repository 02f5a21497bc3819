#include "cuda/graph_capture.h"

#include "convkit/error.h"

namespace convkit::detail {

namespace {
// One capture per thread at a time: CUDA's thread-local capture mode forbids the capturing
// thread the calls that would break it, and the library's own checks follow the same thread.
thread_local GraphCapture* capture_of_thread = nullptr;
}  // namespace

GraphCapture* graph_capture_underway(int device) {
    return capture_of_thread != nullptr && capture_of_thread->device() == device ? capture_of_thread : nullptr;
}

bool graph_capture_underway() {
    return capture_of_thread != nullptr;
}

void set_graph_capture_underway(GraphCapture* capture) {
    capture_of_thread = capture;
}

void refuse_in_graph_capture(int device, const std::string& what, const std::string& why) {
    if (graph_capture_underway(device) == nullptr) return;
    throw NotSupported(what + " cannot be captured in a CUDA graph (CapturedStep on cuda:" + std::to_string(device) +
                       "): " + why);
}

}  // namespace convkit::detail
