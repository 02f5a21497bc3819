// Loss kernels: cross-entropy one row per team of threads (row_team.cuh, chosen as for
// softmax), the pointwise losses one thread per element; each forward kernel also sums its
// block's losses (block_sum), and a one-block kernel finishes the reduction. The arithmetic is
// ops/loss_math.h's, shared with the host reference.
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "kernels/loss.h"
#include "kernels/row_team.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::BroadcastGeometry;
using detail::CrossEntropyParams;
using detail::PointwiseLoss;

template <typename Team, typename T>
__global__ void cross_entropy_forward_kernel(CrossEntropyParams p, const T* x, const std::int64_t* targets,
                                             T* row_losses, T* row_lse, double* partial_sums, double* partial_counts,
                                             unsigned long long* first_invalid_row) {
    const Team team;
    const detail::SoftmaxGeometry& g = p.g;
    double sum = 0;  // of this thread's rows (lane 0 of a team holds them all)
    double counted = 0;
    for (std::int64_t row = team.first_row(); row < g.rows(); row += team.row_stride()) {
        const std::int64_t start = g.row_start(row);
        T max = -INFINITY;
        for (std::int64_t k = team.lane(); k < g.dim; k += Team::kSize)
            max = detail::max_or_nan(max, x[g.element(start, k)]);
        max = team.all_reduce(max, MaxOrNanOp{});
        double exp_sum = 0;
        for (std::int64_t k = team.lane(); k < g.dim; k += Team::kSize)
            exp_sum += detail::softmax_term(x[g.element(start, k)], max);
        exp_sum = team.all_reduce(exp_sum, SumOp{});
        double logit_sum = 0;
        if (p.label_smoothing > 0) {
            for (std::int64_t k = team.lane(); k < g.dim; k += Team::kSize) logit_sum += x[g.element(start, k)];
            logit_sum = team.all_reduce(logit_sum, SumOp{});
        }
        if (team.lane() != 0) continue;
        const double lse = static_cast<double>(max) + log(exp_sum);
        row_lse[row] = static_cast<T>(lse);
        const std::int64_t target = targets[row];
        double loss = 0;
        if (!p.ignored(target)) {
            if (p.valid(target)) {
                loss = detail::cross_entropy_row_loss<double>(p, lse, x[g.element(start, target)], logit_sum);
                sum += loss;
                counted += 1;
            } else {
                atomicMin(first_invalid_row, static_cast<unsigned long long>(row));
                loss = NAN;
            }
        }
        if (row_losses != nullptr) row_losses[row] = static_cast<T>(loss);
    }
    const double block_total = block_sum(sum);
    const double block_counted = block_sum(counted);
    if (threadIdx.x == 0) {
        partial_sums[blockIdx.x] = block_total;
        partial_counts[blockIdx.x] = block_counted;
    }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(CrossEntropyParams p, const T* dy, bool per_row, double scale,
                                              const double* counted_rows, const T* x, const std::int64_t* targets,
                                              const T* row_lse, T* dx) {
    if (counted_rows != nullptr) scale = 1.0 / *counted_rows;  // as the host's 1.0 / count
    for (std::int64_t i = global_thread_index(); i < p.g.count(); i += global_thread_count()) {
        const std::int64_t row = p.g.row_of(i);
        const std::int64_t target = targets[row];
        if (p.ignored(target) || !p.valid(target)) {
            dx[i] = T(0);
            continue;
        }
        const T row_gradient = detail::element_gradient(dy, per_row, row, scale);
        dx[i] =
            detail::cross_entropy_logit_gradient(p, row_gradient, x[i], row_lse[row], p.g.position_in_row(i) == target);
    }
}

template <PointwiseLoss kLoss, bool kReduce, typename T>
__global__ void pointwise_loss_forward_kernel(BroadcastGeometry g, const T* x, const T* t, const T* pos_weight, T* out,
                                              double* partial_sums) {
    double sum = 0;
    for (std::int64_t i = global_thread_index(); i < g.count; i += global_thread_count()) {
        const T weight = pos_weight != nullptr ? pos_weight[detail::broadcast_offsets(g, i).b] : T(1);
        const T value = detail::pointwise_loss_value<kLoss>(x[i], t[i], weight);
        if constexpr (kReduce) {
            sum += value;
        } else {
            out[i] = value;
        }
    }
    if constexpr (kReduce) {
        const double block_total = block_sum(sum);
        if (threadIdx.x == 0) partial_sums[blockIdx.x] = block_total;
    }
}

template <PointwiseLoss kLoss, typename T>
__global__ void pointwise_loss_backward_kernel(BroadcastGeometry g, const T* dy, bool per_element, double scale,
                                               const T* x, const T* t, const T* pos_weight, T* dx, T* dt) {
    for (std::int64_t i = global_thread_index(); i < g.count; i += global_thread_count()) {
        const T gradient = detail::element_gradient(dy, per_element, i, scale);
        const T weight = pos_weight != nullptr ? pos_weight[detail::broadcast_offsets(g, i).b] : T(1);
        const detail::PointwiseGradients<T> d = detail::pointwise_loss_gradients<kLoss>(x[i], t[i], weight);
        if (dx != nullptr) dx[i] = gradient * d.input;
        if (dt != nullptr) dt[i] = gradient * d.target;
    }
}

// One block: sums the blocks' partial sums (and counts) in order; divides for Mean by the
// counted rows when counts are given, else by `count`. Writes `out` and `total_count` if given,
// and the target of `invalid`'s row when it names one.
template <typename T>
__global__ void finish_reduction_kernel(const double* partial_sums, const double* partial_counts, std::int64_t blocks,
                                        Reduction reduction, double count, T* out, double* total_count,
                                        const std::int64_t* targets, detail::DeviceErrorSlot* invalid) {
    double sum = 0;
    double counted = 0;
    for (std::int64_t b = threadIdx.x; b < blocks; b += blockDim.x) {
        sum += partial_sums[b];
        if (partial_counts != nullptr) counted += partial_counts[b];
    }
    sum = block_sum(sum);
    counted = block_sum(counted);
    if (threadIdx.x != 0) return;
    const double divisor = partial_counts != nullptr ? counted : count;
    if (out != nullptr) out[0] = static_cast<T>(reduction == Reduction::Mean ? sum / divisor : sum);
    if (total_count != nullptr) *total_count = counted;
    if (invalid != nullptr && invalid->index != detail::kNoDeviceError) invalid->value = targets[invalid->index];
}
}  // namespace

void cross_entropy_forward(const CrossEntropyParams& p, Reduction reduction, DType dtype, const void* logits,
                           const std::int64_t* targets, void* out, void* row_lse, CrossEntropyDeviceStatus* status,
                           Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    const RowTeam team = row_team_for(p.g);
    unsigned blocks = 0;
    dispatch_row_team(team, [&](auto t) { blocks = grid_for_rows<decltype(t)>(p.g.rows()); });
    // Released when this returns: the caching allocator reuses it only behind this stream's work.
    const std::shared_ptr<void> scratch = detail::allocate_cuda(2 * sizeof(double) * blocks, stream);
    auto* partial_sums = static_cast<double*>(scratch.get());
    double* partial_counts = partial_sums + blocks;
    CONVKIT_CHECK_CUDA(cudaMemsetAsync(&status->invalid_target.index, 0xff, sizeof(status->invalid_target.index), s));
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* x = static_cast<const T*>(logits);
        T* result = static_cast<T*>(out);
        dispatch_row_team(team, [&](auto team_tag) {
            using Team = decltype(team_tag);
            launch<cross_entropy_forward_kernel<Team, T>>(
                {blocks, kThreadsPerBlock}, s, p, x, targets, reduction == Reduction::None ? result : nullptr,
                static_cast<T*>(row_lse), partial_sums, partial_counts, &status->invalid_target.index);
        });
        launch<finish_reduction_kernel<T>>({1, kThreadsPerBlock}, s, partial_sums, partial_counts, blocks, reduction,
                                           0.0, reduction == Reduction::None ? nullptr : result, &status->counted_rows,
                                           targets, &status->invalid_target);
    });
}

void cross_entropy_backward(const CrossEntropyParams& p, DType dtype, const void* grad_output, bool per_row,
                            double scale, const double* counted_rows, const void* logits, const std::int64_t* targets,
                            const void* row_lse, void* grad_logits, Stream stream) {
    if (p.g.count() == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        launch<cross_entropy_backward_kernel<T>>({grid_for(p.g.count()), kThreadsPerBlock}, s, p,
                                                 static_cast<const T*>(grad_output), per_row, scale, counted_rows,
                                                 static_cast<const T*>(logits), targets, static_cast<const T*>(row_lse),
                                                 static_cast<T*>(grad_logits));
    });
}

void pointwise_loss_forward(PointwiseLoss loss, Reduction reduction, const BroadcastGeometry& g, DType dtype,
                            const void* input, const void* target, const void* pos_weight, void* out, Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    const unsigned blocks = grid_for(g.count);
    const bool reduce = reduction != Reduction::None;
    if (!reduce && g.count == 0) return;
    // Released when this returns: the caching allocator reuses it only behind this stream's work.
    std::shared_ptr<void> scratch;
    if (reduce) scratch = detail::allocate_cuda(sizeof(double) * blocks, stream);
    auto* partial_sums = static_cast<double*>(scratch.get());
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* x = static_cast<const T*>(input);
        const T* t = static_cast<const T*>(target);
        const T* pw = static_cast<const T*>(pos_weight);
        T* result = static_cast<T*>(out);
        detail::dispatch_pointwise_loss(loss, [&](auto loss_constant) {
            constexpr PointwiseLoss kLoss = decltype(loss_constant)::value;
            if (reduce) {
                launch<pointwise_loss_forward_kernel<kLoss, true, T>>({blocks, kThreadsPerBlock}, s, g, x, t, pw,
                                                                      nullptr, partial_sums);
                launch<finish_reduction_kernel<T>>({1, kThreadsPerBlock}, s, partial_sums, nullptr, blocks, reduction,
                                                   static_cast<double>(g.count), result, nullptr, nullptr, nullptr);
            } else {
                launch<pointwise_loss_forward_kernel<kLoss, false, T>>({blocks, kThreadsPerBlock}, s, g, x, t, pw,
                                                                       result, nullptr);
            }
        });
    });
}

void pointwise_loss_backward(PointwiseLoss loss, const BroadcastGeometry& g, DType dtype, const void* grad_output,
                             bool per_element, double scale, const void* input, const void* target,
                             const void* pos_weight, void* grad_input, void* grad_target, Stream stream) {
    if (g.count == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    dispatch_float_types(dtype, [&](auto zero) {
        using T = decltype(zero);
        detail::dispatch_pointwise_loss(loss, [&](auto loss_constant) {
            constexpr PointwiseLoss kLoss = decltype(loss_constant)::value;
            launch<pointwise_loss_backward_kernel<kLoss, T>>(
                {grid_for(g.count), kThreadsPerBlock}, s, g, static_cast<const T*>(grad_output), per_element, scale,
                static_cast<const T*>(input), static_cast<const T*>(target), static_cast<const T*>(pos_weight),
                static_cast<T*>(grad_input), static_cast<T*>(grad_target));
        });
    });
}

CONVKIT_KERNELS_END
