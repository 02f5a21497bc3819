#pragma once
// The 64-bit shared-memory matrix descriptor of wgmma.mma_async (sm_90a), built by the kernels
// (kernels/ptx.cuh) and read back by the emulator (src/emu/warpgroup_mma.cpp): one definition of
// the bits for both. Plain constexpr C++ (the library compiles CUDA with --expt-relaxed-constexpr).
//
// PTX ISA, "Asynchronous Warpgroup Level Matrix Shared Memory Layout" > "Matrix Descriptor
// Format" (confirmed against CUTLASS's cute/arch/mma_sm90_desc.hpp):
//   bits  0-13  matrix start address,          (address & 0x3FFFF) >> 4
//   bits 16-29  leading dimension byte offset,  (bytes & 0x3FFFF) >> 4
//   bits 32-45  stride dimension byte offset,   (bytes & 0x3FFFF) >> 4
//   bits 49-51  matrix base offset (0 when every swizzle pattern starts at its own repeat
//               boundary, which is all this project builds)
//   bits 62-63  swizzle: 0 none, 1 128-byte, 2 64-byte, 3 32-byte
// The address is a shared-window address (cvta.to.shared), not a generic pointer.
//
// What the offsets mean for K-major operands (transpose flag 0), PTX ISA "Shared Memory Matrix Layout" / "Strides" and CUTLASS's canonical GMMA K-major
// layouts (cute/atom/mma_traits_sm90_gmma.hpp), element (row r of M or N, column k):
//   no swizzle: 8x16-byte "core matrices" of 8 rows x 16 contiguous bytes (rows 16 bytes apart);
//               core matrices adjacent in K are LBO bytes apart, adjacent in M/N SBO bytes apart:
//               start + (r / 8) * SBO + (k * e / 16) * LBO + (r % 8) * 16 + (k * e) % 16.
//   W-byte swizzle (W = 32, 64, 128): 8 rows of W bytes, rows W bytes apart, groups of 8 rows
//               SBO bytes apart, LBO unused (k of one instruction stays inside a W-byte row):
//               a = start + (r / 8) * SBO + (r % 8) * W + k * e, then the 16-byte chunk index
//               (address bits 4..) is XORed with the bits above the 128-byte line (bits 7..):
//               a ^ (((a >> 7) & (W / 16 - 1)) << 4)   (CUTLASS Swizzle<log2(W/16), 4, 3>).
// with e the element size in bytes. The swizzle reads absolute address bits, so a swizzled tile
// starts on a multiple of 8 * W bytes (1024 for 128-byte) and a k step inside it moves the start
// address by k * e bytes.
//
// MN-major operands (the transpose flag 1; 16-bit types only, tf32 has no transposed form), after
// CUTLASS's canonical GMMA MN-major layouts (make_gmma_desc<Major::MN>: in 16-byte units
// ((8,n),(8,k)):((1,LBO),(8,SBO)) for the 128-byte swizzle, ((1,n),(8,k)):((X,SBO),(1,LBO))
// without), element (row r of M or N, column k):
//   no swizzle: core matrices of 8 k-rows x 16 bytes of M/N (8 16-bit values) contiguous;
//               adjacent in M/N SBO bytes apart, adjacent in K (8 k-rows on) LBO bytes apart:
//               start + (r * e / 16) * SBO + (r * e) % 16 + (k % 8) * 16 + (k / 8) * LBO.
//   W-byte swizzle: rows of W bytes along M/N, one per k, 8 k-rows W bytes apart, the next 8 k-rows
//               SBO bytes on, the next W bytes of M/N LBO bytes on (LBO and SBO trade meanings
//               with the K-major case), then the same XOR:
//               a = start + (r * e / W) * LBO + (k / 8) * SBO + (k % 8) * W + (r * e) % W.
// A k16 step of an MN-major tile is two groups of 8 k-rows: the start address moves by 2 * SBO.
#include <cstdint>

namespace convkit::wgmma {

enum class Swizzle : std::uint32_t { None = 0, Bytes128 = 1, Bytes64 = 2, Bytes32 = 3 };

// The width in bytes of one swizzled row (16 for None: one core-matrix row).
constexpr std::uint32_t swizzle_width_bytes(Swizzle swizzle) {
    switch (swizzle) {
        case Swizzle::Bytes128:
            return 128;
        case Swizzle::Bytes64:
            return 64;
        case Swizzle::Bytes32:
            return 32;
        case Swizzle::None:
            break;
    }
    return 16;
}

// The physical byte address of logical address `address` in a tile with `swizzle`.
constexpr std::uint32_t swizzled_address(std::uint32_t address, Swizzle swizzle) {
    const std::uint32_t mask = swizzle_width_bytes(swizzle) / 16 - 1;  // 0 without swizzle
    return address ^ (((address >> 7) & mask) << 4);
}

constexpr std::uint64_t descriptor_field(std::uint32_t bytes) {
    return (bytes & 0x3FFFFu) >> 4;
}

constexpr std::uint64_t make_descriptor(std::uint32_t start_address, std::uint32_t leading_byte_offset,
                                        std::uint32_t stride_byte_offset, Swizzle swizzle) {
    return descriptor_field(start_address) | descriptor_field(leading_byte_offset) << 16 |
           descriptor_field(stride_byte_offset) << 32 | std::uint64_t{static_cast<std::uint32_t>(swizzle)} << 62;
}

// The descriptor moved `bytes` further along (a k step inside a tile): the start address field
// only, as a kernel advances it between the k16 steps of one tile.
constexpr std::uint64_t advance_descriptor(std::uint64_t descriptor, std::uint32_t bytes) {
    return descriptor + descriptor_field(bytes);
}

struct Descriptor {
    std::uint32_t start_address, leading_byte_offset, stride_byte_offset, base_offset;
    Swizzle swizzle;
};

constexpr Descriptor decode_descriptor(std::uint64_t d) {
    return {static_cast<std::uint32_t>(d & 0x3FFFu) << 4, static_cast<std::uint32_t>(d >> 16 & 0x3FFFu) << 4,
            static_cast<std::uint32_t>(d >> 32 & 0x3FFFu) << 4, static_cast<std::uint32_t>(d >> 49 & 0x7u),
            static_cast<Swizzle>(d >> 62 & 0x3u)};
}

// Where element (row, k) of an MN-major operand lies (shared-window address), per the layouts above.
constexpr std::uint32_t mn_major_element_address(const Descriptor& d, int row, int k, int element_bytes) {
    const auto r_bytes = static_cast<std::uint32_t>(row * element_bytes);
    const auto kk = static_cast<std::uint32_t>(k);
    if (d.swizzle == Swizzle::None)
        return d.start_address + r_bytes / 16 * d.stride_byte_offset + r_bytes % 16 + kk % 8 * 16 +
               kk / 8 * d.leading_byte_offset;
    const std::uint32_t width = swizzle_width_bytes(d.swizzle);
    return swizzled_address(d.start_address + r_bytes / width * d.leading_byte_offset + kk / 8 * d.stride_byte_offset +
                                kk % 8 * width + r_bytes % width,
                            d.swizzle);
}

// Where element (row, k) of a K-major operand lies (shared-window address), per the layouts above.
constexpr std::uint32_t k_major_element_address(const Descriptor& d, int row, int k, int element_bytes) {
    const auto r = static_cast<std::uint32_t>(row);
    const auto k_bytes = static_cast<std::uint32_t>(k * element_bytes);
    if (d.swizzle == Swizzle::None)
        return d.start_address + r / 8 * d.stride_byte_offset + k_bytes / 16 * d.leading_byte_offset + r % 8 * 16 +
               k_bytes % 16;
    const std::uint32_t width = swizzle_width_bytes(d.swizzle);
    return swizzled_address(d.start_address + r / 8 * d.stride_byte_offset + r % 8 * width + k_bytes, d.swizzle);
}

}  // namespace convkit::wgmma
