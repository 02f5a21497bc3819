#include "backend_api/broadcast.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "core/check.h"

namespace convkit::detail {

namespace {
// `shape`'s dims right-aligned in kMaxRank slots, leading slots 1.
std::array<std::int64_t, Shape::kMaxRank> right_aligned(const Shape& shape) {
    std::array<std::int64_t, Shape::kMaxRank> dims{1, 1, 1, 1, 1};
    const int offset = Shape::kMaxRank - shape.rank();
    for (int d = 0; d < shape.rank(); ++d) dims[static_cast<std::size_t>(offset + d)] = shape[d];
    return dims;
}

using Dims = std::array<std::int64_t, Shape::kMaxRank>;
using Order = std::array<int, Shape::kMaxRank>;

// The slots of a rank-`rank` shape's right-aligned dims from the outermost to the innermost of a
// buffer in `format`: the logical order, or for channels-last N, spatial..., C (the leading
// slots, of extent 1, first either way).
Order buffer_order(int rank, MemoryFormat format) {
    Order order{};
    std::iota(order.begin(), order.end(), 0);
    if (format == MemoryFormat::ChannelsLast && channels_last_rank(rank)) {
        const auto channels = order.begin() + (Shape::kMaxRank - rank + 1);
        std::rotate(channels, channels + 1, order.end());  // C after the spatial dims
    }
    return order;
}

// The element strides of a buffer of `shape` in `format`, right-aligned like its dims.
Dims buffer_strides(const Shape& shape, MemoryFormat format) {
    const Dims dims = right_aligned(shape);
    const Order order = buffer_order(shape.rank(), format);
    Dims strides{};
    std::int64_t stride = 1;
    for (int k = Shape::kMaxRank - 1; k >= 0; --k) {
        const auto slot = static_cast<std::size_t>(order[static_cast<std::size_t>(k)]);
        strides[slot] = stride;
        stride *= dims[slot];
    }
    return strides;
}

// An operand's strides for each dim of the result `out`: its buffer's, 0 where it is broadcast
// (its extent 1, the result's larger).
Dims broadcast_strides(const Shape& operand, MemoryFormat format, const Dims& out) {
    const Dims dims = right_aligned(operand);
    Dims strides = buffer_strides(operand, format);
    for (std::size_t i = 0; i < strides.size(); ++i) {
        if (dims[i] != out[i]) strides[i] = 0;
    }
    return strides;
}

// `dims` in `order` (the slot each position holds).
Dims in_order(const Dims& dims, const Order& order) {
    Dims ordered{};
    for (std::size_t k = 0; k < ordered.size(); ++k) ordered[k] = dims[static_cast<std::size_t>(order[k])];
    return ordered;
}

// The geometries merge adjacent dims that index alike and drop dims of 1, keeping every
// element's offsets: the kernels then divide an index by fewer extents (a bias-like [N, C, H, W]
// with [1, C, 1, 1] becomes [N, C, H * W], 3 divisions an element instead of 5). The merged
// dims are right-aligned, leading slots 1.
//
// `dims` innermost first without those whose extent is 1, each joined into the one inside it
// where `join(inner, dim)` does so (and says it did).
template <typename Dim, typename Extent, typename Join>
std::vector<Dim> merged_dims(const std::array<Dim, Shape::kMaxRank>& dims, Extent extent, Join join) {
    std::vector<Dim> merged;
    for (int d = Shape::kMaxRank - 1; d >= 0; --d) {
        const Dim& dim = dims[static_cast<std::size_t>(d)];
        if (extent(dim) == 1) continue;
        if (merged.empty() || !join(merged.back(), dim)) merged.push_back(dim);
    }
    return merged;
}

void merge_dims(BroadcastGeometry& g) {
    struct Dim {
        std::int64_t size, a_stride, b_stride;
    };
    std::array<Dim, Shape::kMaxRank> dims{};
    for (std::size_t i = 0; i < dims.size(); ++i) dims[i] = {g.out[i], g.a_stride[i], g.b_stride[i]};
    const std::vector<Dim> merged = merged_dims(
        dims, [](const Dim& dim) { return dim.size; },
        [](Dim& inner, const Dim& dim) {
            // One dim of both extents, with the inner one's strides, where both operands step on.
            if (dim.a_stride != inner.a_stride * inner.size || dim.b_stride != inner.b_stride * inner.size)
                return false;
            inner.size *= dim.size;
            return true;
        });
    g.out.fill(1);
    g.a_stride.fill(0);
    g.b_stride.fill(0);
    for (std::size_t k = 0; k < merged.size(); ++k) {
        const std::size_t i = Shape::kMaxRank - 1 - k;
        std::tie(g.out[i], g.a_stride[i], g.b_stride[i]) =
            std::tie(merged[k].size, merged[k].a_stride, merged[k].b_stride);
    }
}

// The same for a sum to a shape: adjacent dims both kept or both summed become one.
void merge_dims(ReduceToShapeGeometry& g) {
    using Dim = std::pair<std::int64_t, std::int64_t>;  // full, reduced
    std::array<Dim, Shape::kMaxRank> dims{};
    for (std::size_t i = 0; i < dims.size(); ++i) dims[i] = {g.full[i], g.reduced[i]};
    const std::vector<Dim> merged = merged_dims(
        dims, [](const Dim& dim) { return dim.first; },
        [](Dim& inner, const Dim& dim) {
            const auto kept = [](const Dim& d) { return d.first == d.second; };
            if (kept(dim) != kept(inner)) return false;
            inner = {inner.first * dim.first, inner.second * dim.second};  // kept: the product; summed: 1
            return true;
        });
    g.full.fill(1);
    g.reduced.fill(1);
    for (std::size_t k = 0; k < merged.size(); ++k) {
        std::tie(g.full[Shape::kMaxRank - 1 - k], g.reduced[Shape::kMaxRank - 1 - k]) = merged[k];
    }
}
}  // namespace

Shape broadcast_shape(const std::string& op, const Shape& a, const Shape& b) {
    const int rank = std::max(a.rank(), b.rank());
    const auto da = right_aligned(a);
    const auto db = right_aligned(b);
    std::vector<std::int64_t> dims;
    for (int d = Shape::kMaxRank - rank; d < Shape::kMaxRank; ++d) {
        const auto i = static_cast<std::size_t>(d);
        CONVKIT_REQUIRE(da[i] == db[i] || da[i] == 1 || db[i] == 1, op, "shapes ", a.to_string(), " and ",
                        b.to_string(), " cannot be broadcast together (dim ", d - (Shape::kMaxRank - rank), ": ",
                        da[i], " vs ", db[i], ")");
        dims.push_back(da[i] == 1 ? db[i] : da[i]);
    }
    return Shape(dims);
}

BroadcastGeometry broadcast_geometry(const std::string& op, const Shape& a, const Shape& b) {
    return broadcast_geometry(op, a, MemoryFormat::Contiguous, b, MemoryFormat::Contiguous, MemoryFormat::Contiguous);
}

BroadcastGeometry broadcast_geometry(const std::string& op, const Shape& a, MemoryFormat a_format, const Shape& b,
                                     MemoryFormat b_format, MemoryFormat out_format) {
    const Shape out = broadcast_shape(op, a, b);
    const Dims out_dims = right_aligned(out);
    const Order order = buffer_order(out.rank(), out_format);
    BroadcastGeometry g;
    g.out = in_order(out_dims, order);
    g.a_stride = in_order(broadcast_strides(a, a_format, out_dims), order);
    g.b_stride = in_order(broadcast_strides(b, b_format, out_dims), order);
    g.count = out.numel();
    merge_dims(g);
    return g;
}

ReduceToShapeGeometry reduce_to_shape_geometry(const std::string& op, const Shape& full, const Shape& reduced) {
    return reduce_to_shape_geometry(op, full, MemoryFormat::Contiguous, reduced);
}

ReduceToShapeGeometry reduce_to_shape_geometry(const std::string& op, const Shape& full, MemoryFormat full_format,
                                               const Shape& reduced) {
    CONVKIT_REQUIRE(broadcast_shape(op, full, reduced) == full, op, "shape ", reduced.to_string(),
                    " does not broadcast to ", full.to_string());
    const Order order = buffer_order(full.rank(), full_format);
    ReduceToShapeGeometry g;
    g.full = in_order(right_aligned(full), order);
    g.reduced = in_order(right_aligned(reduced), order);
    g.count = reduced.numel();
    g.terms = g.count == 0 ? 0 : full.numel() / g.count;
    merge_dims(g);
    return g;
}

std::optional<MemoryFormat> reduced_buffer_format(const Shape& full, MemoryFormat full_format, const Shape& reduced) {
    const Dims full_dims = right_aligned(full);
    const Dims reduced_dims = right_aligned(reduced);
    int previous_kept = -1;
    bool logical_order = true;
    for (int slot : buffer_order(full.rank(), full_format)) {
        const auto i = static_cast<std::size_t>(slot);
        if (full_dims[i] == 1 || reduced_dims[i] != full_dims[i]) continue;  // summed, or no extent to order
        logical_order = logical_order && slot > previous_kept;
        previous_kept = slot;
    }
    if (logical_order) return MemoryFormat::Contiguous;
    if (full_format == MemoryFormat::ChannelsLast && reduced.rank() == full.rank()) return MemoryFormat::ChannelsLast;
    return std::nullopt;
}

}  // namespace convkit::detail
