// Softmax, log-softmax and the losses.
//   "softmax", "log_softmax": input; "dim"
//   "cross_entropy": input (logits), target (int64); label_smoothing, reduction, ignore_index
//   "mse_loss": input, target; reduction
//   "binary_cross_entropy_with_logits": input, target, optional pos_weight; reduction
#include "convkit/ops/loss.h"
#include "convkit/ops/softmax.h"
#include "torch_diff/torch_diff.h"

namespace torch_diff {

namespace {

convkit::Reduction reduction_from(const Case& c) {
    const std::string name = c.text_or("reduction", "mean");
    if (name == "none") return convkit::Reduction::None;
    if (name == "mean") return convkit::Reduction::Mean;
    if (name == "sum") return convkit::Reduction::Sum;
    throw CaseError("unknown reduction '" + name + "'");
}

Run softmax(Case& c) { return {convkit::softmax(c.input("input"), static_cast<int>(c.integer("dim"))), {}}; }

Run log_softmax(Case& c) {
    return {convkit::log_softmax(c.input("input"), static_cast<int>(c.integer("dim"))), {}};
}

Run cross_entropy(Case& c) {
    return {convkit::cross_entropy(c.input("input"), c.input("target"), c.number_or("label_smoothing", 0.0),
                                   reduction_from(c), c.integer_or("ignore_index", -100)),
            {}};
}

Run mse_loss(Case& c) { return {convkit::mse_loss(c.input("input"), c.input("target"), reduction_from(c)), {}}; }

Run bce_with_logits(Case& c) {
    return {convkit::binary_cross_entropy_with_logits(c.input("input"), c.input("target"), reduction_from(c),
                                                      c.optional_input("pos_weight")),
            {}};
}

}  // namespace

void register_softmax_loss_ops(OpTable& table) {
    table["softmax"] = softmax;
    table["log_softmax"] = log_softmax;
    table["cross_entropy"] = cross_entropy;
    table["mse_loss"] = mse_loss;
    table["binary_cross_entropy_with_logits"] = bce_with_logits;
}

}  // namespace torch_diff
