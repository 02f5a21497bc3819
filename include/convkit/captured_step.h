#pragma once
// A training step captured once as a CUDA graph and replayed (issue #15, "Framework overhead"):
// the host work of a step (autograd, argument checks, variant choice, kernel launches) is done
// once, at capture; each replay() is one graph launch. As torch.cuda.CUDAGraph, for a model of
// static shapes:
//
//   Tensor images = Tensor::empty({batch, 1, 28, 28}, DType::Float32, Device::cuda());  // static
//   Tensor labels = Tensor::empty({batch}, DType::Int64, Device::cuda());                // inputs
//   images.copy_(first.inputs); labels.copy_(first.targets);
//   Tensor loss;
//   CapturedStep step([&] {
//       optimizer.zero_grad();
//       loss = cross_entropy(model(images), labels);
//       loss.backward();
//       optimizer.step();
//   });                       // runs the step eagerly (warm-up), then captures it
//   for (each later batch) { images.copy_(b.inputs); labels.copy_(b.targets); step.replay(); schedule.step(); }
//
// The warm-up runs are real steps; the capture itself runs nothing. Tensors the step creates
// (`loss` above) are written in place by every replay. What changes per step lives in device
// memory that is refreshed before each replay: the optimizers' step counts, bias corrections and
// learning rate (so schedulers work) are uploaded by the optimizer's replay hook, and the inputs
// are the static tensors the caller copies into. What cannot be replayed correctly is refused at
// capture with a NotSupported naming it: a host wait or a read of a device value (item(),
// to(host), synchronize), a copy from host memory, the functional dropout() given a seed (the
// nn::Dropout module draws a new seed per replay into device memory and is fine), GradScaler's
// loss scaling, BatchNorm with momentum=None, and an optimizer's first step (run a warm-up first).
//
// Memory the step allocates during capture comes from a pool private to the graph, kept while the
// graph lives and never handed to other tensors; blocks freed during capture join it, since the
// graph's work may still use them. The model, the optimizer and the static tensors must outlive
// the CapturedStep. No CUDA header is needed to use it.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "convkit/device.h"

namespace convkit {

struct CapturedStepOptions {
    int device = 0;
    // Eager runs of the step before the capture, at least 1: they create the optimizer's state,
    // choose variants and fill the allocator's cache, which a capture cannot do.
    int warmup_steps = 1;
};

class CapturedStep {
public:
    explicit CapturedStep(std::function<void()> step, CapturedStepOptions options = {});
    ~CapturedStep();
    CapturedStep(const CapturedStep&) = delete;
    CapturedStep& operator=(const CapturedStep&) = delete;

    // Runs the captured step once more, ordered after the work already enqueued on the caller's
    // current stream and before the work enqueued there after it. The host does not wait.
    void replay();
    std::int64_t replays() const;
    // The stream the step was captured and is replayed on (the legacy default stream cannot
    // capture).
    Stream stream() const;
    // Bytes of device memory in the graph's private pool.
    std::size_t pool_bytes() const;
    // The pool's key in the caching allocator, for tests of its privacy.
    const void* pool_key() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace convkit
