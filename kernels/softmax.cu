// Softmax and log-softmax, forward and backward, one row per team of threads (row_team.cuh).
// The arithmetic is ops/softmax_math.h's, shared with the host reference. float32 rows take
// their max and exponentials in float and sum in double, so long rows lose nothing to the sum.
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/row_team.cuh"
#include "kernels/softmax.h"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::SoftmaxGeometry;
using detail::SoftmaxKind;

template <typename Team, typename T>
__global__ void softmax_forward_kernel(SoftmaxKind kind, SoftmaxGeometry g, const T* x, T* y) {
    const Team team;
    for (std::int64_t row = team.first_row(); row < g.rows(); row += team.row_stride()) {
        const std::int64_t start = g.row_start(row);
        T max = -INFINITY;
        for (std::int64_t k = team.lane(); k < g.dim; k += Team::kSize)
            max = detail::max_or_nan(max, x[g.element(start, k)]);
        max = team.all_reduce(max, MaxOrNanOp{});
        double sum = 0;
        for (std::int64_t k = team.lane(); k < g.dim; k += Team::kSize)
            sum += detail::softmax_term(x[g.element(start, k)], max);
        const T row_sum = static_cast<T>(team.all_reduce(sum, SumOp{}));
        for (std::int64_t k = team.lane(); k < g.dim; k += Team::kSize) {
            const std::int64_t i = g.element(start, k);
            y[i] = detail::softmax_output(kind, x[i], max, row_sum);
        }
    }
}

template <typename Team, typename T>
__global__ void softmax_backward_kernel(SoftmaxKind kind, SoftmaxGeometry g, const T* dy, const T* y, T* dx) {
    const Team team;
    for (std::int64_t row = team.first_row(); row < g.rows(); row += team.row_stride()) {
        const std::int64_t start = g.row_start(row);
        double sum = 0;
        for (std::int64_t k = team.lane(); k < g.dim; k += Team::kSize) {
            const std::int64_t i = g.element(start, k);
            sum += detail::softmax_backward_term(kind, dy[i], y[i]);
        }
        const T row_sum = static_cast<T>(team.all_reduce(sum, SumOp{}));
        for (std::int64_t k = team.lane(); k < g.dim; k += Team::kSize) {
            const std::int64_t i = g.element(start, k);
            dx[i] = detail::softmax_input_gradient(kind, dy[i], y[i], row_sum);
        }
    }
}
}  // namespace

RowTeam row_team_for(const SoftmaxGeometry& g) {
    // Below this many rows a thread per row leaves most of a large GPU idle.
    constexpr std::int64_t kRowsToFillTheGpu = 65536;
    if (g.inner == 1) {
        if (g.dim <= 8) return RowTeam::Thread;
        return g.dim <= 1024 ? RowTeam::Warp : RowTeam::Block;
    }
    return g.dim <= 32 || g.rows() >= kRowsToFillTheGpu ? RowTeam::Thread : RowTeam::Block;
}

const char* row_team_name(RowTeam team) {
    switch (team) {
        case RowTeam::Thread:
            return "thread";
        case RowTeam::Warp:
            return "warp";
        case RowTeam::Block:
            return "block";
    }
    return "team";
}

void softmax_forward(SoftmaxKind kind, const SoftmaxGeometry& g, DType dtype, const void* x, void* y, Stream stream) {
    if (g.count() == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        dispatch_row_team(row_team_for(g), [&](auto team) {
            using Team = decltype(team);
            launch<softmax_forward_kernel<Team, T>>({grid_for_rows<Team>(g.rows()), kThreadsPerBlock}, s, kind, g,
                                                    static_cast<const T*>(x), static_cast<T*>(y));
        });
    });
}

void softmax_backward(SoftmaxKind kind, const SoftmaxGeometry& g, DType dtype, const void* dy, const void* y, void* dx,
                      Stream stream) {
    if (g.count() == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        dispatch_row_team(row_team_for(g), [&](auto team) {
            using Team = decltype(team);
            launch<softmax_backward_kernel<Team, T>>({grid_for_rows<Team>(g.rows()), kThreadsPerBlock}, s, kind, g,
                                                     static_cast<const T*>(dy), static_cast<const T*>(y),
                                                     static_cast<T*>(dx));
        });
    });
}

CONVKIT_KERNELS_END
