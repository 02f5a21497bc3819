#pragma once
// BatchNorm1d/2d/3d with PyTorch's parameters, buffers and names: weight, bias (affine),
// running_mean, running_var, num_batches_tracked (track_running_stats). Training mode
// normalises with the batch's statistics and updates the running ones; evaluation uses the
// running ones (see convkit/ops/norm.h for the arithmetic).
#include <optional>

#include "convkit/nn/module.h"

namespace convkit::nn {

struct BatchNormOptions {
    double eps = 1e-5;
    // The weight of a new batch in the running statistics; nullopt: a cumulative average
    // (momentum 1 / num_batches_tracked), as PyTorch's momentum=None.
    std::optional<double> momentum = 0.1;
    bool affine = true;
    bool track_running_stats = true;
};

class BatchNorm : public Module {
public:
    BatchNorm(int spatial_rank, std::int64_t num_features, const BatchNormOptions& options);
    Tensor forward(const Tensor& input) override;
    // relu(forward(input)) as one op (batch_norm_relu: fused on CUDA, the composition on the
    // host), for a BatchNorm followed by a ReLU; summary() records it as this layer's call.
    Tensor forward_relu(const Tensor& input);
    std::string type_name() const override { return "BatchNorm" + std::to_string(spatial_rank_) + "d"; }
    std::string extra_repr() const override;

    std::int64_t num_features() const { return num_features_; }
    const BatchNormOptions& options() const { return options_; }
    Tensor weight() const { return weight_ ? *weight_ : Tensor(); }
    Tensor bias() const { return bias_ ? *bias_ : Tensor(); }
    Tensor running_mean() const { return running_mean_ ? *running_mean_ : Tensor(); }
    Tensor running_var() const { return running_var_ ? *running_var_ : Tensor(); }

protected:
    void state_loaded() override { batches_tracked_ = -1; }

private:
    std::int64_t count_batch();  // increments num_batches_tracked, returns the new count
    Tensor normalize(const Tensor& input, bool relu);

    int spatial_rank_;
    std::int64_t num_features_;
    BatchNormOptions options_;
    Tensor* weight_ = nullptr;
    Tensor* bias_ = nullptr;
    Tensor* running_mean_ = nullptr;
    Tensor* running_var_ = nullptr;
    Tensor* num_batches_tracked_ = nullptr;
    // A host copy of num_batches_tracked, so counting needs no device round trip; -1 after a
    // load, when it is read back once.
    std::int64_t batches_tracked_ = 0;
};

class BatchNorm1d : public BatchNorm {
public:
    explicit BatchNorm1d(std::int64_t num_features, const BatchNormOptions& options = {})
        : BatchNorm(1, num_features, options) {}
};
class BatchNorm2d : public BatchNorm {
public:
    explicit BatchNorm2d(std::int64_t num_features, const BatchNormOptions& options = {})
        : BatchNorm(2, num_features, options) {}
};
class BatchNorm3d : public BatchNorm {
public:
    explicit BatchNorm3d(std::int64_t num_features, const BatchNormOptions& options = {})
        : BatchNorm(3, num_features, options) {}
};

}  // namespace convkit::nn
