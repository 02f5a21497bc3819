// Memory formats: names, the conversion counter and the buffer permutation (host loop or CUDA
// kernel, both through backend_api/layout_math.h).
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "autograd/graph.h"
#include "convkit/autograd.h"
#include "convkit/memory_format.h"
#include "core/check.h"
#include "cuda/cuda_runtime.h"
#include "kernels/tensor_fill.h"
#include "tensor/memory_format_support.h"

namespace convkit {

namespace {
std::atomic<std::uint64_t> g_layout_conversions{0};

// Moves elements of `Size` bytes between the formats: a permutation copies bits, it never
// converts, so it needs no dtype dispatch (a memcpy of a constant size is one move).
template <std::size_t Size>
void permute_elements(const detail::ChannelsGeometry& g, const char* source, char* destination,
                      bool to_channels_last) {
    for (std::int64_t n = 0; n < g.batch; ++n)
        for (std::int64_t c = 0; c < g.channels; ++c)
            for (std::int64_t s = 0; s < g.spatial; ++s) {
                const auto contiguous = static_cast<std::size_t>(g.contiguous_offset(n, c, s)) * Size;
                const auto channels_last = static_cast<std::size_t>(g.channels_last_offset(n, c, s)) * Size;
                if (to_channels_last) {
                    std::memcpy(destination + channels_last, source + contiguous, Size);
                } else {
                    std::memcpy(destination + contiguous, source + channels_last, Size);
                }
            }
}

void permute_host(const detail::ChannelsGeometry& g, const char* source, char* destination, std::size_t element_size,
                  bool to_channels_last) {
    switch (element_size) {
        case 2: return permute_elements<2>(g, source, destination, to_channels_last);
        case 4: return permute_elements<4>(g, source, destination, to_channels_last);
        case 8: return permute_elements<8>(g, source, destination, to_channels_last);
    }
    throw std::logic_error(detail::concat("permute_host: no ", element_size, "-byte element type"));
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
    Tensor converted;
    {
        const NoGradGuard recorded_below;
        converted = t.to(format);
    }
    // The gradient converts back through this helper too, so that a conversion an op makes is
    // counted in both directions of a training step.
    autograd::record("to_memory_format", converted, {t},
                     [source = t.memory_format()](const Tensor& dy, const autograd::NeedsGrad&) {
                         return std::vector<Tensor>{operand_in_format(dy, source)};
                     });
    return converted;
}

}  // namespace detail
}  // namespace convkit
