// Shape ops: flatten, concat, slice, split, nearest upsampling. Checks, output shapes, device
// dispatch and autograd; the copies are ops/shape_geometry.h's index math on each backend.
#include "convkit/ops/shape_ops.h"

#include <algorithm>
#include <string>

#include "autograd/graph.h"
#include "backends/host/shape_ops_host.h"
#include "core/check.h"
#include "kernels/shape_ops.h"
#include "ops/op_support.h"
#include "backend_api/shape_geometry.h"

namespace convkit {

namespace {
using detail::BlockCopyGeometry;
using detail::UpsampleGeometry;

// `dim` in [-rank, rank) made non-negative.
int normalized_dim(const std::string& op, const char* argument, int dim, int rank) {
    CONVKIT_REQUIRE(dim >= -rank && dim < rank, op, argument, " ", dim, " is out of range for a tensor of rank ", rank,
                    " (expected ", -rank, " to ", rank - 1, ")");
    return dim < 0 ? dim + rank : dim;
}

// Copies of a tensor of `shape` along `dim`: the dims before it are `outer`, those after `inner`.
BlockCopyGeometry copy_along(const Shape& shape, int dim) {
    BlockCopyGeometry g;
    for (int d = 0; d < dim; ++d) g.outer *= shape[d];
    for (int d = dim + 1; d < shape.rank(); ++d) g.inner *= shape[d];
    return g;
}

void run_block_copy(const BlockCopyGeometry& g, const Tensor& source, Tensor& dest) {
    const std::size_t element_size = dtype_size(source.dtype());
    if (source.device().is_host()) {
        detail::block_copy_host(g, element_size, source.raw_data(), dest.raw_data());
    } else {
        kernels::block_copy(g, element_size, source.raw_data(), dest.raw_data(), detail::stream_of(source));
    }
}

// x[..., start:end, ...] along dim, for checked arguments; records nothing.
Tensor slice_raw(const Tensor& x, int dim, std::int64_t start, std::int64_t end) {
    Shape shape = x.shape();
    shape[dim] = end - start;
    Tensor out = Tensor::empty(shape, x.dtype(), x.device());
    BlockCopyGeometry g = copy_along(x.shape(), dim);
    g.length = end - start;
    g.source_dim = x.size(dim);
    g.source_start = start;
    g.dest_dim = g.length;
    run_block_copy(g, x, out);
    return out;
}

// The gradient of a slice: `grad` placed at [start, start + grad.size(dim)) of zeros of `shape`.
Tensor slice_backward_raw(const Tensor& grad, const Shape& shape, int dim, std::int64_t start) {
    Tensor out = Tensor::zeros(shape, grad.dtype(), grad.device());
    BlockCopyGeometry g = copy_along(shape, dim);
    g.length = grad.size(dim);
    g.source_dim = g.length;
    g.dest_dim = shape[dim];
    g.dest_start = start;
    run_block_copy(g, grad, out);
    return out;
}

void check_concat_inputs(const std::string& op, const std::vector<Tensor>& tensors) {
    CONVKIT_REQUIRE(!tensors.empty(), op, "needs at least one tensor, got an empty list");
    const Tensor& first = tensors[0];
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const Tensor& t = tensors[i];
        CONVKIT_REQUIRE(t.defined(), op, "tensors[", i, "] is undefined");
        CONVKIT_REQUIRE(t.rank() > 0, op, "tensors[", i, "] is a scalar (rank 0), which has no dim to join along");
        CONVKIT_REQUIRE(t.device() == first.device(), op, "tensors[", i, "] is on ", t.device().to_string(),
                        " but tensors[0] is on ", first.device().to_string());
        CONVKIT_REQUIRE(t.dtype() == first.dtype(), op, "tensors[", i, "] is ", dtype_name(t.dtype()),
                        " but tensors[0] is ", dtype_name(first.dtype()));
        CONVKIT_REQUIRE(t.rank() == first.rank(), op, "tensors[", i, "] has shape ", t.shape().to_string(),
                        " but tensors[0] has shape ", first.shape().to_string(), ": ranks differ");
    }
}

// "upsample_nearest2d"; the rank comes from the tensor, so a tensor of no image rank names none.
std::string upsample_op_name(const Tensor& x) {
    const int r = x.defined() ? x.rank() - 2 : 0;
    return r >= 1 && r <= 3 ? detail::concat("upsample_nearest", r, "d") : std::string("upsample_nearest");
}

// One value per spatial dim from a list of one (for all) or `spatial_rank` values.
std::vector<std::int64_t> per_spatial_dim(const std::string& op, const char* argument,
                                          const std::vector<std::int64_t>& values, int spatial_rank) {
    CONVKIT_REQUIRE(values.size() == 1 || values.size() == static_cast<std::size_t>(spatial_rank), op, argument,
                    " must have 1 or ", spatial_rank, " values (one per spatial dim), got ", values.size());
    if (values.size() == 1) return std::vector<std::int64_t>(static_cast<std::size_t>(spatial_rank), values[0]);
    return values;
}

std::string list_text(const std::vector<std::int64_t>& values) {
    std::string text = "[";
    for (std::size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + std::to_string(values[i]);
    return text + "]";
}

void check_upsample_input(const std::string& op, const Tensor& x) {
    detail::check_same_device_and_dtype(op, {{"input", x}});
    CONVKIT_REQUIRE(x.rank() >= 3 && x.rank() <= 5, op, "input must be [N, C, spatial...] with 1 to 3 spatial dims, ",
                    "got shape ", x.shape().to_string());
}

UpsampleGeometry upsample_geometry(const Shape& input, const std::vector<std::int64_t>& output_spatial) {
    UpsampleGeometry g;
    g.planes = input[0] * input[1];
    const int spatial_rank = input.rank() - 2;
    for (int s = 0; s < spatial_rank; ++s) {
        const auto widened = static_cast<std::size_t>(3 - spatial_rank + s);  // index 0 is always D
        g.input[widened] = input[2 + s];
        g.output[widened] = output_spatial[static_cast<std::size_t>(s)];
    }
    return g;
}

Tensor upsample_nearest_backward_raw(const Tensor& grad, const UpsampleGeometry& g, const Shape& input_shape) {
    Tensor out = Tensor::empty(input_shape, grad.dtype(), grad.device());
    if (grad.device().is_host()) {
        detail::upsample_nearest_backward_host(g, grad.dtype(), grad.raw_data(), out.raw_data());
    } else {
        kernels::upsample_nearest_backward(g, grad.dtype(), grad.raw_data(), out.raw_data(), detail::stream_of(grad));
    }
    return out;
}

// The checked upsampling of x to `output_spatial` sizes, recorded for autograd.
Tensor upsample_nearest_checked(const std::string& op, const Tensor& x,
                                const std::vector<std::int64_t>& output_spatial) {
    const UpsampleGeometry g = upsample_geometry(x.shape(), output_spatial);
    std::vector<std::int64_t> out_dims = {x.size(0), x.size(1)};
    out_dims.insert(out_dims.end(), output_spatial.begin(), output_spatial.end());
    Tensor out = Tensor::empty(Shape(out_dims), x.dtype(), x.device());
    if (x.device().is_host()) {
        detail::upsample_nearest_forward_host(g, x.dtype(), x.raw_data(), out.raw_data());
    } else {
        kernels::upsample_nearest_forward(g, x.dtype(), x.raw_data(), out.raw_data(), detail::stream_of(x));
    }
    autograd::record(op, out, {x}, [g, x_shape = x.shape()](const Tensor& dy, const autograd::NeedsGrad&) {
        return std::vector<Tensor>{upsample_nearest_backward_raw(dy, g, x_shape)};
    });
    return out;
}
}  // namespace

Tensor flatten(const Tensor& x_in, int start_dim, int end_dim) {
    const Tensor x = detail::contiguous_operand(x_in);
    const std::string op = "flatten";
    CONVKIT_REQUIRE(x.defined(), op, "input is undefined");
    // A scalar flattens like a one-element vector, as in PyTorch (dims -1 and 0 are valid).
    const int rank = std::max(x.rank(), 1);
    const int start = normalized_dim(op, "start_dim", start_dim, rank);
    const int end = normalized_dim(op, "end_dim", end_dim, rank);
    CONVKIT_REQUIRE(start <= end, op, "start_dim ", start_dim, " comes after end_dim ", end_dim,
                    " for a tensor of rank ", x.rank());
    if (x.rank() == 0) return x.reshape(Shape{1});
    std::vector<std::int64_t> dims(x.shape().begin(), x.shape().begin() + start);
    std::int64_t merged = 1;
    for (int d = start; d <= end; ++d) merged *= x.size(d);
    dims.push_back(merged);
    dims.insert(dims.end(), x.shape().begin() + end + 1, x.shape().end());
    return x.reshape(Shape(dims));
}

Tensor concat(const std::vector<Tensor>& tensors_in, int dim) {
    const std::string op = "concat";
    std::vector<Tensor> tensors;
    tensors.reserve(tensors_in.size());
    for (const Tensor& t : tensors_in) tensors.push_back(detail::contiguous_operand(t));
    check_concat_inputs(op, tensors);
    const Shape& first = tensors[0].shape();
    const int d = normalized_dim(op, "dim", dim, first.rank());
    std::int64_t total = 0;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const Shape& shape = tensors[i].shape();
        for (int k = 0; k < shape.rank(); ++k) {
            CONVKIT_REQUIRE(k == d || shape[k] == first[k], op, "tensors[", i, "] has shape ", shape.to_string(),
                            " but tensors[0] has shape ", first.to_string(), ": every dim but dim ", d,
                            " must agree (they differ in dim ", k, ")");
        }
        total += shape[d];
    }
    Shape out_shape = first;
    out_shape[d] = total;
    Tensor out = Tensor::empty(out_shape, tensors[0].dtype(), tensors[0].device());
    std::vector<std::int64_t> starts;
    std::int64_t offset = 0;
    for (const Tensor& t : tensors) {
        BlockCopyGeometry g = copy_along(out_shape, d);
        g.length = t.size(d);
        g.source_dim = g.length;
        g.dest_dim = total;
        g.dest_start = offset;
        run_block_copy(g, t, out);
        starts.push_back(offset);
        offset += t.size(d);
    }
    autograd::record(op, out, tensors, [d, starts](const Tensor& dy, const autograd::NeedsGrad& needs) {
        std::vector<Tensor> grads(needs.size());
        for (std::size_t i = 0; i < needs.size(); ++i) {
            const std::int64_t end = i + 1 < starts.size() ? starts[i + 1] : dy.size(d);
            if (needs[i]) grads[i] = slice_raw(dy, d, starts[i], end);
        }
        return grads;
    });
    return out;
}

Tensor slice(const Tensor& x_in, int dim, std::int64_t start, std::int64_t end) {
    const Tensor x = detail::contiguous_operand(x_in);
    const std::string op = "slice";
    CONVKIT_REQUIRE(x.defined(), op, "input is undefined");
    CONVKIT_REQUIRE(x.rank() > 0, op, "input is a scalar (rank 0), which has no dim to slice");
    const int d = normalized_dim(op, "dim", dim, x.rank());
    const std::int64_t size = x.size(d);
    const std::int64_t first = start < 0 ? start + size : start;
    const std::int64_t last = end < 0 ? end + size : end;
    CONVKIT_REQUIRE(0 <= first && first <= last && last <= size, op, "start ", start, " and end ", end,
                    " do not give a range within [0, ", size, "] with start <= end along dim ", d, " of shape ",
                    x.shape().to_string());
    Tensor out = slice_raw(x, d, first, last);
    autograd::record(op, out, {x}, [d, first, x_shape = x.shape()](const Tensor& dy, const autograd::NeedsGrad&) {
        return std::vector<Tensor>{slice_backward_raw(dy, x_shape, d, first)};
    });
    return out;
}

std::vector<Tensor> split(const Tensor& x_in, int dim, const std::vector<std::int64_t>& sizes) {
    const Tensor x = detail::contiguous_operand(x_in);
    const std::string op = "split";
    CONVKIT_REQUIRE(x.defined(), op, "input is undefined");
    CONVKIT_REQUIRE(x.rank() > 0, op, "input is a scalar (rank 0), which has no dim to split");
    const int d = normalized_dim(op, "dim", dim, x.rank());
    std::int64_t total = 0;
    for (std::int64_t s : sizes) {
        CONVKIT_REQUIRE(s >= 0, op, "sizes must not be negative, got ", list_text(sizes));
        total += s;
    }
    CONVKIT_REQUIRE(total == x.size(d), op, "sizes ", list_text(sizes), " add up to ", total, " but dim ", d,
                    " of shape ", x.shape().to_string(), " has size ", x.size(d));
    std::vector<Tensor> parts;
    std::int64_t start = 0;
    for (std::int64_t s : sizes) {
        parts.push_back(slice(x, d, start, start + s));
        start += s;
    }
    return parts;
}

Tensor upsample_nearest(const Tensor& x_in, const std::vector<std::int64_t>& scale_factors) {
    const Tensor x = detail::contiguous_operand(x_in);
    const std::string op = upsample_op_name(x);
    check_upsample_input(op, x);
    const int spatial_rank = x.rank() - 2;
    const std::vector<std::int64_t> factors = per_spatial_dim(op, "scale_factors", scale_factors, spatial_rank);
    std::vector<std::int64_t> output_spatial;
    for (int s = 0; s < spatial_rank; ++s) {
        const std::int64_t factor = factors[static_cast<std::size_t>(s)];
        CONVKIT_REQUIRE(factor >= 1, op, "scale_factors must be integers >= 1, got ", list_text(scale_factors));
        std::int64_t size = 0;
        CONVKIT_REQUIRE(!__builtin_mul_overflow(x.size(2 + s), factor, &size), op, "input shape ",
                        x.shape().to_string(), " scaled by ", list_text(scale_factors), " overflows 64 bits");
        output_spatial.push_back(size);
    }
    return upsample_nearest_checked(op, x, output_spatial);
}

Tensor upsample_nearest_to_size(const Tensor& x_in, const std::vector<std::int64_t>& output_size) {
    const Tensor x = detail::contiguous_operand(x_in);
    const std::string op = upsample_op_name(x);
    check_upsample_input(op, x);
    const int spatial_rank = x.rank() - 2;
    const std::vector<std::int64_t> sizes = per_spatial_dim(op, "output_size", output_size, spatial_rank);
    for (int s = 0; s < spatial_rank; ++s) {
        CONVKIT_REQUIRE(sizes[static_cast<std::size_t>(s)] >= 1, op, "output_size must be >= 1 in every dim, got ",
                        list_text(output_size));
        CONVKIT_REQUIRE(x.size(2 + s) >= 1, op, "cannot resample an empty spatial dim to a nonzero size: input shape ",
                        x.shape().to_string(), ", output_size ", list_text(output_size));
    }
    return upsample_nearest_checked(op, x, sizes);
}

}  // namespace convkit
