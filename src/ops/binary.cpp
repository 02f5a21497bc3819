// Binary elementwise ops: checks, broadcast geometry, device dispatch, autograd.
#include "kernels/binary.h"

#include <optional>

#include "autograd/graph.h"
#include "backends/host/binary_host.h"
#include "backends/host/reduce_host.h"
#include "convkit/ops/elementwise.h"
#include "kernels/reduce.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
using detail::BinaryOp;

// The format of op(a, b)'s result: that of an operand of the result's shape (a's where both
// are), else contiguous. A broadcast operand is read in its own format (the geometry walks the
// result's buffer with each operand's strides), so a channels-last activation plus a [C, 1, 1]
// bias stays channels-last, as in PyTorch, converting nothing.
MemoryFormat binary_result_format(const Tensor& a, const Tensor& b, const Shape& result) {
    if (a.shape() == result) return a.memory_format();
    if (b.shape() == result) return b.memory_format();
    return MemoryFormat::Contiguous;
}

// op(a, b) over the broadcast of the two shapes, without recording; the result is in
// binary_result_format. Operands of one shape in two formats convert b to a's (counted): read
// across its buffer, b would be gathered a value a thread, where the converted one runs in
// 16-byte packs beside a.
Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b_given) {
    const std::string name = detail::binary_op_name(op);
    NoGradGuard no_grad;  // raw: the caller records the op
    const bool one_shape = a.defined() && b_given.defined() && a.shape() == b_given.shape();
    const Tensor b = one_shape ? detail::operand_in_format(b_given, a.memory_format()) : b_given;
    detail::check_same_device_and_dtype(name, {{"a", a}, {"b", b}}, detail::ReducedPrecision::ComputedInFloat32,
                                        detail::Layouts::Either);
    if (is_reduced_precision(a.dtype()) && a.device().is_host()) {
        // bfloat16/float16 on the host: computed in float32 copies, rounded once (the CUDA
        // kernels compute 16-bit storage in float themselves, without the copies).
        return binary_raw(op, detail::widened_to_float32(a), detail::widened_to_float32(b)).to(a.dtype());
    }
    const Shape shape = detail::broadcast_shape(name, a.shape(), b.shape());
    const MemoryFormat format = binary_result_format(a, b, shape);
    const detail::BroadcastGeometry g =
        detail::broadcast_geometry(name, a.shape(), a.memory_format(), b.shape(), b.memory_format(), format);
    Tensor out = Tensor::empty(shape, a.dtype(), a.device(), format);
    if (a.device().is_host()) {
        detail::binary_elementwise_host(op, g, a.dtype(), a.raw_physical_data(), b.raw_physical_data(),
                                        out.raw_physical_data());
    } else {
        kernels::binary_elementwise(op, g, a.dtype(), a.raw_physical_data(), b.raw_physical_data(),
                                    out.raw_physical_data(), detail::stream_of(a));
    }
    return out;
}

// Records the op with the gradients of a and b computed from the output's gradient by `grads`.
template <typename Gradients>
void record_binary(BinaryOp op, Tensor& out, const Tensor& a, const Tensor& b, Gradients grads) {
    autograd::record(detail::binary_op_name(op), out, {a, b},
                     [grads = std::move(grads), a_shape = a.shape(), b_shape = b.shape()](
                         const Tensor& dy, const autograd::NeedsGrad& needs) {
                         auto [da, db] = grads(dy, needs);
                         return std::vector<Tensor>{needs[0] ? sum_to_shape(da, a_shape) : Tensor(),
                                                    needs[1] ? sum_to_shape(db, b_shape) : Tensor()};
                     });
}

using autograd::SavedTensor;
using GradientPair = std::pair<Tensor, Tensor>;
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
    Tensor out = binary_raw(BinaryOp::Add, a, b);
    record_binary(BinaryOp::Add, out, a, b,
                  [](const Tensor& dy, const autograd::NeedsGrad&) { return GradientPair{dy, dy}; });
    return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
    Tensor out = binary_raw(BinaryOp::Sub, a, b);
    record_binary(BinaryOp::Sub, out, a, b, [](const Tensor& dy, const autograd::NeedsGrad& needs) {
        return GradientPair{dy, needs[1] ? neg(dy) : Tensor()};
    });
    return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
    Tensor out = binary_raw(BinaryOp::Mul, a, b);
    if (autograd::should_record({a, b})) {
        record_binary(BinaryOp::Mul, out, a, b,
                      [sa = SavedTensor(a), sb = SavedTensor(b)](const Tensor& dy, const autograd::NeedsGrad& needs) {
                          return GradientPair{needs[0] ? binary_raw(BinaryOp::Mul, dy, sb.get()) : Tensor(),
                                              needs[1] ? binary_raw(BinaryOp::Mul, dy, sa.get()) : Tensor()};
                      });
    }
    return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
    Tensor out = binary_raw(BinaryOp::Div, a, b);
    if (autograd::should_record({a, b})) {
        record_binary(BinaryOp::Div, out, a, b,
                      [sa = SavedTensor(a), sb = SavedTensor(b)](const Tensor& dy, const autograd::NeedsGrad& needs) {
                          Tensor db;
                          if (needs[1]) {
                              db = binary_raw(BinaryOp::Mul, dy,
                                              binary_raw(BinaryOp::NegDivSquare, sa.get(), sb.get()));
                          }
                          return GradientPair{needs[0] ? binary_raw(BinaryOp::Div, dy, sb.get()) : Tensor(), db};
                      });
    }
    return out;
}

Tensor sum_to_shape(const Tensor& gradient_in, const Shape& shape) {
    const std::string op = "sum_to_shape";
    detail::check_same_device_and_dtype(op, {{"gradient", gradient_in}}, detail::ReducedPrecision::ComputedInFloat32,
                                        detail::Layouts::Either);
    if (gradient_in.shape() == shape) return gradient_in;  // nothing to sum: as it is, in its format
    // The sum reads the gradient's buffer as it is where some format of `shape` holds the kept
    // dims in that buffer's order (a channels-last gradient summed to a [C, 1, 1] bias or to
    // [N, C, 1, 1]), else the logical order of a contiguous copy.
    const std::optional<MemoryFormat> in_buffer_order =
        detail::reduced_buffer_format(gradient_in.shape(), gradient_in.memory_format(), shape);
    const Tensor gradient = in_buffer_order ? gradient_in : detail::contiguous_operand(gradient_in);
    if (is_reduced_precision(gradient.dtype()) && gradient.device().is_host()) {
        return sum_to_shape(detail::widened_to_float32(gradient), shape).to(gradient.dtype());
    }
    const detail::ReduceToShapeGeometry g =
        detail::reduce_to_shape_geometry(op, gradient.shape(), gradient.memory_format(), shape);
    Tensor reduced =
        Tensor::empty(shape, gradient.dtype(), gradient.device(), in_buffer_order.value_or(MemoryFormat::Contiguous));
    if (gradient.device().is_host()) {
        detail::sum_dims_host(g, gradient.dtype(), gradient.raw_physical_data(), 1.0, reduced.raw_physical_data());
    } else {
        kernels::sum_dims(g, gradient.dtype(), gradient.raw_physical_data(), 1.0, reduced.raw_physical_data(),
                          detail::stream_of(gradient));
    }
    // Differentiable too: its gradient is a broadcast back, i.e. adding to zeros of the full shape.
    autograd::record(op, reduced, {gradient}, [full = gradient.shape()](const Tensor& dy, const autograd::NeedsGrad&) {
        return std::vector<Tensor>{binary_raw(BinaryOp::Add, Tensor::zeros(full, dy.dtype(), dy.device()), dy)};
    });
    return reduced;
}

namespace detail {
const char* binary_op_name(BinaryOp op) {
    switch (op) {
        case BinaryOp::Add: return "add";
        case BinaryOp::Sub: return "sub";
        case BinaryOp::Mul: return "mul";
        case BinaryOp::Div: return "div";
        case BinaryOp::NegDivSquare: return "neg_div_square";
    }
    return "binary";
}
}  // namespace detail

}  // namespace convkit
