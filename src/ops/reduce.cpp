// Reductions: dim checks, output shapes, device dispatch, autograd.
#include "convkit/ops/reduce.h"

#include <algorithm>
#include <optional>

#include "autograd/graph.h"
#include "backends/host/reduce_host.h"
#include "convkit/ops/elementwise.h"
#include "core/check.h"
#include "kernels/reduce.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
// `dim` in [0, rank), from [-rank, rank); a rank-0 tensor takes 0 and -1 as PyTorch does.
int wrap_dim(const std::string& op, int dim, const Shape& shape) {
    const int rank = std::max(shape.rank(), 1);
    CONVKIT_REQUIRE(dim >= -rank && dim < rank, op, "dim ", dim, " is out of range for a tensor of shape ",
                    shape.to_string(), " (expected a dim in [", -rank, ", ", rank - 1, "])");
    return dim < 0 ? dim + rank : dim;
}

// Which dims are reduced: every dim for an empty list.
std::vector<bool> reduced_dims(const std::string& op, const std::vector<int>& dims, const Shape& shape) {
    std::vector<bool> reduced(static_cast<std::size_t>(std::max(shape.rank(), 1)), dims.empty());
    for (int dim : dims) {
        const auto d = static_cast<std::size_t>(wrap_dim(op, dim, shape));
        CONVKIT_REQUIRE(!reduced[d], op, "dim ", d, " appears more than once in the dims to reduce");
        reduced[d] = true;
    }
    return reduced;
}

// The input's shape with the reduced dims set to 1 (keepdim) or removed.
Shape reduced_shape(const Shape& shape, const std::vector<bool>& reduced, bool keepdim) {
    std::vector<std::int64_t> dims;
    for (int d = 0; d < shape.rank(); ++d) {
        if (!reduced[static_cast<std::size_t>(d)]) {
            dims.push_back(shape[d]);
        } else if (keepdim) {
            dims.push_back(1);
        }
    }
    return Shape(dims);
}

// The gradient of a sum over some dims, times `scale`: dy (in the keepdim shape) broadcast back
// to the input's shape.
Tensor broadcast_back(const Tensor& dy_kept, const Shape& shape, double scale) {
    return mul(Tensor::full(shape, scale, dy_kept.dtype(), dy_kept.device()), dy_kept);
}

// scale * the sum of t over the `reduced` dims; mean passes 1 / (terms per output).
Tensor reduce_sum(const std::string& op, const Tensor& t, const std::vector<bool>& reduced, bool keepdim, bool mean) {
    // bfloat16/float16: the float32 reduction (accumulating as float32's does) rounded once.
    if (is_reduced_precision(t.dtype())) {
        return reduce_sum(op, detail::widened_to_float32(t), reduced, keepdim, mean).to(t.dtype());
    }
    const Shape kept_shape = reduced_shape(t.shape(), reduced, true);
    const detail::ReduceToShapeGeometry g = detail::reduce_to_shape_geometry(op, t.shape(), kept_shape);
    // For a mean of nothing, 0 * (1 / 0) is NaN, as PyTorch gives.
    const double scale = mean ? 1.0 / static_cast<double>(g.terms) : 1.0;
    Tensor out = Tensor::empty(kept_shape, t.dtype(), t.device());
    if (t.device().is_host()) {
        detail::sum_dims_host(g, t.dtype(), t.raw_data(), scale, out.raw_data());
    } else {
        kernels::sum_dims(g, t.dtype(), t.raw_data(), scale, out.raw_data(), detail::stream_of(t));
    }
    out = out.reshape(reduced_shape(t.shape(), reduced, keepdim));
    autograd::record(op, out, {t},
                     [shape = t.shape(), kept_shape, scale](const Tensor& dy, const autograd::NeedsGrad&) {
                         return std::vector<Tensor>{broadcast_back(dy.reshape(kept_shape), shape, scale)};
                     });
    return out;
}

// The first maximum of each row along `dim` (absent: over all elements): values (unless
// `with_values` is false) and int64 indices, in the output shape.
struct MaxResult {
    Tensor values;
    Tensor indices;
    detail::DimReduceGeometry geometry;
};
MaxResult reduce_max(const std::string& op, const Tensor& t, std::optional<int> dim, bool keepdim, bool with_values) {
    detail::check_same_device_and_dtype(op, {{"input", t}});
    std::vector<bool> reduced(static_cast<std::size_t>(std::max(t.rank(), 1)), !dim);
    detail::DimReduceGeometry g;
    if (!dim) {
        g.size = t.numel();
        CONVKIT_REQUIRE(g.size > 0, op, "the input has no elements (shape ", t.shape().to_string(),
                        "), so it has no maximum");
    } else {
        const int d = wrap_dim(op, *dim, t.shape());
        reduced[static_cast<std::size_t>(d)] = true;
        for (int i = 0; i < t.rank(); ++i) {
            if (i < d) g.outer *= t.shape()[i];
            if (i == d) g.size = t.shape()[i];
            if (i > d) g.inner *= t.shape()[i];
        }
        CONVKIT_REQUIRE(g.size > 0, op, "dim ", *dim, " of the input (shape ", t.shape().to_string(),
                        ") is empty, so it has no maximum");
    }
    const Shape shape = reduced_shape(t.shape(), reduced, keepdim);
    MaxResult result{with_values ? Tensor::empty(shape, t.dtype(), t.device()) : Tensor(),
                     Tensor::empty(shape, DType::Int64, t.device()), g};
    void* values = with_values ? result.values.raw_data() : nullptr;
    auto* indices = static_cast<std::int64_t*>(result.indices.raw_data());
    if (t.device().is_host()) {
        detail::max_dim_host(g, t.dtype(), t.raw_data(), values, indices);
    } else {
        kernels::max_dim(g, t.dtype(), t.raw_data(), values, indices, detail::stream_of(t));
    }
    return result;
}

// The values of `result`, recorded with the gradient that goes to each row's maximum. The
// indices are kept for backward: one int64 per output, where recomputing would read the input.
Tensor record_max(const std::string& op, const Tensor& t, const MaxResult& result) {
    Tensor values = result.values;
    autograd::record(op, values, {t},
                     [indices = result.indices, g = result.geometry, input_shape = t.shape()](
                         const Tensor& dy, const autograd::NeedsGrad&) {
                         Tensor dx = Tensor::empty(input_shape, dy.dtype(), dy.device());
                         const auto* rows = static_cast<const std::int64_t*>(indices.raw_data());
                         if (dy.device().is_host()) {
                             detail::max_backward_host(g, dy.dtype(), dy.raw_data(), rows, dx.raw_data());
                         } else {
                             kernels::max_backward(g, dy.dtype(), dy.raw_data(), rows, dx.raw_data(),
                                                   detail::stream_of(dy));
                         }
                         return std::vector<Tensor>{dx};
                     });
    return values;
}
}  // namespace

Tensor sum(const Tensor& t_in) {
    const Tensor t = detail::contiguous_operand(t_in);
    return sum(t, {}, false);
}
Tensor mean(const Tensor& t_in) {
    const Tensor t = detail::contiguous_operand(t_in);
    return mean(t, {}, false);
}

Tensor sum(const Tensor& t_in, const std::vector<int>& dims, bool keepdim) {
    const Tensor t = detail::contiguous_operand(t_in);
    const std::string op = "sum";
    detail::check_same_device_and_dtype(op, {{"input", t}}, detail::ReducedPrecision::ComputedInFloat32);
    return reduce_sum(op, t, reduced_dims(op, dims, t.shape()), keepdim, false);
}

Tensor mean(const Tensor& t_in, const std::vector<int>& dims, bool keepdim) {
    const Tensor t = detail::contiguous_operand(t_in);
    const std::string op = "mean";
    detail::check_same_device_and_dtype(op, {{"input", t}}, detail::ReducedPrecision::ComputedInFloat32);
    return reduce_sum(op, t, reduced_dims(op, dims, t.shape()), keepdim, true);
}

// bfloat16/float16 go through float32 copies: exact, as every 16-bit value is a float.
Tensor max(const Tensor& t_in) {
    const Tensor t = detail::contiguous_operand(t_in);
    if (t.defined() && is_reduced_precision(t.dtype())) return max(detail::widened_to_float32(t)).to(t.dtype());
    return record_max("max", t, reduce_max("max", t, std::nullopt, false, true));
}

Tensor max(const Tensor& t_in, int dim, bool keepdim) {
    const Tensor t = detail::contiguous_operand(t_in);
    if (t.defined() && is_reduced_precision(t.dtype())) {
        return max(detail::widened_to_float32(t), dim, keepdim).to(t.dtype());
    }
    return record_max("max", t, reduce_max("max", t, dim, keepdim, true));
}

Tensor argmax(const Tensor& t_in, int dim, bool keepdim) {
    const Tensor t = detail::contiguous_operand(t_in);
    if (t.defined() && is_reduced_precision(t.dtype())) return argmax(detail::widened_to_float32(t), dim, keepdim);
    return reduce_max("argmax", t, dim, keepdim, false).indices;
}

}  // namespace convkit
