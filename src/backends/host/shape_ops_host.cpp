#include "backends/host/shape_ops_host.h"

#include <cstring>

#include "backend_api/dtype_dispatch.h"

namespace convkit::detail {

void block_copy_host(const BlockCopyGeometry& g, std::size_t element_size, const void* source, void* dest) {
    const auto* from = static_cast<const unsigned char*>(source);
    auto* to = static_cast<unsigned char*>(dest);
    for (std::int64_t index = 0; index < g.count(); ++index) {
        const CopyOffsets o = block_copy_offsets(g, index);
        std::memcpy(to + static_cast<std::size_t>(o.dest) * element_size,
                    from + static_cast<std::size_t>(o.source) * element_size, element_size);
    }
}

void copy_channel_rows_host(const ChannelRowsGeometry& g, std::size_t element_size, const void* source, void* dest) {
    const auto* from = static_cast<const unsigned char*>(source);
    auto* to = static_cast<unsigned char*>(dest);
    for (std::int64_t index = 0; index < g.count(); ++index) {
        const std::int64_t s = channel_rows_source(g, index);
        unsigned char* element = to + static_cast<std::size_t>(index) * element_size;
        if (s < 0) {
            std::memset(element, 0, element_size);
        } else {
            std::memcpy(element, from + static_cast<std::size_t>(s) * element_size, element_size);
        }
    }
}

void upsample_nearest_forward_host(const UpsampleGeometry& g, DType dtype, const void* input, void* output) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* x = static_cast<const T*>(input);
        T* y = static_cast<T*>(output);
        const std::int64_t total = g.planes * g.output_spatial();
        for (std::int64_t index = 0; index < total; ++index) y[index] = x[upsample_source_offset(g, index)];
    });
}

void upsample_nearest_backward_host(const UpsampleGeometry& g, DType dtype, const void* grad_output, void* grad_input) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* dy = static_cast<const T*>(grad_output);
        T* dx = static_cast<T*>(grad_input);
        const std::int64_t total = g.planes * g.input_spatial();
        for (std::int64_t index = 0; index < total; ++index) {
            dx[index] = static_cast<T>(upsample_gradient_sum<double>(g, dy, index));
        }
    });
}

}  // namespace convkit::detail
