#pragma once
// Bulk tensor copy problems for the probe (tests/emu/bulk_tensor_copy.cu) with the bytes each box
// must leave in shared memory, written from the definition (kernels/tensor_map.h), shared by the
// emulator's test (test_emu_model.cpp) and the GPU's (test_cuda_wgmma.cpp).
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

}  // namespace convkit::testing
