// Batch-normalization kernels. Per-channel reductions (statistics, the backward sums) take one
// block per channel, each thread striding over the channel's values, accumulating in double and
// combining with block_sum's fixed-order tree: deterministic run to run. The variance is two-pass
// (mean first, then the mean squared deviation from it), so an input with a large mean loses
// nothing to cancellation. Per-element passes are grid-stride loops in the element type, with
// the subtraction of the (double) mean done in double (ops/batch_norm_math.h).
#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/batch_norm.h"
#include "kernels/kernel_support.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
using detail::BatchNormGeometry;

// One block per channel (blocks stride over channels past the grid limit).
unsigned channel_blocks(const BatchNormGeometry& g) {
    return grid_stride_blocks(g.channels);
}

template <typename T>
__device__ T parameter(const T* values, std::int64_t c, T absent) {
    return values == nullptr ? absent : values[c];
}

template <typename T>
__device__ T inverse_std(double var, double eps) {
    return T(1) / sqrt(static_cast<T>(var) + static_cast<T>(eps));
}

template <typename T>
__global__ void statistics_kernel(BatchNormGeometry g, const T* x, double* mean, double* var,
                                  detail::RunningStatistics running) {
    __shared__ double channel_mean;
    const std::int64_t m = g.per_channel();
    for (std::int64_t c = blockIdx.x; c < g.channels; c += gridDim.x) {
        double sum = 0;
        for (std::int64_t t = threadIdx.x; t < m; t += blockDim.x) sum += x[detail::batch_norm_offset(g, c, t)];
        sum = block_sum(sum);
        if (threadIdx.x == 0) channel_mean = sum / static_cast<double>(m);
        __syncthreads();
        // Every thread reads channel_mean before the next block_sum, whose barriers keep thread 0
        // from overwriting it for the next channel until then.
        const double mu = channel_mean;
        double squares = 0;
        for (std::int64_t t = threadIdx.x; t < m; t += blockDim.x) {
            const double deviation = static_cast<double>(x[detail::batch_norm_offset(g, c, t)]) - mu;
            squares += deviation * deviation;
        }
        squares = block_sum(squares);
        if (threadIdx.x == 0) {
            const double biased = squares / static_cast<double>(m);
            mean[c] = mu;
            var[c] = biased;
            if (running.updated_mean != nullptr) {
                static_cast<T*>(running.updated_mean)[c] = static_cast<T>(
                    detail::running_average(static_cast<const T*>(running.mean)[c], mu, running.momentum));
                static_cast<T*>(running.updated_var)[c] = static_cast<T>(detail::running_average(
                    static_cast<const T*>(running.var)[c], detail::unbiased_variance(biased, m), running.momentum));
            }
        }
    }
}

template <typename T>
__global__ void forward_kernel(BatchNormGeometry g, const T* x, const double* mean, const double* var, const T* weight,
                               const T* bias, double eps, T* y) {
    const std::int64_t total = g.count();
    for (std::int64_t i = global_thread_index(); i < total; i += global_thread_count()) {
        const std::int64_t c = detail::batch_norm_channel(g, i);
        const T x_hat = detail::batch_norm_normalized<T>(x[i], mean[c], inverse_std<T>(var[c], eps));
        y[i] = detail::batch_norm_output<T>(x_hat, parameter(weight, c, T(1)), parameter(bias, c, T(0)));
    }
}

template <typename T>
__global__ void backward_reduce_kernel(BatchNormGeometry g, const T* dy, const T* x, const double* mean,
                                       const double* var, double eps, double* sum_dy, double* sum_dy_x_hat) {
    const std::int64_t m = g.per_channel();
    for (std::int64_t c = blockIdx.x; c < g.channels; c += gridDim.x) {
        const double mu = mean[c];
        double s_dy = 0;
        double s_dy_centered = 0;
        for (std::int64_t t = threadIdx.x; t < m; t += blockDim.x) {
            const std::int64_t o = detail::batch_norm_offset(g, c, t);
            const double d = dy[o];
            s_dy += d;
            s_dy_centered += d * (static_cast<double>(x[o]) - mu);
        }
        s_dy = block_sum(s_dy);
        s_dy_centered = block_sum(s_dy_centered);
        if (threadIdx.x == 0) {
            sum_dy[c] = s_dy;
            sum_dy_x_hat[c] = s_dy_centered / sqrt(var[c] + eps);
        }
    }
}

template <typename T>
__global__ void backward_input_kernel(BatchNormGeometry g, const T* dy, const T* x, const double* mean,
                                      const double* var, const T* weight, const double* sum_dy,
                                      const double* sum_dy_x_hat, double eps, double inverse_count,
                                      bool batch_statistics, T* dx) {
    const std::int64_t total = g.count();
    for (std::int64_t i = global_thread_index(); i < total; i += global_thread_count()) {
        const std::int64_t c = detail::batch_norm_channel(g, i);
        const T invstd = inverse_std<T>(var[c], eps);
        const T x_hat = detail::batch_norm_normalized<T>(x[i], mean[c], invstd);
        const T mean_dy = batch_statistics ? static_cast<T>(sum_dy[c] * inverse_count) : T(0);
        const T mean_dy_x_hat = batch_statistics ? static_cast<T>(sum_dy_x_hat[c] * inverse_count) : T(0);
        dx[i] = detail::batch_norm_input_gradient<T>(dy[i], x_hat, parameter(weight, c, T(1)) * invstd, mean_dy,
                                                     mean_dy_x_hat, batch_statistics);
    }
}

// Runs launch_typed(T{}, stream) for the dtype on the stream's device, then checks the launch.
template <typename Launch>
void on_stream_for_dtype(DType dtype, Stream stream, Launch&& launch_typed) {
    detail::CudaDeviceGuard guard(stream.device);
    dispatch_float_types(dtype, [&](auto tag) { launch_typed(tag, detail::to_cuda(stream)); });
}
}  // namespace

void batch_norm_statistics(const BatchNormGeometry& g, DType dtype, const void* x, double* mean, double* var,
                           const detail::RunningStatistics& running, Stream stream) {
    if (g.channels == 0) return;
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<statistics_kernel<T>>({channel_blocks(g), kThreadsPerBlock}, s, g, static_cast<const T*>(x), mean, var,
                                     running);
    });
}

void batch_norm_forward(const BatchNormGeometry& g, DType dtype, const void* x, const double* mean, const double* var,
                        const void* weight, const void* bias, double eps, void* y, Stream stream) {
    if (g.count() == 0) return;
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<forward_kernel<T>>({grid_for(g.count()), kThreadsPerBlock}, s, g, static_cast<const T*>(x), mean, var,
                                  static_cast<const T*>(weight), static_cast<const T*>(bias), eps, static_cast<T*>(y));
    });
}

void batch_norm_backward_reduce(const BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                                const double* mean, const double* var, double eps, double* sum_dy, double* sum_dy_x_hat,
                                Stream stream) {
    if (g.channels == 0) return;
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<backward_reduce_kernel<T>>({channel_blocks(g), kThreadsPerBlock}, s, g,
                                          static_cast<const T*>(grad_output), static_cast<const T*>(x), mean, var, eps,
                                          sum_dy, sum_dy_x_hat);
    });
}

void batch_norm_backward_input(const BatchNormGeometry& g, DType dtype, const void* grad_output, const void* x,
                               const double* mean, const double* var, const void* weight, const double* sum_dy,
                               const double* sum_dy_x_hat, double eps, bool batch_statistics, void* grad_input,
                               Stream stream) {
    if (g.count() == 0) return;
    const double inverse_count = 1.0 / static_cast<double>(g.per_channel());
    on_stream_for_dtype(dtype, stream, [&](auto tag, cudaStream_t s) {
        using T = decltype(tag);
        launch<backward_input_kernel<T>>({grid_for(g.count()), kThreadsPerBlock}, s, g,
                                         static_cast<const T*>(grad_output), static_cast<const T*>(x), mean, var,
                                         static_cast<const T*>(weight), sum_dy, sum_dy_x_hat, eps, inverse_count,
                                         batch_statistics, static_cast<T*>(grad_input));
    });
}

CONVKIT_KERNELS_END
