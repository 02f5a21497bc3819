// The channels-last bias gradient (kernels/conv_bias_grad.h). dy is a [rows, channels] matrix;
// a block of 32 x 8 threads sums one chunk of rows for 32 adjacent channels (a warp reads 32
// consecutive elements of a row: coalesced), the 8 row lanes combined in shared memory in a
// fixed order; a second kernel adds the chunks in order. Both orders are fixed by the shape, so
// the result is the same on every run.
#include <algorithm>

#include "cuda/cuda_runtime.h"
#include "kernels/conv_bias_grad.h"
#include "kernels/kernel_support.cuh"
#include "kernels/launch.cuh"

CONVKIT_KERNELS_BEGIN

namespace {
constexpr int kChannelsPerBlock = 32;
constexpr int kRowLanes = 8;
// Rows per chunk at least this many, so each block has work enough to hide its start; at most
// kMaxChunks chunks, so the second pass stays short.
constexpr std::int64_t kMinRowsPerChunk = 256;
constexpr std::int64_t kMaxChunks = 256;

// float for every storage type up to float32, double for float64.
template <typename T>
using Accumulator = std::conditional_t<std::is_same_v<T, double>, double, float>;

std::int64_t chunks_for(std::int64_t rows) {
    return std::clamp<std::int64_t>((rows + kMinRowsPerChunk - 1) / kMinRowsPerChunk, 1, kMaxChunks);
}

template <typename T>
__global__ void bias_grad_partial_kernel(std::int64_t rows, std::int64_t channels, std::int64_t rows_per_chunk,
                                         const T* dy, Accumulator<T>* partial) {
    using A = Accumulator<T>;
    __shared__ A lanes[kRowLanes][kChannelsPerBlock];
    const std::int64_t c = std::int64_t{blockIdx.x} * kChannelsPerBlock + threadIdx.x;
    const std::int64_t first = std::int64_t{blockIdx.y} * rows_per_chunk;
    const std::int64_t last = std::min(rows, first + rows_per_chunk);
    A sum = A(0);
    if (c < channels) {
        for (std::int64_t r = first + threadIdx.y; r < last; r += kRowLanes) sum += static_cast<A>(dy[r * channels + c]);
    }
    lanes[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < channels) {
        A total = A(0);
        for (int lane = 0; lane < kRowLanes; ++lane) total += lanes[lane][threadIdx.x];
        partial[std::int64_t{blockIdx.y} * channels + c] = total;
    }
}

template <typename T>
__global__ void bias_grad_chunks_kernel(std::int64_t channels, std::int64_t chunks, const Accumulator<T>* partial,
                                        T* db) {
    for (std::int64_t c = global_thread_index(); c < channels; c += global_thread_count()) {
        Accumulator<T> total = 0;
        for (std::int64_t chunk = 0; chunk < chunks; ++chunk) total += partial[chunk * channels + c];
        db[c] = T(total);
    }
}

}  // namespace

std::size_t conv_backward_bias_channels_last_workspace_bytes(std::int64_t rows, std::int64_t channels, DType dtype) {
    const std::size_t accumulator = dtype == DType::Float64 ? sizeof(double) : sizeof(float);
    return static_cast<std::size_t>(chunks_for(rows) * channels) * accumulator;
}

void conv_backward_bias_channels_last(std::int64_t rows, std::int64_t channels, DType dtype, const void* dy,
                                      void* db, void* workspace, Stream stream) {
    if (channels == 0) return;
    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    const std::int64_t chunks = chunks_for(rows);
    const std::int64_t rows_per_chunk = std::max<std::int64_t>((rows + chunks - 1) / chunks, 1);
    const auto channel_blocks = static_cast<unsigned>((channels + kChannelsPerBlock - 1) / kChannelsPerBlock);
    dispatch_float_storage_types("conv_backward_bias_channels_last", dtype, [&](auto tag) {
        using T = decltype(tag);
        auto* partial = static_cast<Accumulator<T>*>(workspace);
        launch<bias_grad_partial_kernel<T>>(
            {dim3(channel_blocks, static_cast<unsigned>(chunks)), dim3(kChannelsPerBlock, kRowLanes)}, s, rows,
            channels, rows_per_chunk, static_cast<const T*>(dy), partial);
        launch<bias_grad_chunks_kernel<T>>({grid_stride_blocks((channels + kThreadsPerBlock - 1) / kThreadsPerBlock),
                                            kThreadsPerBlock},
                                           s, channels, chunks, partial, static_cast<T*>(db));
    });
}

CONVKIT_KERNELS_END
