#pragma once
// What nn::trace() collects while it runs a model: each module call in call order, with its
// depth in the call tree, input shape and dtype and output shape (the name is filled in by
// trace()). Module::operator() reports to the recorder of its thread.
#include <cstddef>
#include <vector>

#include "convkit/nn/module.h"
#include "convkit/nn/summary.h"

namespace convkit::nn::detail {

class SummaryRecorder {
public:
    std::size_t enter(const Module* module, const Shape& input, DType dtype) {
        calls_.push_back({.module = module, .depth = depth_++, .input = input, .output = Shape{}, .dtype = dtype});
        return calls_.size() - 1;
    }
    void leave(std::size_t call, const Shape& output) {
        calls_[call].output = output;
        --depth_;
    }
    std::vector<LayerCall> take_calls() { return std::move(calls_); }

private:
    std::vector<LayerCall> calls_;
    int depth_ = 0;
};

// The recorder of the calling thread, or null outside summary().
SummaryRecorder* active_summary_recorder();

class SummaryRecorderScope {
public:
    explicit SummaryRecorderScope(SummaryRecorder* recorder);
    ~SummaryRecorderScope();
    SummaryRecorderScope(const SummaryRecorderScope&) = delete;
    SummaryRecorderScope& operator=(const SummaryRecorderScope&) = delete;

private:
    SummaryRecorder* previous_;
};

}  // namespace convkit::nn::detail
