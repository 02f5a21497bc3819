#pragma once
// Element offsets of [N, C, S] tensors (S: the spatial dims flattened) in either memory format:
// the one definition the tensor conversions, the host reference and the kernels share.
// constexpr so CUDA kernels call it too.
#include <cstdint>

namespace convkit::detail {

struct ChannelsGeometry {
    std::int64_t batch = 0;
    std::int64_t channels = 0;
    std::int64_t spatial = 0;  // product of the spatial dims

    constexpr std::int64_t contiguous_offset(std::int64_t n, std::int64_t c, std::int64_t s) const {
        return (n * channels + c) * spatial + s;
    }
    constexpr std::int64_t channels_last_offset(std::int64_t n, std::int64_t c, std::int64_t s) const {
        return (n * spatial + s) * channels + c;
    }
    // The channels-last offset of the element at contiguous offset i.
    constexpr std::int64_t channels_last_of_contiguous(std::int64_t i) const {
        const std::int64_t s = i % spatial;
        const std::int64_t c = i / spatial % channels;
        const std::int64_t n = i / (spatial * channels);
        return channels_last_offset(n, c, s);
    }
};

}  // namespace convkit::detail
