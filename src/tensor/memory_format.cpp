// Memory formats: names, the conversion counter and the buffer permutation (host loop or CUDA
// kernel, both through backend_api/layout_math.h).
#include <atomic>
#include <cstring>

#include "convkit/memory_format.h"
#include "core/check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/tensor_fill.h"
#include "tensor/memory_format_support.h"

namespace convkit {

namespace {
std::atomic<std::uint64_t> g_layout_conversions{0};

// Moves elements of `element_size` bytes between the formats; memcpy per element keeps the host
// loop free of dtype dispatch (a permutation copies bits, it never converts).
void permute_host(const detail::ChannelsGeometry& g, const char* source, char* destination, std::size_t element_size,
                  bool to_channels_last) {
    const std::int64_t count = g.batch * g.channels * g.spatial;
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t j = g.channels_last_of_contiguous(i);
        const std::int64_t from = to_channels_last ? i : j;
        const std::int64_t to = to_channels_last ? j : i;
        std::memcpy(destination + static_cast<std::size_t>(to) * element_size,
                    source + static_cast<std::size_t>(from) * element_size, element_size);
    }
}
}  // namespace

const char* memory_format_name(MemoryFormat format) {
    return format == MemoryFormat::Contiguous ? "contiguous" : "channels_last";
}

std::uint64_t layout_conversions() {
    return g_layout_conversions.load(std::memory_order_relaxed);
}
void reset_layout_conversions() {
    g_layout_conversions.store(0, std::memory_order_relaxed);
}

namespace detail {

ChannelsGeometry channels_geometry(const Shape& shape) {
    CONVKIT_REQUIRE(channels_last_rank(shape.rank()), "channels_last",
                    "needs a rank 3-5 shape [N, C, spatial...], got ", shape.to_string());
    std::int64_t spatial = 1;
    for (int d = 2; d < shape.rank(); ++d) spatial *= shape[d];
    return {shape[0], shape[1], spatial};
}

void permute_memory_format(const Tensor& source, const Tensor& destination) {
    const ChannelsGeometry g = channels_geometry(source.shape());
    const bool to_channels_last = destination.memory_format() == MemoryFormat::ChannelsLast;
    if (source.numel() == 0) return;
    if (source.device().is_host()) {
        permute_host(g, static_cast<const char*>(source.raw_physical_data()),
                     static_cast<char*>(destination.raw_physical_data()), dtype_size(source.dtype()), to_channels_last);
    } else {
        kernels::permute_channels(source.raw_physical_data(), destination.raw_physical_data(), source.dtype(), g.batch,
                                  g.channels, g.spatial, to_channels_last, current_stream(source.device().index));
    }
}

void count_layout_conversion() {
    g_layout_conversions.fetch_add(1, std::memory_order_relaxed);
}

Tensor operand_in_format(const Tensor& t, MemoryFormat format) {
    if (!t.defined() || t.memory_format() == format) return t;
    if (format == MemoryFormat::ChannelsLast && !channels_last_rank(t.rank())) return t;
    count_layout_conversion();
    return t.to(format);
}

}  // namespace detail
}  // namespace convkit
