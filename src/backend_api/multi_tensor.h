#pragma once
// How one kernel launch updates many tensors ("multi-tensor apply", as in apex and PyTorch's
// fused optimizers): the tensors of a table are cut into chunks of kMultiTensorChunk elements,
// block b updates one chunk of one tensor, and finds which by a binary search over the prefix
// sums of the tensors' chunk counts. The search is constexpr so the kernel and the host tests
// use the same code.
#include <cstdint>
#include <vector>

namespace convkit::detail {

// 256 threads x 8 elements: enough work per block to hide the search, few enough elements that
// a model of small tensors still spreads over every SM.
inline constexpr std::int64_t kMultiTensorChunk = 2048;

struct MultiTensorPlan {
    std::vector<std::int64_t> first_block;  // first_block[k]: blocks used by tensors 0..k-1
    std::int64_t blocks = 0;                // the launch's grid size
};

inline MultiTensorPlan plan_multi_tensor(const std::vector<std::int64_t>& numels,
                                         std::int64_t chunk = kMultiTensorChunk) {
    MultiTensorPlan plan;
    plan.first_block.reserve(numels.size());
    for (const std::int64_t n : numels) {
        plan.first_block.push_back(plan.blocks);
        plan.blocks += (n + chunk - 1) / chunk;
    }
    return plan;
}

// The tensor that block `block` works on: the last k with first_block[k] <= block (a tensor of
// no elements has the same first block as the next one and so is never chosen). `count` >= 1.
constexpr int tensor_of_block(const std::int64_t* first_block, int count, std::int64_t block) {
    int low = 0;
    int high = count - 1;
    while (low < high) {
        const int middle = low + (high - low + 1) / 2;
        if (first_block[middle] <= block) {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    return low;
}

}  // namespace convkit::detail
