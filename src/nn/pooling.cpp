#include "convkit/nn/pooling.h"

#include "convkit/ops/pool.h"
#include "core/check.h"

namespace convkit::nn {

PoolParams pool_params(int rank, const KernelSize& kernel) {
    const auto& k = kernel.sizes;
    CONVKIT_REQUIRE(k.size() == 1 || static_cast<int>(k.size()) == rank, "pooling layer", "kernel size needs 1 or ",
                    rank, " values, got ", k.size());
    PoolParams params(rank, k[0]);
    for (int d = 0; d < rank; ++d) {
        const std::int64_t size = k.size() == 1 ? k[0] : k[static_cast<std::size_t>(d)];
        params.kernel[static_cast<std::size_t>(d)] = size;
        params.stride[static_cast<std::size_t>(d)] = size;
    }
    return params;
}

void check_pool_rank(const char* layer, const PoolParams& params, int rank) {
    CONVKIT_REQUIRE(params.spatial_rank == rank, layer, "params.spatial_rank is ", params.spatial_rank,
                    " but the layer has ", rank, " spatial dims");
}

Pool::Pool(const PoolParams& params, PoolKind kind) : params_(params), kind_(kind) {}

Tensor Pool::forward(const Tensor& input) {
    return kind_ == PoolKind::Max ? max_pool_forward(input, params_) : avg_pool_forward(input, params_);
}

std::string Pool::type_name() const {
    return (kind_ == PoolKind::Max ? "MaxPool" : "AvgPool") + std::to_string(params_.spatial_rank) + "d";
}

AdaptiveAvgPool::AdaptiveAvgPool(std::vector<std::int64_t> output_size) : output_size_(std::move(output_size)) {
    CONVKIT_REQUIRE(!output_size_.empty() && output_size_.size() <= 3, "AdaptiveAvgPool",
                    "output_size needs 1 to 3 values, got ", output_size_.size());
}

std::vector<std::int64_t> adaptive_output_size(const char* layer, int rank, std::vector<std::int64_t> output_size) {
    CONVKIT_REQUIRE(static_cast<int>(output_size.size()) == rank, layer, "output_size needs ", rank, " values, got ",
                    output_size.size());
    return output_size;
}

Tensor AdaptiveAvgPool::forward(const Tensor& input) { return adaptive_avg_pool_forward(input, output_size_); }

std::string AdaptiveAvgPool::type_name() const { return "AdaptiveAvgPool" + std::to_string(output_size_.size()) + "d"; }

std::string AdaptiveAvgPool::extra_repr() const { return "output_size=" + Shape(output_size_).to_string(); }

Tensor GlobalAvgPool::forward(const Tensor& input) { return global_avg_pool_forward(input); }

}  // namespace convkit::nn
