#include "convkit/nn/summary.h"

#include <iomanip>
#include <map>
#include <sstream>

#include "convkit/autograd.h"
#include "nn/summary_recorder.h"

namespace convkit::nn {

namespace detail {
namespace {
thread_local SummaryRecorder* tls_recorder = nullptr;
}
SummaryRecorder* active_summary_recorder() {
    return tls_recorder;
}
SummaryRecorderScope::SummaryRecorderScope(SummaryRecorder* recorder) : previous_(tls_recorder) {
    tls_recorder = recorder;
}
SummaryRecorderScope::~SummaryRecorderScope() {
    tls_recorder = previous_;
}
}  // namespace detail

namespace {
std::string with_thousands(std::int64_t n) {
    const std::string digits = std::to_string(n);
    std::string grouped;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) grouped.push_back(',');
        grouped.push_back(digits[i]);
    }
    return grouped;
}

class ModeRestorer {
public:
    explicit ModeRestorer(Module& model) : model_(model), training_(model.is_training()) { model.eval(); }
    ~ModeRestorer() { model_.train(training_); }
    ModeRestorer(const ModeRestorer&) = delete;
    ModeRestorer& operator=(const ModeRestorer&) = delete;

private:
    Module& model_;
    bool training_;
};
}  // namespace

std::vector<LayerCall> trace(Module& model, const Shape& input_shape, DType dtype, Device device) {
    std::map<const Module*, std::string> names{{&model, "(model)"}};
    for (const auto& [name, module] : model.named_modules()) names[module] = name;
    detail::SummaryRecorder recorder;
    {
        ModeRestorer eval_mode(model);
        NoGradGuard no_grad;
        detail::SummaryRecorderScope scope(&recorder);
        (void)model(Tensor::zeros(input_shape, dtype, device));
    }
    std::vector<LayerCall> calls = recorder.take_calls();
    for (LayerCall& call : calls) {
        const auto found = names.find(call.module);
        call.name = found == names.end() ? "(unregistered)" : found->second;
    }
    return calls;
}

std::string summary(Module& model, const Shape& input_shape, DType dtype, Device device) {
    const std::vector<LayerCall> calls = trace(model, input_shape, dtype, device);
    const Shape output_shape = calls.empty() ? Shape{} : calls.front().output;

    std::ostringstream out;
    out << std::left << std::setw(40) << "Layer (type)" << std::setw(24) << "Output shape" << std::right
        << std::setw(14) << "Param #" << std::setw(12) << "MFLOPs"
        << "\n"
        << std::string(90, '-') << "\n";
    std::int64_t total_flops = 0;
    std::int64_t activation_bytes = 0;
    for (const LayerCall& row : calls) {
        std::ostringstream label;
        label << std::setw(2 * row.depth) << "" << row.name << " (" << row.module->type_name() << ")";
        std::int64_t own = 0;
        for (const Tensor& p : row.module->parameters(false)) own += p.numel();
        const std::int64_t flops = row.module->flops(row.input, row.output);
        total_flops += flops;
        // A leaf's output is what training keeps for backward (roughly: in-place ops aside); a
        // container's output is its last child's, so only leaves count toward activation memory.
        if (row.module->named_children().empty()) {
            activation_bytes += row.output.numel() * static_cast<std::int64_t>(dtype_size(row.dtype));
        }
        std::ostringstream mflops;
        if (flops > 0) mflops << std::fixed << std::setprecision(1) << static_cast<double>(flops) / 1e6;
        out << std::left << std::setw(40) << label.str() << std::setw(24) << row.output.to_string() << std::right
            << std::setw(14) << with_thousands(own) << std::setw(12) << mflops.str() << "\n";
    }
    out << std::string(90, '-') << "\n"
        << "Input shape: " << input_shape.to_string() << "   Output shape: " << output_shape.to_string() << "\n"
        << "Total params: " << with_thousands(model.parameter_count()) << "\n"
        << "Trainable params: " << with_thousands(model.parameter_count(true)) << "\n"
        << std::fixed << std::setprecision(3) << "Forward GFLOPs: " << static_cast<double>(total_flops) / 1e9
        << " (convolutions and linear layers, a multiply-add counted as 2)\n"
        << std::setprecision(2) << "Activation memory: " << static_cast<double>(activation_bytes) / (1 << 20)
        << " MiB (every layer's output at this batch size, kept for backward when training)\n";
    return out.str();
}

}  // namespace convkit::nn
