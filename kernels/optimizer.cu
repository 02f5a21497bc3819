// The fused optimizer updates: one launch updates every tensor of a table (multi-tensor apply).
// The per-element arithmetic is optim/optimizer_math.h, shared with the host loop.
#include <atomic>
#include <cstring>
#include <type_traits>

#include "core/check.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"
#include "kernels/optimizer.h"
#include "backend_api/multi_tensor.h"

CONVKIT_KERNELS_BEGIN

namespace {

std::atomic<std::uint64_t> launches{0};

template <typename T>
__device__ void update_element(const detail::SgdCoefficients<T>& c, const detail::SgdTensor<T>& t, std::int64_t i) {
    detail::sgd_update_element(c, t, i);
}

template <typename T>
__device__ void update_element(const detail::AdamCoefficients<T>& c, const detail::AdamTensor<T>& t, std::int64_t i) {
    detail::adam_update_element(c, t, i);
}

// Block b updates chunk (b - first_block[k]) of tensor k; consecutive threads take consecutive
// elements, so loads and stores are coalesced.
template <typename Coefficients, typename Entry>
__global__ void multi_tensor_update_kernel(Coefficients c, const Entry* table, const std::int64_t* first_block,
                                           int count) {
    const std::int64_t block = blockIdx.x;
    const int k = detail::tensor_of_block(first_block, count, block);
    const Entry entry = table[k];
    const std::int64_t begin = (block - first_block[k]) * detail::kMultiTensorChunk;
    const std::int64_t chunk_end = begin + detail::kMultiTensorChunk;
    const std::int64_t end = chunk_end < entry.numel ? chunk_end : entry.numel;
    for (std::int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) update_element(c, entry, i);
}

// Copies the table and the block plan to the device in one transfer (scratch from the caching
// allocator for `stream`, so it is reused only behind this launch) and launches once.
template <typename Coefficients, typename Entry>
void launch_multi_tensor_update(const char* op, const Coefficients& c, const std::vector<Entry>& table, Stream stream) {
    static_assert(std::is_trivially_copyable_v<Entry> && alignof(Entry) <= alignof(std::int64_t));
    if (table.empty()) return;
    std::vector<std::int64_t> numels;
    numels.reserve(table.size());
    for (const Entry& entry : table) numels.push_back(entry.numel);
    const detail::MultiTensorPlan plan = detail::plan_multi_tensor(numels);
    if (plan.blocks == 0) return;
    CONVKIT_REQUIRE(plan.blocks <= 0x7fffffff && table.size() <= 0x7fffffff, op, "a table of ", table.size(),
                    " tensors needs ", plan.blocks, " blocks, more than one launch can have");

    // Entry holds pointers, so sizeof(Entry) is a multiple of 8 and the plan that follows the
    // entries is aligned for int64.
    const std::size_t table_bytes = table.size() * sizeof(Entry);
    const std::size_t plan_bytes = plan.first_block.size() * sizeof(std::int64_t);
    std::vector<unsigned char> staging(table_bytes + plan_bytes);
    std::memcpy(staging.data(), table.data(), table_bytes);
    std::memcpy(staging.data() + table_bytes, plan.first_block.data(), plan_bytes);

    detail::CudaDeviceGuard guard(stream.device);
    const cudaStream_t s = detail::to_cuda(stream);
    const std::shared_ptr<void> device_table = detail::allocate_cuda(staging.size(), stream);
    // From pageable memory the copy returns once the bytes are staged, so `staging` may go.
    CONVKIT_CHECK_CUDA(cudaMemcpyAsync(device_table.get(), staging.data(), staging.size(), cudaMemcpyHostToDevice, s));
    const auto* entries = static_cast<const Entry*>(device_table.get());
    const auto* first_block =
        reinterpret_cast<const std::int64_t*>(static_cast<const unsigned char*>(device_table.get()) + table_bytes);
    launch<multi_tensor_update_kernel<Coefficients, Entry>>({static_cast<unsigned>(plan.blocks), kThreadsPerBlock}, s,
                                                            c, entries, first_block, static_cast<int>(table.size()));
    ++launches;
}

}  // namespace

void sgd_multi_tensor_update(const detail::SgdCoefficients<float>& c,
                             const std::vector<detail::SgdTensor<float>>& table, Stream stream) {
    launch_multi_tensor_update("SGD::step", c, table, stream);
}

void sgd_multi_tensor_update(const detail::SgdCoefficients<double>& c,
                             const std::vector<detail::SgdTensor<double>>& table, Stream stream) {
    launch_multi_tensor_update("SGD::step", c, table, stream);
}

void adam_multi_tensor_update(const detail::AdamCoefficients<float>& c,
                              const std::vector<detail::AdamTensor<float>>& table, Stream stream) {
    launch_multi_tensor_update("Adam::step", c, table, stream);
}

void adam_multi_tensor_update(const detail::AdamCoefficients<double>& c,
                              const std::vector<detail::AdamTensor<double>>& table, Stream stream) {
    launch_multi_tensor_update("Adam::step", c, table, stream);
}

std::uint64_t multi_tensor_update_launches() {
    return launches.load();
}

CONVKIT_KERNELS_END
