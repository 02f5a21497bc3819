// The bulk tensor copy (TMA) and its tensor maps on the CPU (emu/ptx_emulation.h): the map is the
// spec itself behind a tag; a copy gathers its box (zeros outside the tensor, the swizzle on the
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
// "convkit1": a map this emulator encoded.
constexpr std::uint64_t kMapTag = 0x31746976'6e6f63ull;

struct EncodedMap {
    std::uint64_t tag;
    tma::TiledTensorMapSpec spec;
};
static_assert(sizeof(EncodedMap) <= sizeof(tma::TensorMap));
static_assert(std::is_trivially_copyable_v<tma::TiledTensorMapSpec>);

std::string site_text(const std::source_location& site) {
    return std::string(site.file_name()) + ":" + std::to_string(site.line());
}
}  // namespace

void encode_tiled_tensor_map(void* map, const tma::TiledTensorMapSpec& spec) {
    const EncodedMap encoded{kMapTag, spec};
    std::memset(map, 0, sizeof(tma::TensorMap));
    std::memcpy(map, &encoded, sizeof(encoded));
}

void bulk_tensor_load(void* shared, const void* map, const int* coordinates, int rank, void* barrier,
                      const std::source_location& site) {
    const std::string at = "cp.async.bulk.tensor at " + site_text(site) + ": ";
    EncodedMap encoded;
    std::memcpy(&encoded, map, sizeof(encoded));
    if (encoded.tag != kMapTag) thread_fault(at + "the tensor map was not encoded by encode_tiled_tensor_map");
    const tma::TiledTensorMapSpec& s = encoded.spec;
    if (rank != s.rank)
        thread_fault(at + std::to_string(rank) + " coordinates for a tensor map of rank " + std::to_string(s.rank));
    if (reinterpret_cast<std::uintptr_t>(shared) % 128 != 0)
        thread_fault(at + "the shared-memory destination is not 128-byte aligned");
    const std::uint64_t bytes = tma::box_bytes(s);
    if (s.swizzle != wgmma::Swizzle::None && bytes % 128 != 0)
        thread_fault(
            at + "a swizzled box of " + std::to_string(bytes) +
            " bytes, not whole 128-byte lines (the emulator's rule: the swizzle would move bytes past the box)");
    const std::uint32_t window = shared_window_address(shared);  // faults outside dynamic shared memory
    if (shared_window_pointer(window, bytes) == nullptr)
        thread_fault(at + "the box of " + std::to_string(bytes) + " bytes runs past the block's shared memory");

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
        const std::uint32_t landing =
            wgmma::swizzled_address(window + static_cast<std::uint32_t>(e * element), s.swizzle) - window;
        if (inside) std::memcpy(image.data() + landing, global + offset, element);
        for (int i = 0; i < rank && ++index[i] == static_cast<int>(s.box[static_cast<std::size_t>(i)]); ++i)
            index[i] = 0;
    }
    start_bulk_copy(shared, std::move(image), barrier, site);
}

}  // namespace convkit::emu::ptx
