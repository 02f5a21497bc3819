#pragma once
// Teams of threads that share one row of a row-wise op (softmax, cross-entropy): a single
// thread, a warp or a block. A row kernel is written once over a team type; the launcher picks
// the team by shape (kernels/softmax.h, row_team_for). Every member of a team walks the same
// rows, so team reductions are reached uniformly. Reductions are in a fixed order and every
// member gets the same bits, so results do not change from run to run.
#include <algorithm>
#include <cstdint>

#include "kernels/kernel_support.cuh"
#include "kernels/kernels_namespace.h"
#include "kernels/softmax.h"
#include "backend_api/softmax_math.h"

CONVKIT_KERNELS_BEGIN

struct MaxOrNanOp {
    template <typename T>
    __device__ T operator()(T a, T b) const {
        return detail::max_or_nan(a, b);
    }
};

// Butterfly reduction over a full warp, then lane 0's value to all lanes (max(+0, -0) is not
// symmetric in its sign, so lanes could otherwise disagree in the last bit).
template <typename T, typename Op>
__device__ T warp_all_reduce(T value, Op op) {
    for (int mask = kWarpSize / 2; mask > 0; mask /= 2) value = op(value, __shfl_xor_sync(0xffffffffu, value, mask));
    return __shfl_sync(0xffffffffu, value, 0);
}

struct ThreadTeam {
    static constexpr int kSize = 1;
    __device__ int lane() const { return 0; }
    __device__ std::int64_t first_row() const { return global_thread_index(); }
    __device__ std::int64_t row_stride() const { return global_thread_count(); }
    template <typename T, typename Op>
    __device__ T all_reduce(T value, Op) const {
        return value;
    }
};

struct WarpTeam {
    static constexpr int kSize = kWarpSize;
    __device__ int lane() const { return static_cast<int>(threadIdx.x) % kWarpSize; }
    __device__ std::int64_t first_row() const { return global_thread_index() / kWarpSize; }
    __device__ std::int64_t row_stride() const { return global_thread_count() / kWarpSize; }
    template <typename T, typename Op>
    __device__ T all_reduce(T value, Op op) const {
        return warp_all_reduce(value, op);
    }
};

struct BlockTeam {
    static constexpr int kSize = kThreadsPerBlock;
    __device__ int lane() const { return static_cast<int>(threadIdx.x); }
    __device__ std::int64_t first_row() const { return blockIdx.x; }
    __device__ std::int64_t row_stride() const { return gridDim.x; }
    // Warps reduce, then every thread combines the warps' results in the same order.
    template <typename T, typename Op>
    __device__ T all_reduce(T value, Op op) const {
        if (blockDim.x != kThreadsPerBlock) __trap();
        __shared__ T per_warp[kWarpsPerBlock];
        value = warp_all_reduce(value, op);
        __syncthreads();  // the previous call's results have been read
        if (threadIdx.x % kWarpSize == 0) per_warp[threadIdx.x / kWarpSize] = value;
        __syncthreads();
        T result = per_warp[0];
        for (int w = 1; w < kWarpsPerBlock; ++w) result = op(result, per_warp[w]);
        return result;
    }
};

// Blocks for `rows` rows handled by teams of Team: enough to cover them, capped (the row loops
// are grid-stride).
template <typename Team>
unsigned grid_for_rows(std::int64_t rows) {
    if constexpr (Team::kSize == kThreadsPerBlock) {
        return grid_stride_blocks(rows);
    } else {
        return grid_for(rows * Team::kSize);
    }
}

// Calls f(Team{}) for the team chosen for `team`.
template <typename F>
void dispatch_row_team(RowTeam team, F&& f) {
    switch (team) {
        case RowTeam::Thread:
            return f(ThreadTeam{});
        case RowTeam::Warp:
            return f(WarpTeam{});
        case RowTeam::Block:
            return f(BlockTeam{});
    }
}

CONVKIT_KERNELS_END
