#pragma once
// Bulk tensor copy problems for the probe (tests/emu/bulk_tensor_copy.cu) with the bytes each box
// must leave in shared memory, written from the definition (kernels/tensor_map.h), shared by the
// emulator's test (test_emu_model.cpp) and the GPU's (test_cuda_wgmma.cpp).
#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/tensor_map.h"
#include "kernels/wgmma_descriptor.h"

namespace convkit::testing {

struct BulkCopyProblem {
    std::string name;
    tma::TiledTensorMapSpec spec;  // its global: set to where the tensor lies before encoding
    std::vector<unsigned char> tensor;
    std::vector<int> coordinates;  // rank per box
    int boxes = 0;
    std::vector<unsigned char> expected;  // box_bytes per box
};

// The bytes a copy of `spec`'s box at `at` leaves in a stage starting on a 1024-byte boundary:
// element (i0, ...) of the box, i0 fastest, at its dense offset moved by the swizzle; zero where
// the position lies outside the tensor.
inline std::vector<unsigned char> expected_box(const tma::TiledTensorMapSpec& spec,
                                               const std::vector<unsigned char>& tensor, const int* at) {
    const std::uint32_t element = tma::element_bytes(spec.type);
    std::vector<unsigned char> box(tma::box_bytes(spec), 0);
    for (std::uint64_t e = 0; e < box.size() / element; ++e) {
        std::uint64_t rest = e, offset = 0;
        bool inside = true;
        for (int i = 0; i < spec.rank; ++i) {
            const auto d = static_cast<std::size_t>(i);
            const std::int64_t position = at[i] + static_cast<std::int64_t>(rest % spec.box[d]);
            rest /= spec.box[d];
            if (position < 0 || position >= static_cast<std::int64_t>(spec.dims[d])) inside = false;
            if (inside) offset += static_cast<std::uint64_t>(position) * (i == 0 ? element : spec.strides[d]);
        }
        if (!inside) continue;
        const std::uint32_t landing = wgmma::swizzled_address(static_cast<std::uint32_t>(e * element), spec.swizzle);
        std::memcpy(box.data() + landing, tensor.data() + offset, element);
    }
    return box;
}

// A tensor of random bytes (no value is special to a copy) whose dense strides are those of
// `dims` with dimension 1's row padded by `row_padding` bytes, and its boxes' expected bytes.
inline BulkCopyProblem bulk_copy_problem(std::string name, tma::ElementType type, std::vector<std::uint64_t> dims,
                                         std::vector<std::uint32_t> box, wgmma::Swizzle swizzle,
                                         std::uint64_t row_padding, std::vector<int> coordinates,
                                         std::mt19937_64& rng) {
    BulkCopyProblem p;
    p.name = std::move(name);
    p.spec.type = type;
    p.spec.rank = static_cast<int>(dims.size());
    p.spec.swizzle = swizzle;
    std::uint64_t stride = dims[0] * tma::element_bytes(type) + row_padding;
    for (std::size_t i = 0; i < dims.size(); ++i) {
        p.spec.dims[i] = dims[i];
        p.spec.box[i] = box[i];
        if (i > 0) {
            p.spec.strides[i] = stride;
            stride *= dims[i];
        }
    }
    p.tensor.resize(stride);
    for (unsigned char& byte : p.tensor) byte = static_cast<unsigned char>(rng());
    p.coordinates = std::move(coordinates);
    p.boxes = static_cast<int>(p.coordinates.size()) / p.spec.rank;
    for (int b = 0; b < p.boxes; ++b) {
        const std::vector<unsigned char> one =
            expected_box(p.spec, p.tensor, p.coordinates.data() + static_cast<std::ptrdiff_t>(b) * p.spec.rank);
        p.expected.insert(p.expected.end(), one.begin(), one.end());
    }
    return p;
}

// The probe's cases: the wgmma producer's forward weight map (k, channels, groups: a partial last k
// tile, rows before the first and past the last channel, a whole group outside), its
// backward-data map (k, taps, channels, groups), a float32 one, and an unswizzled box of padded rows.
inline std::vector<BulkCopyProblem> bulk_copy_problems(std::mt19937_64& rng) {
    using tma::ElementType;
    using wgmma::Swizzle;
    return {
        bulk_copy_problem("forward_weight_bf16", ElementType::BFloat16, {72, 10, 3}, {64, 16, 1}, Swizzle::Bytes128, 0,
                          {0, 0, 0, 64, 0, 1, 0, -3, 2, 64, 8, 2, 0, 0, 3, -64, 0, 0}, rng),
        bulk_copy_problem("backward_data_weight_f16", ElementType::Float16, {64, 9, 10, 2}, {64, 1, 16, 1},
                          Swizzle::Bytes128, 0, {0, 4, 0, 1, 0, 8, 0, 0, 0, 0, -6, 1}, rng),
        bulk_copy_problem("weight_f32", ElementType::Float32, {40, 7, 2}, {32, 8, 1}, Swizzle::Bytes128, 0,
                          {0, 0, 0, 32, 0, 1, 0, -1, 1}, rng),
        bulk_copy_problem("padded_rows_unswizzled", ElementType::BFloat16, {24, 5, 3}, {16, 4, 2}, Swizzle::None, 16,
                          {8, 2, 1, 0, 0, 0}, rng),
    };
}

// ---- im2col mode -------------------------------------------------------------------------------

struct BulkIm2colProblem {
    std::string name;
    tma::Im2colTensorMapSpec spec;  // its global: set to where the tensor lies before encoding
    std::vector<unsigned char> tensor;
    std::vector<int> coordinates;        // rank per box: c, w[, h[, d]], n
    std::vector<std::uint16_t> offsets;  // rank - 2 per box: w[, h[, d]]
    int boxes = 0;
    std::vector<unsigned char> expected;  // box_bytes per box
};

// The bytes an im2col copy of `spec` at `at` with `offsets` leaves in a stage starting on a
// 1024-byte boundary, from the definition (kernels/tensor_map.h): the walk's pixels as rows,
// written out as the positions they read, zeros outside the tensor.
inline std::vector<unsigned char> expected_im2col_box(const tma::Im2colTensorMapSpec& s,
                                                      const std::vector<unsigned char>& tensor, const int* at,
                                                      const std::uint16_t* offsets) {
    const int spatial = s.rank - 2;
    const std::uint32_t element = tma::element_bytes(s.type);
    std::vector<unsigned char> box(tma::box_bytes(s), 0);
    // The walk's pixels in order: the w (then h, d) positions of the bounding box from the
    // first pixel's, traversal steps apart, then the next image's.
    std::vector<std::array<std::int64_t, 4>> pixels;  // w, h, d, n
    std::array<std::int64_t, 4> first{0, 0, 0, at[s.rank - 1]};
    for (int i = 0; i < spatial; ++i) first[static_cast<std::size_t>(i)] = at[1 + i];
    std::array<std::int64_t, 4> pixel = first;
    while (pixels.size() < s.pixels_per_column) {
        pixels.push_back(pixel);
        int i = 0;
        for (; i < spatial; ++i) {
            const auto d = static_cast<std::size_t>(i);
            pixel[d] += s.traversal[d];
            if (pixel[d] < static_cast<std::int64_t>(s.dims[d + 1]) + s.upper[d]) break;
            pixel[d] = s.lower[d];
        }
        if (i == spatial) ++pixel[3];
    }
    for (std::size_t p = 0; p < pixels.size(); ++p) {
        bool inside =
            pixels[p][3] >= 0 && pixels[p][3] < static_cast<std::int64_t>(s.dims[static_cast<std::size_t>(s.rank - 1)]);
        std::uint64_t offset =
            inside ? static_cast<std::uint64_t>(pixels[p][3]) * s.strides[static_cast<std::size_t>(s.rank - 1)] : 0;
        for (int i = 0; i < spatial && inside; ++i) {
            const auto d = static_cast<std::size_t>(i);
            const std::int64_t read = pixels[p][d] + offsets[i];
            inside = read >= 0 && read < static_cast<std::int64_t>(s.dims[d + 1]);
            offset += inside ? static_cast<std::uint64_t>(read) * s.strides[d + 1] : 0;
        }
        for (std::uint32_t c = 0; c < s.channels_per_pixel && inside; ++c) {
            const std::int64_t channel = at[0] + static_cast<std::int64_t>(c);
            if (channel >= static_cast<std::int64_t>(s.dims[0])) continue;
            const auto in_box = static_cast<std::uint32_t>((p * s.channels_per_pixel + c) * element);
            std::memcpy(box.data() + wgmma::swizzled_address(in_box, s.swizzle),
                        tensor.data() + offset + static_cast<std::uint64_t>(channel) * element, element);
        }
    }
    return box;
}

// A channels-last tensor of random bytes with dims (C, W[, H[, D]], N) (dense, no padding), the
// convolution's bounding box (lower -padding, upper padding - (kernel - 1) x dilation, stride), and
// its boxes' expected bytes.
inline BulkIm2colProblem bulk_im2col_problem(std::string name, tma::ElementType type, std::vector<std::uint64_t> dims,
                                             std::vector<int> kernel, std::vector<int> padding,
                                             std::vector<int> dilation, std::vector<std::uint32_t> stride,
                                             std::uint32_t channels, std::uint32_t pixels, wgmma::Swizzle swizzle,
                                             std::vector<int> coordinates, std::vector<std::uint16_t> offsets,
                                             std::mt19937_64& rng) {
    BulkIm2colProblem p;
    p.name = std::move(name);
    tma::Im2colTensorMapSpec& s = p.spec;
    s.type = type;
    s.rank = static_cast<int>(dims.size());
    s.swizzle = swizzle;
    s.channels_per_pixel = channels;
    s.pixels_per_column = pixels;
    std::uint64_t bytes = tma::element_bytes(type);
    for (std::size_t i = 0; i < dims.size(); ++i) {
        s.dims[i] = dims[i];
        if (i > 0) s.strides[i] = bytes;
        bytes *= dims[i];
    }
    for (std::size_t i = 0; i < kernel.size(); ++i) {
        s.lower[i] = -padding[i];
        s.upper[i] = padding[i] - (kernel[i] - 1) * dilation[i];
        s.traversal[i] = stride[i];
    }
    p.tensor.resize(bytes);
    for (unsigned char& byte : p.tensor) byte = static_cast<unsigned char>(rng());
    p.coordinates = std::move(coordinates);
    p.offsets = std::move(offsets);
    p.boxes = static_cast<int>(p.coordinates.size()) / s.rank;
    for (int b = 0; b < p.boxes; ++b) {
        const std::vector<unsigned char> one =
            expected_im2col_box(s, p.tensor, p.coordinates.data() + static_cast<std::ptrdiff_t>(b) * s.rank,
                                p.offsets.data() + static_cast<std::ptrdiff_t>(b) * (s.rank - 2));
        p.expected.insert(p.expected.end(), one.begin(), one.end());
    }
    return p;
}

// The probe's im2col cases: a 3x3 'same' convolution's 128-row tiles over small images (the walk
// across image edges and past the last image), with taps' offsets and a channel range past C; a
// 3x3/2 one (the traversal stride); a larger tensor (over 128 KiB); W and H of different kernels,
// paddings, strides and dilations; 1-D (rank 3, dilation 2) with 64-byte pixels (a 128-byte swizzle
// of half-line rows, which no kernel here uses: if only this case fails on a GPU, the reading of
// the swizzle for short rows is wrong, not the walk); 3-D (rank 5) unswizzled.
inline std::vector<BulkIm2colProblem> bulk_im2col_problems(std::mt19937_64& rng) {
    using tma::ElementType;
    using wgmma::Swizzle;
    return {
        bulk_im2col_problem("conv3x3_same_bf16", ElementType::BFloat16, {80, 7, 5, 3}, {3, 3}, {1, 1}, {1, 1}, {1, 1},
                            64, 128, Swizzle::Bytes128, {0, -1, -1, 0, 16, 2, 1, 1, 64, -1, -1, 2}, {0, 0, 2, 1, 1, 2},
                            rng),
        bulk_im2col_problem("conv3x3_stride2_f16", ElementType::Float16, {64, 9, 8, 4}, {3, 3}, {1, 1}, {1, 1}, {2, 2},
                            64, 128, Swizzle::Bytes128, {0, -1, -1, 0, 0, 3, 1, 1}, {1, 1, 2, 0}, rng),
        bulk_im2col_problem("conv3x3_large_bf16", ElementType::BFloat16, {64, 32, 32, 2}, {3, 3}, {1, 1}, {1, 1},
                            {1, 1}, 64, 128, Swizzle::Bytes128, {0, -1, -1, 0, 0, 29, 30, 1}, {2, 2, 0, 1}, rng),
        // Every spatial parameter different along W and H (W: kernel 5, padding 2, stride 2; H:
        // kernel 3, padding 1, dilation 2) on a non-square input: a W/H mix-up anywhere differs.
        bulk_im2col_problem("conv5x3_asymmetric_bf16", ElementType::BFloat16, {64, 11, 6, 3}, {5, 3}, {2, 1}, {1, 2},
                            {2, 1}, 64, 128, Swizzle::Bytes128, {0, -2, -1, 0, 0, 2, 0, 1}, {4, 4, 1, 2}, rng),
        bulk_im2col_problem("conv1d_k5_dilation2_f16", ElementType::Float16, {64, 40, 2}, {5}, {2}, {2}, {1}, 32, 64,
                            Swizzle::Bytes128, {32, -2, 0, 0, 10, 1}, {4, 8}, rng),
        bulk_im2col_problem("conv3d_bf16_unswizzled", ElementType::BFloat16, {16, 6, 5, 4, 2}, {3, 3, 3}, {1, 1, 1},
                            {1, 1, 1}, {1, 1, 1}, 16, 96, Swizzle::None, {0, -1, -1, -1, 0, 0, 2, 1, 0, 1},
                            {1, 1, 1, 2, 0, 1}, rng),
    };
}

}  // namespace convkit::testing
