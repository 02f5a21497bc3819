#pragma once
// Losses as objects, by the names LibTorch users look for (torch::nn::CrossEntropyLoss, ...):
// the options once, then loss(input, target). Each calls its function in convkit/ops/loss.h,
// which documents the semantics; a loss has no parameters, so it is not a Module.
//
//   nn::CrossEntropyLoss criterion({.label_smoothing = 0.1});
//   Tensor loss = criterion(model(images), labels);
#include <cstdint>

#include "convkit/ops/loss.h"
#include "convkit/tensor.h"

namespace convkit::nn {

struct CrossEntropyLossOptions {
    double label_smoothing = 0.0;
    Reduction reduction = Reduction::Mean;
    std::int64_t ignore_index = -100;
};

class CrossEntropyLoss {
public:
    explicit CrossEntropyLoss(const CrossEntropyLossOptions& options = {}) : options_(options) {}
    Tensor operator()(const Tensor& logits, const Tensor& targets) const {
        return cross_entropy(logits, targets, options_.label_smoothing, options_.reduction, options_.ignore_index);
    }
    const CrossEntropyLossOptions& options() const { return options_; }

private:
    CrossEntropyLossOptions options_;
};

class MSELoss {
public:
    explicit MSELoss(Reduction reduction = Reduction::Mean) : reduction_(reduction) {}
    Tensor operator()(const Tensor& input, const Tensor& target) const { return mse_loss(input, target, reduction_); }

private:
    Reduction reduction_;
};

struct BCEWithLogitsLossOptions {
    Reduction reduction = Reduction::Mean;
    Tensor pos_weight;  // undefined: none
};

class BCEWithLogitsLoss {
public:
    explicit BCEWithLogitsLoss(BCEWithLogitsLossOptions options = {}) : options_(std::move(options)) {}
    Tensor operator()(const Tensor& logits, const Tensor& targets) const {
        return binary_cross_entropy_with_logits(logits, targets, options_.reduction, options_.pos_weight);
    }

private:
    BCEWithLogitsLossOptions options_;
};

}  // namespace convkit::nn
