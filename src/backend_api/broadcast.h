#pragma once
// Broadcasting (NumPy / PyTorch rules): shapes are aligned at their last dim, and a dim of size
// 1 stretches to the other operand's size. Every backend indexes through the constexpr helpers
// below, so the host loop and the CUDA kernel share the index math and differ only in how they
// spread the elements over threads.
#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "convkit/memory_format.h"
#include "convkit/shape.h"

namespace convkit::detail {

// The result shape and, per operand, the stride of each result dim in that operand (0 where the
// operand is broadcast). Dims are right-aligned in arrays of kMaxRank (leading dims of size 1),
// adjacent dims that index alike merged into one (so `out` is the result's shape only up to
// those merges; `count` is its element count).
struct BroadcastGeometry {
    static constexpr int kRank = Shape::kMaxRank;
    std::array<std::int64_t, kRank> out{1, 1, 1, 1, 1};
    std::array<std::int64_t, kRank> a_stride{0, 0, 0, 0, 0};
    std::array<std::int64_t, kRank> b_stride{0, 0, 0, 0, 0};
    std::int64_t count = 1;  // elements of the result
};

// The broadcast of `a` and `b`; throws InvalidArgument naming `op` and both shapes otherwise.
BroadcastGeometry broadcast_geometry(const std::string& op, const Shape& a, const Shape& b);
// The same over buffers in any memory format: `a` and `b` read in theirs, the result written in
// `out_format`. The index walks the result's buffer, so the dims are in its order (N, spatial...,
// C for channels-last) and each operand's strides are its own buffer's (a channels-last
// activation plus a [C, 1, 1] bias: the bias steps along the innermost dim).
BroadcastGeometry broadcast_geometry(const std::string& op, const Shape& a, MemoryFormat a_format, const Shape& b,
                                     MemoryFormat b_format, MemoryFormat out_format);
Shape broadcast_shape(const std::string& op, const Shape& a, const Shape& b);

// The offsets in a and b of result element `index`.
struct OperandOffsets {
    std::int64_t a = 0;
    std::int64_t b = 0;
};
constexpr OperandOffsets broadcast_offsets(const BroadcastGeometry& g, std::int64_t index) {
    OperandOffsets offsets;
    for (int d = BroadcastGeometry::kRank - 1; d >= 0; --d) {
        if (g.out[d] == 1) continue;  // (coordinate 0: a division fewer)
        const std::int64_t coordinate = index % g.out[d];
        index /= g.out[d];
        offsets.a += coordinate * g.a_stride[d];
        offsets.b += coordinate * g.b_stride[d];
    }
    return offsets;
}

// Summing a broadcast result back to the shape of one operand: every element of the reduced
// shape is the sum of `terms` elements of the full one.
struct ReduceToShapeGeometry {
    static constexpr int kRank = Shape::kMaxRank;
    // The broadcast shape and the operand's (1 where summed), adjacent dims both kept or both
    // summed merged into one (as BroadcastGeometry's).
    std::array<std::int64_t, kRank> full{1, 1, 1, 1, 1};
    std::array<std::int64_t, kRank> reduced{1, 1, 1, 1, 1};
    std::int64_t count = 1;                                  // elements of the reduced shape
    std::int64_t terms = 1;                                  // full elements per reduced element
};

ReduceToShapeGeometry reduce_to_shape_geometry(const std::string& op, const Shape& full, const Shape& reduced);
// The same for a full tensor whose buffer is in `full_format`: the terms are read in that buffer
// and the reduced elements written in the order its kept dims have there, which is the buffer of
// `reduced` in `reduced_buffer_format(full, full_format, reduced)`.
ReduceToShapeGeometry reduce_to_shape_geometry(const std::string& op, const Shape& full, MemoryFormat full_format,
                                               const Shape& reduced);
// The memory format whose buffer of `reduced` orders its elements as a sum of a `full_format`
// buffer of `full` writes them: contiguous where the kept dims keep their logical order there
// (always, for a contiguous `full`), channels-last where `reduced` has full's rank, else none (the
// caller converts `full` to contiguous first).
std::optional<MemoryFormat> reduced_buffer_format(const Shape& full, MemoryFormat full_format, const Shape& reduced);

// The offset in the full tensor of term `term` (in [0, terms)) of reduced element `index`.
constexpr std::int64_t reduce_to_shape_source(const ReduceToShapeGeometry& g, std::int64_t index, std::int64_t term) {
    std::int64_t offset = 0;
    std::int64_t stride = 1;
    for (int d = ReduceToShapeGeometry::kRank - 1; d >= 0; --d) {
        if (g.full[d] == 1) continue;  // (coordinate 0, stride unchanged: a division fewer)
        std::int64_t coordinate;
        if (g.reduced[d] == g.full[d]) {
            coordinate = index % g.reduced[d];
            index /= g.reduced[d];
        } else {  // a summed dim: the coordinate comes from the term
            coordinate = term % g.full[d];
            term /= g.full[d];
        }
        offset += coordinate * stride;
        stride *= g.full[d];
    }
    return offset;
}

}  // namespace convkit::detail
