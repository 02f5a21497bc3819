#pragma once
// A tiled tensor map: what Hopper's bulk tensor copy (TMA, cp.async.bulk.tensor, sm_90) reads to
// copy a box of a global tensor into shared memory (kernels/ptx.cuh: bulk_tensor_load). Plain C++,
// shared by the launchers that encode maps (kernels/tensor_map.cu: the driver's
// cuTensorMapEncodeTiled under nvcc, the emulator's own encoding in the CPU build) and by the
// emulator that executes the copies (src/emu/bulk_tensor.cpp).
//
// The copy (PTX ISA "Tensor copy", tile mode; CUDA driver API cuTensorMapEncodeTiled): the tensor
// has `rank` dimensions, dims[0] innermost and contiguous, dimension i > 0 strides[i] bytes apart.
// A copy at coordinates c (signed) reads the box of box[0] x ... x box[rank - 1] elements from
// c, element (i0, ...) at global + sum((c_i + i_i) * stride_i) (stride_0 the element size),
// and writes them densely to shared memory, i0 fastest, each element whose position lies outside
// the tensor (a coordinate < 0 or >= dims) as zero. With a swizzle, the byte at offset o of the
// box lands at offset wgmma::swizzled_address(o) (the same address-bit XOR the wgmma descriptors
// describe, on the shared-window address), so a box of 128-byte rows written with
// Swizzle::Bytes128 is exactly the K-major tile a 128-byte-swizzled descriptor reads. The copy
// always counts the whole box's bytes (box_bytes) as transactions on its mbarrier, the padding
// included.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/kernels_namespace.h"
#include "kernels/wgmma_descriptor.h"

namespace convkit::tma {

inline constexpr int kMaxRank = 5;
inline constexpr std::uint32_t kMaxBoxDim = 256;

enum class ElementType : std::uint32_t { BFloat16, Float16, Float32 };

constexpr std::uint32_t element_bytes(ElementType type) {
    return type == ElementType::Float32 ? 4 : 2;
}

// cuTensorMapEncodeTiled's arguments as this project uses them: no interleave, element strides of
// 1, zeros outside the tensor (CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE).
struct TiledTensorMapSpec {
    const void* global = nullptr;
    ElementType type = ElementType::BFloat16;
    int rank = 0;
    std::array<std::uint64_t, kMaxRank> dims{};     // elements, innermost first
    std::array<std::uint64_t, kMaxRank> strides{};  // bytes between neighbours along dimension i (i >= 1)
    std::array<std::uint32_t, kMaxRank> box{};      // elements a copy moves along each dimension
    wgmma::Swizzle swizzle = wgmma::Swizzle::None;
};

// The box's bytes in shared memory, and the transaction count one copy completes.
constexpr std::uint64_t box_bytes(const TiledTensorMapSpec& s) {
    std::uint64_t bytes = element_bytes(s.type);
    for (int i = 0; i < s.rank; ++i) bytes *= s.box[static_cast<std::size_t>(i)];
    return bytes;
}

// The rules both kinds of map share (the driver's, for cuTensorMapEncodeTiled and
// cuTensorMapEncodeIm2col): "" when they hold, else the broken one.
namespace rules {
inline std::string global_address_problem(const void* global) {
    return reinterpret_cast<std::uintptr_t>(global) % 16 != 0 ? "the global address is not 16-byte aligned" : "";
}

// Dimension i's size, and its byte stride (dimension 0's is the element's).
inline std::string dimension_problem(int i, std::uint64_t size, std::uint64_t stride) {
    const std::string dim = "dimension " + std::to_string(i) + ": ";
    if (size < 1 || size > (std::uint64_t{1} << 32)) return dim + "size " + std::to_string(size) + " (1 to 2^32)";
    if (i > 0 && (stride % 16 != 0 || stride >= (std::uint64_t{1} << 40)))
        return dim + "stride " + std::to_string(stride) + " bytes (a multiple of 16 below 2^40)";
    return {};
}

// The bytes a copy moves along dimension 0 (`what`: "the box's inner", "a pixel's").
inline std::string inner_bytes_problem(const char* what, std::uint64_t bytes, wgmma::Swizzle swizzle) {
    if (bytes % 16 != 0) return std::string(what) + " " + std::to_string(bytes) + " bytes (a multiple of 16)";
    if (swizzle != wgmma::Swizzle::None && bytes > wgmma::swizzle_width_bytes(swizzle)) {
        return std::string(what) + " " + std::to_string(bytes) + " bytes exceed the swizzle's " +
               std::to_string(wgmma::swizzle_width_bytes(swizzle));
    }
    return {};
}
}  // namespace rules

// The driver's rules for a tiled map (cuTensorMapEncodeTiled: "" when they hold, else the first
// broken one). Checked before encoding in both builds, so a bad map is the same InvalidArgument
// with or without a GPU.
inline std::string tiled_tensor_map_problem(const TiledTensorMapSpec& s) {
    if (s.rank < 1 || s.rank > kMaxRank) return "rank " + std::to_string(s.rank) + " (1 to 5)";
    if (std::string problem = rules::global_address_problem(s.global); !problem.empty()) return problem;
    for (int i = 0; i < s.rank; ++i) {
        const auto at = static_cast<std::size_t>(i);
        if (std::string problem = rules::dimension_problem(i, s.dims[at], s.strides[at]); !problem.empty())
            return problem;
        if (s.box[at] < 1 || s.box[at] > kMaxBoxDim)
            return "dimension " + std::to_string(i) + ": box " + std::to_string(s.box[at]) + " (1 to 256)";
    }
    return rules::inner_bytes_problem("the box's inner", std::uint64_t{s.box[0]} * element_bytes(s.type), s.swizzle);
}

// An im2col map (cuTensorMapEncodeIm2col; PTX ISA "Tensor copy", im2col mode): a channels-last
// activation tensor of `rank` 3 to 5 dims, (C, W, N), (C, W, H, N) or (C, W, H, D, N), C innermost
// and contiguous. Per spatial dim i (W, H, D) a bounding box runs from lower[i] to
// dims[i + 1] - 1 + upper[i] (inclusive; a convolution's -padding and padding - (kernel - 1) *
// dilation), walked in steps of traversal[i] (its stride). A copy at coordinates (c, w, h, d, n)
// with offsets (ow, oh, od) reads pixels_per_column pixels: from (w, h, d, n), each next pixel
// `traversal` further along W, back to the box's lower W and one step along H past its upper end,
// and so on through D and then N (one image on); pixel p's channels c .. c + channels_per_pixel - 1
// at (w + ow, h + oh, d + od, n) land as row p of the box (channels_per_pixel elements a row,
// swizzled as a tiled box), zeros where that position is outside the tensor. So a GEMM's 128 rows of
// output positions and one filter tap (the offsets: tap x dilation) are one copy.
struct Im2colTensorMapSpec {
    const void* global = nullptr;
    ElementType type = ElementType::BFloat16;
    int rank = 0;
    std::array<std::uint64_t, kMaxRank> dims{};     // C, W, H, D, N (the rank's first ones, N last)
    std::array<std::uint64_t, kMaxRank> strides{};  // bytes, dimension i >= 1
    std::array<int, 3> lower{}, upper{};            // W, H, D
    std::array<std::uint32_t, 3> traversal{1, 1, 1};
    std::uint32_t channels_per_pixel = 0, pixels_per_column = 0;
    wgmma::Swizzle swizzle = wgmma::Swizzle::None;
};

// The largest offset an im2col copy of a map of `rank` takes along each spatial dim: the
// instruction's offsets share 16 bits between the spatial dims (16, 8 or 5 bits each), and
// CUTLASS keeps a convolution's (kernel - 1) x dilation below 2^bits - 1 (its implementable()
// check), which this follows.
constexpr int im2col_largest_offset(int rank) {
    return (1 << (16 / (rank - 2))) - 2;
}

constexpr std::uint64_t box_bytes(const Im2colTensorMapSpec& s) {
    return std::uint64_t{element_bytes(s.type)} * s.channels_per_pixel * s.pixels_per_column;
}

// The driver's rules for an im2col map ("" when they hold).
inline std::string im2col_tensor_map_problem(const Im2colTensorMapSpec& s) {
    if (s.rank < 3 || s.rank > kMaxRank) return "rank " + std::to_string(s.rank) + " (3 to 5)";
    if (std::string problem = rules::global_address_problem(s.global); !problem.empty()) return problem;
    const int spatial = s.rank - 2;
    // The corners' range narrows with the rank: 16 bits for one spatial dim, 8 for two, 5 for three.
    const int reach = s.rank == 3 ? 32768 : s.rank == 4 ? 128 : 16;
    for (int i = 0; i < s.rank; ++i) {
        const auto at = static_cast<std::size_t>(i);
        if (std::string problem = rules::dimension_problem(i, s.dims[at], s.strides[at]); !problem.empty())
            return problem;
    }
    for (int i = 0; i < spatial; ++i) {
        const auto at = static_cast<std::size_t>(i);
        const std::string dim = "spatial dimension " + std::to_string(i) + ": ";
        if (s.lower[at] < -reach || s.lower[at] >= reach || s.upper[at] < -reach || s.upper[at] >= reach)
            return dim + "corners " + std::to_string(s.lower[at]) + " and " + std::to_string(s.upper[at]) + " (-" +
                   std::to_string(reach) + " to " + std::to_string(reach - 1) + " at rank " + std::to_string(s.rank) +
                   ")";
        if (static_cast<std::int64_t>(s.dims[at + 1]) + s.upper[at] - s.lower[at] < 1)
            return dim + "an empty bounding box";
        if (s.traversal[at] < 1 || s.traversal[at] > 8)
            return dim + "traversal stride " + std::to_string(s.traversal[at]) + " (1 to 8)";
    }
    if (s.channels_per_pixel < 1 || s.channels_per_pixel > 256)
        return "channels per pixel " + std::to_string(s.channels_per_pixel) + " (1 to 256)";
    if (s.pixels_per_column < 1 || s.pixels_per_column > 1024)
        return "pixels per column " + std::to_string(s.pixels_per_column) + " (1 to 1024)";
    return rules::inner_bytes_problem("a pixel's", std::uint64_t{s.channels_per_pixel} * element_bytes(s.type),
                                      s.swizzle);
}

// The map itself: 128 opaque bytes, 128-byte aligned, as CUtensorMap. A kernel takes it as a
// `const __grid_constant__` parameter, whose address the copy instruction reads.
struct alignas(128) TensorMap {
    std::uint64_t opaque[16];
};

}  // namespace convkit::tma

CONVKIT_KERNELS_BEGIN
// Encodes `spec` (throws InvalidArgument naming `op` and the broken rule; a CudaError where the
// driver refuses it or has no cuTensorMapEncodeTiled). The CPU build encodes it for the emulator
// (emu/ptx_emulation.h); nvcc's asks the driver, looked up once through the runtime.
tma::TensorMap encode_tiled_tensor_map(const char* op, const tma::TiledTensorMapSpec& spec);
// The same for an im2col map (the driver's cuTensorMapEncodeIm2col).
tma::TensorMap encode_im2col_tensor_map(const char* op, const tma::Im2colTensorMapSpec& spec);
CONVKIT_KERNELS_END
