#pragma once
// How work reaches a stream of the emulated CUDA device (CONVKIT_EMULATED_DEVICE): kernel
// launches (kernels/launch.cuh) hand their grid to enqueue_on_stream, which runs it at once or,
// while the stream captures a CUDA graph, records it to run when the graph is launched.
#include <cuda_runtime_api.h>

#include <functional>

namespace convkit::emu {

// cudaErrorInvalidResourceHandle for a stream that does not exist, and
// cudaErrorStreamCaptureInvalidated while the stream's capture is invalidated (the work is then
// dropped, as CUDA drops it).
cudaError_t enqueue_on_stream(cudaStream_t stream, std::function<void()> work);

}  // namespace convkit::emu
