// The bulk tensor copy (TMA) and its tensor maps on the CPU (emu/ptx_emulation.h): a map is its
// spec behind a tag; a copy gathers its box (zeros outside the tensor, the swizzle on the
// shared-window address) and hands the image to the block runner, which lands it.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "emu/emulator.h"
#include "emu/ptx_emulation.h"
#include "kernels/tensor_map.h"

namespace convkit::emu::ptx {

namespace {
// "convkit1" and "convkit2": a tiled and an im2col map this emulator encoded.
constexpr std::uint64_t kTiledMapTag = 0x31746976'6e6f63ull;
constexpr std::uint64_t kIm2colMapTag = 0x32746976'6e6f63ull;

template <class Spec>
struct EncodedMap {
    std::uint64_t tag;
    Spec spec;
};
// An im2col spec in fewer bytes (the spec itself is 144 bytes, past the map's 128): the fields
// at the widths the driver's rules allow (corners within 16 bits, traversal strides up to 8,
// at most 256 channels and 1024 pixels), stride 0 (the element size) left out.
struct PackedIm2colSpec {
    const void* global;
    std::uint64_t dims[tma::kMaxRank];
    std::uint64_t strides[tma::kMaxRank - 1];
    std::int16_t lower[3], upper[3];
    std::uint16_t channels_per_pixel, pixels_per_column;
    std::uint8_t traversal[3], type, rank, swizzle;

    PackedIm2colSpec() = default;
    explicit PackedIm2colSpec(const tma::Im2colTensorMapSpec& s)
        : global(s.global),
          channels_per_pixel(static_cast<std::uint16_t>(s.channels_per_pixel)),
          pixels_per_column(static_cast<std::uint16_t>(s.pixels_per_column)),
          type(static_cast<std::uint8_t>(s.type)),
          rank(static_cast<std::uint8_t>(s.rank)),
          swizzle(static_cast<std::uint8_t>(s.swizzle)) {
        for (std::size_t i = 0; i < tma::kMaxRank; ++i) dims[i] = s.dims[i];
        for (std::size_t i = 1; i < tma::kMaxRank; ++i) strides[i - 1] = s.strides[i];
        for (std::size_t i = 0; i < 3; ++i) {
            lower[i] = static_cast<std::int16_t>(s.lower[i]);
            upper[i] = static_cast<std::int16_t>(s.upper[i]);
            traversal[i] = static_cast<std::uint8_t>(s.traversal[i]);
        }
    }
    operator tma::Im2colTensorMapSpec() const {  // NOLINT: the unpacked form
        tma::Im2colTensorMapSpec s;
        s.global = global;
        s.type = static_cast<tma::ElementType>(type);
        s.rank = rank;
        s.swizzle = static_cast<wgmma::Swizzle>(swizzle);
        s.channels_per_pixel = channels_per_pixel;
        s.pixels_per_column = pixels_per_column;
        for (std::size_t i = 0; i < tma::kMaxRank; ++i) s.dims[i] = dims[i];
        for (std::size_t i = 1; i < tma::kMaxRank; ++i) s.strides[i] = strides[i - 1];
        for (std::size_t i = 0; i < 3; ++i) {
            s.lower[i] = lower[i];
            s.upper[i] = upper[i];
            s.traversal[i] = traversal[i];
        }
        return s;
    }
};

static_assert(sizeof(EncodedMap<tma::TiledTensorMapSpec>) <= sizeof(tma::TensorMap));
static_assert(sizeof(EncodedMap<PackedIm2colSpec>) <= sizeof(tma::TensorMap));
static_assert(std::is_trivially_copyable_v<tma::TiledTensorMapSpec>);
static_assert(std::is_trivially_copyable_v<PackedIm2colSpec>);

std::string site_text(const std::source_location& site) {
    return std::string(site.file_name()) + ":" + std::to_string(site.line());
}

template <class Spec>
void encode(void* map, std::uint64_t tag, const Spec& spec) {
    const EncodedMap<Spec> encoded{tag, spec};
    std::memset(map, 0, sizeof(tma::TensorMap));
    std::memcpy(map, &encoded, sizeof(encoded));
}

// The spec of a map encoded with `tag`, faulting (after `at`) for any other bytes.
template <class Spec>
Spec decode(const void* map, std::uint64_t tag, const std::string& at) {
    EncodedMap<Spec> encoded;
    std::memcpy(&encoded, map, sizeof(encoded));
    if (encoded.tag != tag) {
        thread_fault(at + "the tensor map was not encoded by " +
                     (tag == kTiledMapTag ? "encode_tiled_tensor_map" : "encode_im2col_tensor_map"));
    }
    return encoded.spec;
}

// Every copy's destination: 128-byte aligned dynamic shared memory that holds the whole box, and a
// swizzled box of whole 128-byte lines (the emulator's rule: the swizzle would move bytes past a
// partial line). Returns its shared-window address.
std::uint32_t checked_destination(void* shared, std::uint64_t bytes, wgmma::Swizzle swizzle, const std::string& at) {
    if (reinterpret_cast<std::uintptr_t>(shared) % 128 != 0)
        thread_fault(at + "the shared-memory destination is not 128-byte aligned");
    if (swizzle != wgmma::Swizzle::None && bytes % 128 != 0)
        thread_fault(at + "a swizzled box of " + std::to_string(bytes) + " bytes, not whole 128-byte lines");
    const std::uint32_t window = shared_window_address(shared);  // faults outside dynamic shared memory
    if (shared_window_pointer(window, bytes) == nullptr)
        thread_fault(at + "the box of " + std::to_string(bytes) + " bytes runs past the block's shared memory");
    return window;
}

// Where the box's byte `offset` lands, from the destination at `window`: the swizzle reads the
// window address.
std::uint32_t landing(std::uint32_t window, std::uint64_t offset, wgmma::Swizzle swizzle) {
    return wgmma::swizzled_address(window + static_cast<std::uint32_t>(offset), swizzle) - window;
}
}  // namespace

void encode_tiled_tensor_map(void* map, const tma::TiledTensorMapSpec& spec) {
    encode(map, kTiledMapTag, spec);
}

void encode_im2col_tensor_map(void* map, const tma::Im2colTensorMapSpec& spec) {
    encode(map, kIm2colMapTag, PackedIm2colSpec(spec));
}

void bulk_tensor_load(void* shared, const void* map, const int* coordinates, int rank, void* barrier,
                      const std::source_location& site) {
    const std::string at = "cp.async.bulk.tensor at " + site_text(site) + ": ";
    const auto s = decode<tma::TiledTensorMapSpec>(map, kTiledMapTag, at);
    if (rank != s.rank)
        thread_fault(at + std::to_string(rank) + " coordinates for a tensor map of rank " + std::to_string(s.rank));
    const std::uint64_t bytes = tma::box_bytes(s);
    const std::uint32_t window = checked_destination(shared, bytes, s.swizzle, at);

    const std::uint32_t element = tma::element_bytes(s.type);
    const auto* global = static_cast<const unsigned char*>(s.global);
    std::vector<unsigned char> image(bytes, 0);
    int index[tma::kMaxRank] = {};  // the element's position in the box, index[0] fastest
    for (std::uint64_t e = 0; e < bytes / element; ++e) {
        bool inside = true;
        std::uint64_t offset = 0;
        for (int i = 0; i < rank; ++i) {
            const auto d = static_cast<std::size_t>(i);
            const std::int64_t position = std::int64_t{coordinates[i]} + index[i];
            inside = inside && position >= 0 && position < static_cast<std::int64_t>(s.dims[d]);
            offset += static_cast<std::uint64_t>(position) * (i == 0 ? element : s.strides[d]);
        }
        if (inside) std::memcpy(image.data() + landing(window, e * element, s.swizzle), global + offset, element);
        for (int i = 0; i < rank && ++index[i] == static_cast<int>(s.box[static_cast<std::size_t>(i)]); ++i)
            index[i] = 0;
    }
    start_bulk_copy(shared, std::move(image), barrier, site);
}

void bulk_tensor_load_im2col(void* shared, const void* map, const int* coordinates, const std::uint16_t* offsets,
                             int rank, void* barrier, const std::source_location& site) {
    const std::string at = "cp.async.bulk.tensor.im2col at " + site_text(site) + ": ";
    const tma::Im2colTensorMapSpec s = decode<PackedIm2colSpec>(map, kIm2colMapTag, at);
    if (rank != s.rank)
        thread_fault(at + std::to_string(rank) + " coordinates for an im2col map of rank " + std::to_string(s.rank));
    const std::uint64_t bytes = tma::box_bytes(s);
    const std::uint32_t window = checked_destination(shared, bytes, s.swizzle, at);

    const int spatial = rank - 2;
    for (int i = 0; i < spatial; ++i) {
        if (offsets[i] > tma::im2col_largest_offset(rank))
            thread_fault(at + "offset " + std::to_string(offsets[i]) + " along spatial dimension " + std::to_string(i) +
                         " (at most " + std::to_string(tma::im2col_largest_offset(rank)) + " at rank " +
                         std::to_string(rank) + ")");
    }
    const std::uint32_t element = tma::element_bytes(s.type);
    const auto* global = static_cast<const unsigned char*>(s.global);
    auto size = [&](int dim) { return static_cast<std::int64_t>(s.dims[static_cast<std::size_t>(dim)]); };
    auto stride = [&](int dim) { return s.strides[static_cast<std::size_t>(dim)]; };
    std::int64_t position[3] = {};  // the pixel's W, H, D in the bounding box's walk
    for (int i = 0; i < spatial; ++i) position[i] = coordinates[1 + i];
    std::int64_t image_index = coordinates[rank - 1];
    std::vector<unsigned char> image(bytes, 0);
    for (std::uint32_t pixel = 0; pixel < s.pixels_per_column; ++pixel) {
        bool inside = image_index >= 0 && image_index < size(rank - 1);
        std::uint64_t offset = static_cast<std::uint64_t>(image_index) * stride(rank - 1);
        for (int i = 0; i < spatial; ++i) {
            const std::int64_t read = position[i] + offsets[i];
            inside = inside && read >= 0 && read < size(1 + i);
            offset += static_cast<std::uint64_t>(read) * stride(1 + i);
        }
        for (std::uint32_t c = 0; c < s.channels_per_pixel && inside; ++c) {
            const std::int64_t channel = std::int64_t{coordinates[0]} + c;
            if (channel < 0 || channel >= size(0)) continue;
            const std::uint64_t in_box = (std::uint64_t{pixel} * s.channels_per_pixel + c) * element;
            std::memcpy(image.data() + landing(window, in_box, s.swizzle),
                        global + offset + static_cast<std::uint64_t>(channel) * element, element);
        }
        // The next pixel: a traversal step along W; past the box's upper end of W, back to its lower
        // end and a step along H, and so on; past the last spatial dim's, the next image.
        int i = 0;
        for (; i < spatial; ++i) {
            const auto d = static_cast<std::size_t>(i);
            position[i] += s.traversal[d];
            if (position[i] <= size(1 + i) - 1 + s.upper[d]) break;
            position[i] = s.lower[d];
        }
        if (i == spatial) ++image_index;
    }
    start_bulk_copy(shared, std::move(image), barrier, site);
}

}  // namespace convkit::emu::ptx
