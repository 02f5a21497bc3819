#pragma once
// Pooling layers: MaxPool / AvgPool 1d-3d (PoolParams: kernel, stride defaulting to the kernel,
// padding, dilation, ceil_mode, count_include_pad), AdaptiveAvgPool 1d-3d, GlobalAvgPool.
#include <cstdint>
#include <vector>

#include "convkit/conv_params.h"
#include "convkit/nn/conv.h"
#include "convkit/nn/module.h"

namespace convkit::nn {

class Pool : public Module {
public:
    Pool(const PoolParams& params, PoolKind kind);
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override;
    std::string extra_repr() const override { return params_.to_string(); }
    const PoolParams& params() const { return params_; }

private:
    PoolParams params_;
    PoolKind kind_;
};

// PoolParams of a kernel (stride = kernel, as in PyTorch) for a layer of `rank` spatial dims.
PoolParams pool_params(int rank, const KernelSize& kernel);
// Throws InvalidArgument unless params.spatial_rank == rank.
void check_pool_rank(const char* layer, const PoolParams& params, int rank);

#define CONVKIT_POOL_LAYER(Name, rank, pool_kind)                                                   \
    class Name : public Pool {                                                                     \
    public:                                                                                        \
        explicit Name(const PoolParams& params) : Pool(params, pool_kind) {                        \
            check_pool_rank(#Name, params, rank);                                                  \
        }                                                                                          \
        explicit Name(const KernelSize& kernel) : Pool(pool_params(rank, kernel), pool_kind) {}    \
    };

CONVKIT_POOL_LAYER(MaxPool1d, 1, PoolKind::Max)
CONVKIT_POOL_LAYER(MaxPool2d, 2, PoolKind::Max)
CONVKIT_POOL_LAYER(MaxPool3d, 3, PoolKind::Max)
CONVKIT_POOL_LAYER(AvgPool1d, 1, PoolKind::Average)
CONVKIT_POOL_LAYER(AvgPool2d, 2, PoolKind::Average)
CONVKIT_POOL_LAYER(AvgPool3d, 3, PoolKind::Average)
#undef CONVKIT_POOL_LAYER

// Average pooling to a fixed output size, whatever the input size (PyTorch's AdaptiveAvgPoolNd).
class AdaptiveAvgPool : public Module {
public:
    explicit AdaptiveAvgPool(std::vector<std::int64_t> output_size);
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override;
    std::string extra_repr() const override;

private:
    std::vector<std::int64_t> output_size_;
};

// PyTorch's names, each checking its rank: AdaptiveAvgPool2d({7, 7}) or AdaptiveAvgPool2d(1).
#define CONVKIT_ADAPTIVE_POOL_LAYER(Name, rank)                                                    \
    class Name : public AdaptiveAvgPool {                                                         \
    public:                                                                                       \
        explicit Name(std::vector<std::int64_t> output_size)                                      \
            : AdaptiveAvgPool(adaptive_output_size(#Name, rank, std::move(output_size))) {}       \
        explicit Name(std::int64_t output_size)                                                   \
            : AdaptiveAvgPool(std::vector<std::int64_t>(rank, output_size)) {}                    \
    };
// `output_size` unless its length is not `rank` (InvalidArgument naming the layer).
std::vector<std::int64_t> adaptive_output_size(const char* layer, int rank, std::vector<std::int64_t> output_size);
CONVKIT_ADAPTIVE_POOL_LAYER(AdaptiveAvgPool1d, 1)
CONVKIT_ADAPTIVE_POOL_LAYER(AdaptiveAvgPool2d, 2)
CONVKIT_ADAPTIVE_POOL_LAYER(AdaptiveAvgPool3d, 3)
#undef CONVKIT_ADAPTIVE_POOL_LAYER

// One value per channel: [N, C, spatial...] -> [N, C, 1, ...].
class GlobalAvgPool : public Module {
public:
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "GlobalAvgPool"; }
};

}  // namespace convkit::nn
