#pragma once
// Opt-in timing of the backward pass, for benchmarks (bench/host_training_vs_torch.py): while a
// BackwardProfiler lives on a thread, every node that thread's backward() runs adds its wall
// time to the entry of its op name ("conv2d", "batch_norm2d", "accumulate_grad", ...); the
// engine's own sums of gradients of tensors used more than once are "(engine: gradient sums)".
// Without one, the engine pays one thread-local pointer test per node. Profilers nest: the
// innermost collects. Not in convkit.h: only benchmarks need it.
#include <cstdint>
#include <string>
#include <vector>

namespace convkit {

struct NodeTiming {
    std::string name;
    double seconds = 0;
    std::int64_t calls = 0;
};

class BackwardProfiler {
public:
    BackwardProfiler();
    ~BackwardProfiler();
    BackwardProfiler(const BackwardProfiler&) = delete;
    BackwardProfiler& operator=(const BackwardProfiler&) = delete;

    // One entry per name, in order of first appearance.
    const std::vector<NodeTiming>& timings() const { return timings_; }
    void clear() { timings_.clear(); }
    void add(const std::string& name, double seconds);

private:
    std::vector<NodeTiming> timings_;
    BackwardProfiler* previous_;
};

}  // namespace convkit
