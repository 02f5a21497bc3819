#pragma once
// What summary() collects while it runs a model: each module call in call order, its depth in
// the call tree, its input shape and dtype and its output shape. Module::operator() reports to the recorder of its thread.
#include <cstddef>
#include <vector>

#include "convkit/nn/module.h"

namespace convkit::nn::detail {

struct SummaryRow {
    const Module* module = nullptr;
    int depth = 0;
    Shape input;
    DType dtype = DType::Float32;
    Shape output;
};

class SummaryRecorder {
public:
    std::size_t enter(const Module* module, const Shape& input, DType dtype) {
        rows_.push_back({module, depth_++, input, dtype, Shape{}});
        return rows_.size() - 1;
    }
    void leave(std::size_t row, const Shape& output) {
        rows_[row].output = output;
        --depth_;
    }
    const std::vector<SummaryRow>& rows() const { return rows_; }

private:
    std::vector<SummaryRow> rows_;
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
