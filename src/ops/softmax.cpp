// Softmax and log-softmax: checks, row geometry, device dispatch, autograd.
#include "convkit/ops/softmax.h"

#include <algorithm>

#include "autograd/graph.h"
#include "backends/host/softmax_host.h"
#include "core/check.h"
#include "kernels/softmax.h"
#include "ops/op_support.h"

namespace convkit {

namespace detail {

const char* softmax_op_name(SoftmaxKind kind) { return kind == SoftmaxKind::Softmax ? "softmax" : "log_softmax"; }

SoftmaxGeometry softmax_geometry(const std::string& op, const Shape& shape, int dim) {
    // A scalar is a row of one element; PyTorch accepts dim 0 and -1 for it.
    const int rank = std::max(shape.rank(), 1);
    CONVKIT_REQUIRE(dim >= -rank && dim < rank, op, "dim ", dim, " is out of range for a tensor of shape ",
                    shape.to_string(), " (rank ", shape.rank(), ", so dim must be in [", -rank, ", ", rank - 1, "])");
    if (shape.rank() == 0) return {};
    const int d = dim < 0 ? dim + rank : dim;
    SoftmaxGeometry g;
    for (int i = 0; i < d; ++i) g.outer *= shape[i];
    g.dim = shape[d];
    for (int i = d + 1; i < rank; ++i) g.inner *= shape[i];
    return g;
}

}  // namespace detail

namespace {
using detail::SoftmaxKind;

Tensor softmax_forward_raw(SoftmaxKind kind, const Tensor& x, int dim) {
    const std::string op = detail::softmax_op_name(kind);
    detail::check_same_device_and_dtype(op, {{"x", x}});
    const detail::SoftmaxGeometry g = detail::softmax_geometry(op, x.shape(), dim);
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (x.device().is_host()) {
        detail::softmax_forward_host(kind, g, x.dtype(), x.raw_data(), y.raw_data());
    } else {
        kernels::softmax_forward(kind, g, x.dtype(), x.raw_data(), y.raw_data(), detail::stream_of(x));
    }
    return y;
}

Tensor softmax_backward_raw(SoftmaxKind kind, const Tensor& grad_output, const Tensor& output, int dim) {
    const std::string op = std::string(detail::softmax_op_name(kind)) + "_backward";
    detail::check_same_device_and_dtype(op, {{"output", output}, {"grad_output", grad_output}},
                                        detail::kComputedInFloat32);
    detail::check_grad_output(op, grad_output, output.shape());
    if (detail::is_reduced_precision_tensor(output)) {
        return detail::computed_in_float32(
            output.dtype(), [&](const Tensor& dy, const Tensor& y) { return softmax_backward_raw(kind, dy, y, dim); },
            grad_output, output);
    }
    const detail::SoftmaxGeometry g = detail::softmax_geometry(op, output.shape(), dim);
    Tensor dx = Tensor::empty(output.shape(), output.dtype(), output.device());
    if (output.device().is_host()) {
        detail::softmax_backward_host(kind, g, output.dtype(), grad_output.raw_data(), output.raw_data(),
                                      dx.raw_data());
    } else {
        kernels::softmax_backward(kind, g, output.dtype(), grad_output.raw_data(), output.raw_data(), dx.raw_data(),
                                  detail::stream_of(output));
    }
    return dx;
}

// Both backward passes need only the output, so that is what the node saves.
Tensor softmax_with_autograd(SoftmaxKind kind, const Tensor& x, int dim) {
    // bfloat16/float16: the float32 op between two recorded conversions.
    if (detail::is_reduced_precision_tensor(x)) {
        return detail::computed_in_float32(
            x.dtype(), [&](const Tensor& x32) { return softmax_with_autograd(kind, x32, dim); }, x);
    }
    Tensor y = softmax_forward_raw(kind, x, dim);
    if (autograd::should_record({x})) {
        autograd::record(detail::softmax_op_name(kind), y, {x},
                         [kind, dim, saved_y = autograd::SavedTensor(y)](const Tensor& dy, const autograd::NeedsGrad&) {
                             return std::vector<Tensor>{softmax_backward_raw(kind, dy, saved_y.get(), dim)};
                         });
    }
    return y;
}
}  // namespace

Tensor softmax(const Tensor& x_in, int dim) {
    const Tensor x = detail::contiguous_operand(x_in);
    return softmax_with_autograd(SoftmaxKind::Softmax, x, dim);
}
Tensor log_softmax(const Tensor& x_in, int dim) {
    const Tensor x = detail::contiguous_operand(x_in);
    return softmax_with_autograd(SoftmaxKind::LogSoftmax, x, dim);
}

Tensor softmax_backward(const Tensor& grad_output_in, const Tensor& output_in, int dim) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const Tensor output = detail::contiguous_operand(output_in);
    return softmax_backward_raw(SoftmaxKind::Softmax, grad_output, output, dim);
}
Tensor log_softmax_backward(const Tensor& grad_output_in, const Tensor& output_in, int dim) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const Tensor output = detail::contiguous_operand(output_in);
    return softmax_backward_raw(SoftmaxKind::LogSoftmax, grad_output, output, dim);
}

}  // namespace convkit
