// The fused optimizer updates: one launch updates every tensor of a table (multi-tensor apply).
// The per-element arithmetic is optim/optimizer_math.h, shared with the host loop.
#include <atomic>
#include <cstring>
#include <type_traits>

#include "backend_api/multi_tensor.h"
#include "core/check.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_memory.h"
#include "cuda/cuda_runtime.h"
#include "kernels/kernel_support.cuh"
#include "kernels/optimizer.h"

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

// Where the parts of a device table start: the coefficients first, then the entries, then the
// block plan. Entries hold pointers, so they and the int64 plan that follows are 8-aligned.
template <typename Coefficients>
constexpr std::size_t entries_offset() {
    return (sizeof(Coefficients) + 15) / 16 * 16;
}

// Block b updates chunk (b - first_block[k]) of tensor k; consecutive threads take consecutive
// elements, so loads and stores are coalesced. Each thread copies the coefficients and its entry
// once from the device table.
template <typename Coefficients, typename Entry>
__global__ void multi_tensor_update_kernel(const unsigned char* device_table, int count) {
    const Coefficients c = *reinterpret_cast<const Coefficients*>(device_table);
    const auto* table = reinterpret_cast<const Entry*>(device_table + entries_offset<Coefficients>());
    const auto* first_block = reinterpret_cast<const std::int64_t*>(table + count);
    const std::int64_t block = blockIdx.x;
    const int k = detail::tensor_of_block(first_block, count, block);
    const Entry entry = table[k];
    const std::int64_t begin = (block - first_block[k]) * detail::kMultiTensorChunk;
    const std::int64_t chunk_end = begin + detail::kMultiTensorChunk;
    const std::int64_t end = chunk_end < entry.numel ? chunk_end : entry.numel;
    for (std::int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) update_element(c, entry, i);
}

template <typename Entry>
constexpr DeviceUpdateTable::Kind kind_of() {
    using K = DeviceUpdateTable::Kind;
    if constexpr (std::is_same_v<Entry, detail::SgdTensor<float>>) return K::SgdFloat;
    if constexpr (std::is_same_v<Entry, detail::SgdTensor<double>>) return K::SgdDouble;
    if constexpr (std::is_same_v<Entry, detail::AdamTensor<float>>) return K::AdamFloat;
    return K::AdamDouble;
}

template <typename Coefficients, typename Entry>
void launch_table(const DeviceUpdateTable& device_table, Stream stream) {
    detail::CudaDeviceGuard guard(stream.device);
    launch<multi_tensor_update_kernel<Coefficients, Entry>>(
        {static_cast<unsigned>(device_table.blocks), kThreadsPerBlock}, detail::to_cuda(stream),
        static_cast<const unsigned char*>(device_table.buffer.get()), device_table.count);
    ++launches;
}

}  // namespace

template <typename Coefficients, typename Entry>
void write_update_table(const Coefficients& c, const std::vector<Entry>& table, Stream stream, bool upload,
                        DeviceUpdateTable& device_table) {
    const char* op =
        kind_of<Entry>() == DeviceUpdateTable::Kind::SgdFloat || kind_of<Entry>() == DeviceUpdateTable::Kind::SgdDouble
            ? "SGD::step"
            : "Adam::step";
    static_assert(std::is_trivially_copyable_v<Entry> && alignof(Entry) <= alignof(std::int64_t));
    static_assert(std::is_trivially_copyable_v<Coefficients>);
    std::vector<std::int64_t> numels;
    numels.reserve(table.size());
    for (const Entry& entry : table) numels.push_back(entry.numel);
    const detail::MultiTensorPlan plan = detail::plan_multi_tensor(numels);
    CONVKIT_REQUIRE(plan.blocks <= 0x7fffffff && table.size() <= 0x7fffffff, op, "a table of ", table.size(),
                    " tensors needs ", plan.blocks, " blocks, more than one launch can have");

    const std::size_t table_offset = entries_offset<Coefficients>();
    const std::size_t table_bytes = table.size() * sizeof(Entry);
    const std::size_t plan_bytes = plan.first_block.size() * sizeof(std::int64_t);
    const std::size_t bytes = table_offset + table_bytes + plan_bytes;
    if (upload && device_table.buffer != nullptr) {  // refreshing a captured step's table
        CONVKIT_REQUIRE(device_table.bytes == bytes, op, "the update table of a captured step changed from ",
                        device_table.bytes, " to ", bytes, " bytes");
    } else {
        // Eagerly, scratch reused behind this launch. At capture, a block uploaded before each
        // replay: one the graph's earlier work cannot have been given too, or it would overwrite
        // the upload before the update reads it.
        device_table.buffer =
            upload ? detail::allocate_cuda(bytes, stream) : detail::allocate_cuda_unshared(bytes, stream);
        device_table.bytes = bytes;
    }
    device_table.kind = kind_of<Entry>();
    device_table.blocks = plan.blocks;
    device_table.count = static_cast<int>(table.size());
    if (!upload || plan.blocks == 0) return;

    std::vector<unsigned char> staging(bytes, 0);
    std::memcpy(staging.data(), &c, sizeof(Coefficients));
    std::memcpy(staging.data() + table_offset, table.data(), table_bytes);
    std::memcpy(staging.data() + table_offset + table_bytes, plan.first_block.data(), plan_bytes);
    detail::CudaDeviceGuard guard(stream.device);
    // From pageable memory the copy returns once the bytes are staged, so `staging` may go.
    CONVKIT_CHECK_CUDA(cudaMemcpyAsync(device_table.buffer.get(), staging.data(), bytes, cudaMemcpyHostToDevice,
                                       detail::to_cuda(stream)));
}

template void write_update_table(const detail::SgdCoefficients<float>&, const std::vector<detail::SgdTensor<float>>&,
                                 Stream, bool, DeviceUpdateTable&);
template void write_update_table(const detail::SgdCoefficients<double>&, const std::vector<detail::SgdTensor<double>>&,
                                 Stream, bool, DeviceUpdateTable&);
template void write_update_table(const detail::AdamCoefficients<float>&, const std::vector<detail::AdamTensor<float>>&,
                                 Stream, bool, DeviceUpdateTable&);
template void write_update_table(const detail::AdamCoefficients<double>&,
                                 const std::vector<detail::AdamTensor<double>>&, Stream, bool, DeviceUpdateTable&);

void launch_update_table(const DeviceUpdateTable& device_table, Stream stream) {
    if (device_table.blocks == 0) return;
    using K = DeviceUpdateTable::Kind;
    switch (device_table.kind) {
        case K::SgdFloat:
            launch_table<detail::SgdCoefficients<float>, detail::SgdTensor<float>>(device_table, stream);
            break;
        case K::SgdDouble:
            launch_table<detail::SgdCoefficients<double>, detail::SgdTensor<double>>(device_table, stream);
            break;
        case K::AdamFloat:
            launch_table<detail::AdamCoefficients<float>, detail::AdamTensor<float>>(device_table, stream);
            break;
        case K::AdamDouble:
            launch_table<detail::AdamCoefficients<double>, detail::AdamTensor<double>>(device_table, stream);
            break;
    }
}

// Eager: scratch from the caching allocator for `stream`, reused only behind this launch.
template <typename Coefficients, typename Entry>
void update_once(const Coefficients& c, const std::vector<Entry>& table, Stream stream) {
    if (table.empty()) return;
    DeviceUpdateTable device_table;
    write_update_table(c, table, stream, true, device_table);
    launch_update_table(device_table, stream);
}

void sgd_multi_tensor_update(const detail::SgdCoefficients<float>& c,
                             const std::vector<detail::SgdTensor<float>>& table, Stream stream) {
    update_once(c, table, stream);
}

void sgd_multi_tensor_update(const detail::SgdCoefficients<double>& c,
                             const std::vector<detail::SgdTensor<double>>& table, Stream stream) {
    update_once(c, table, stream);
}

void adam_multi_tensor_update(const detail::AdamCoefficients<float>& c,
                              const std::vector<detail::AdamTensor<float>>& table, Stream stream) {
    update_once(c, table, stream);
}

void adam_multi_tensor_update(const detail::AdamCoefficients<double>& c,
                              const std::vector<detail::AdamTensor<double>>& table, Stream stream) {
    update_once(c, table, stream);
}

std::uint64_t multi_tensor_update_launches() {
    return launches.load();
}

CONVKIT_KERNELS_END
