// Matrix product and linear layer entry points: checks, shape, backend, call, autograd. All of
// them, and all their gradients, are one backend entry point (ops/gemm_shape.h) with transposes
// and an optional bias, so a backend implements one function.
#include "convkit/ops/linear.h"

#include "autograd/graph.h"
#include "core/check.h"
#include "backend_api/backend_registry.h"
#include "backend_api/selection.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
using detail::GemmShape;

// A defined floating-point matrix with every size at least 1; `layout` names its dims ("[M, K]").
void require_matrix(const std::string& op, const char* name, const char* layout, const Tensor& t) {
    CONVKIT_REQUIRE(t.rank() == 2, op, name, " must be a matrix ", layout, ", got shape ", t.shape().to_string());
    CONVKIT_REQUIRE(t.size(0) >= 1 && t.size(1) >= 1, op, name, " ", layout, " must have every size at least 1, got ",
                    t.shape().to_string());
}

// The sizes two operands share must agree: "matmul: a [M, K] is [2, 3] and b [K, N] is [4, 5]:
// K differs (3 vs 4)".
void require_same_size(const std::string& op, const char* dim, const char* name_a, const char* layout_a,
                       const Tensor& a, std::int64_t size_a, const char* name_b, const char* layout_b, const Tensor& b,
                       std::int64_t size_b) {
    CONVKIT_REQUIRE(size_a == size_b, op, name_a, " ", layout_a, " is ", a.shape().to_string(), " and ", name_b, " ",
                    layout_b, " is ", b.shape().to_string(), ": ", dim, " differs (", size_a, " vs ", size_b, ")");
}

const void* data_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

// C = op(A) op(B) (+ bias per column) into a new [m, n] tensor, on the backend chosen for `op`.
Tensor run_gemm(const std::string& op, const GemmShape& shape, const Tensor& a, const Tensor& b, const Tensor& bias) {
    const auto& backend = detail::gemm_backend_for(op, shape, a.dtype(), a.device());
    Tensor c = Tensor::empty(Shape{shape.m, shape.n}, a.dtype(), a.device());
    backend.gemm(shape, a.dtype(), a.raw_data(), b.raw_data(), data_or_null(bias), c.raw_data(), detail::stream_of(a));
    return c;
}
}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
    const Tensor a = detail::contiguous_operand(a_in);
    const Tensor b = detail::contiguous_operand(b_in);
    const std::string op = "matmul";
    detail::check_same_device_and_dtype(op, {{"a", a}, {"b", b}}, detail::kComputedInFloat32);
    require_matrix(op, "a", "[M, K]", a);
    require_matrix(op, "b", "[K, N]", b);
    require_same_size(op, "K", "a", "[M, K]", a, a.size(1), "b", "[K, N]", b, b.size(0));
    if (detail::is_reduced_precision_tensor(a)) {
        return detail::computed_in_float32(a.dtype(), &matmul, a, b);
    }
    Tensor c = run_gemm(op, GemmShape{a.size(0), b.size(1), a.size(1), false, false}, a, b, Tensor());
    if (autograd::should_record({a, b})) {
        // Each operand is saved only if the other's gradient needs it.
        using autograd::SavedTensor;
        autograd::record(op, c, {a, b},
                         [saved_a = b.requires_grad() ? SavedTensor(a) : SavedTensor(),
                          saved_b = a.requires_grad() ? SavedTensor(b) : SavedTensor()](
                             const Tensor& dc, const autograd::NeedsGrad& needs) {
                             return std::vector<Tensor>{needs[0] ? matmul_backward_a(dc, saved_b.get()) : Tensor(),
                                                        needs[1] ? matmul_backward_b(dc, saved_a.get()) : Tensor()};
                         });
    }
    return c;
}

Tensor matmul_backward_a(const Tensor& grad_output_in, const Tensor& b_in) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const Tensor b = detail::contiguous_operand(b_in);
    const std::string op = "matmul_backward_a";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"b", b}}, detail::kComputedInFloat32);
    require_matrix(op, "grad_output", "[M, N]", grad_output);
    require_matrix(op, "b", "[K, N]", b);
    require_same_size(op, "N", "grad_output", "[M, N]", grad_output, grad_output.size(1), "b", "[K, N]", b, b.size(1));
    if (detail::is_reduced_precision_tensor(grad_output)) {
        return detail::computed_in_float32(grad_output.dtype(), &matmul_backward_a, grad_output, b);
    }
    return run_gemm(op, GemmShape{grad_output.size(0), b.size(0), b.size(1), false, true}, grad_output, b, Tensor());
}

Tensor matmul_backward_b(const Tensor& grad_output_in, const Tensor& a_in) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const Tensor a = detail::contiguous_operand(a_in);
    const std::string op = "matmul_backward_b";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"a", a}}, detail::kComputedInFloat32);
    require_matrix(op, "grad_output", "[M, N]", grad_output);
    require_matrix(op, "a", "[M, K]", a);
    require_same_size(op, "M", "grad_output", "[M, N]", grad_output, grad_output.size(0), "a", "[M, K]", a, a.size(0));
    if (detail::is_reduced_precision_tensor(grad_output)) {
        return detail::computed_in_float32(grad_output.dtype(), &matmul_backward_b, grad_output, a);
    }
    return run_gemm(op, GemmShape{a.size(1), grad_output.size(1), a.size(0), true, false}, a, grad_output, Tensor());
}

Tensor linear(const Tensor& input_in, const Tensor& weight_in, const Tensor& bias_in) {
    const Tensor input = detail::contiguous_operand(input_in);
    const Tensor weight = detail::contiguous_operand(weight_in);
    const Tensor bias = detail::contiguous_operand(bias_in);
    const std::string op = "linear";
    detail::check_same_device_and_dtype(op, {{"input", input}, {"weight", weight}}, detail::kComputedInFloat32);
    require_matrix(op, "input", "[N, in]", input);
    require_matrix(op, "weight", "[out, in]", weight);
    require_same_size(op, "in", "input", "[N, in]", input, input.size(1), "weight", "[out, in]", weight,
                      weight.size(1));
    if (bias.defined()) {
        detail::check_same_device_and_dtype(op, {{"input", input}, {"bias", bias}}, detail::kComputedInFloat32);
        CONVKIT_REQUIRE(bias.rank() == 1 && bias.size(0) == weight.size(0), op, "bias must have shape [out] = [",
                        weight.size(0), "] (weight is ", weight.shape().to_string(), "), got ",
                        bias.shape().to_string());
    }
    if (detail::is_reduced_precision_tensor(input)) {
        return detail::computed_in_float32(
            input.dtype(), [](const Tensor& x, const Tensor& w, const Tensor& b) { return linear(x, w, b); }, input,
            weight, bias);
    }
    Tensor y = run_gemm(op, GemmShape{input.size(0), weight.size(0), input.size(1), false, true}, input, weight, bias);
    if (autograd::should_record({input, weight, bias})) {
        using autograd::SavedTensor;
        autograd::record(op, y, {input, weight, bias},
                         [saved_x = weight.requires_grad() ? SavedTensor(input) : SavedTensor(),
                          saved_w = input.requires_grad() ? SavedTensor(weight) : SavedTensor()](
                             const Tensor& dy, const autograd::NeedsGrad& needs) {
                             return std::vector<Tensor>{
                                 needs[0] ? linear_backward_input(dy, saved_w.get()) : Tensor(),
                                 needs[1] ? linear_backward_weight(dy, saved_x.get()) : Tensor(),
                                 needs[2] ? linear_backward_bias(dy) : Tensor()};
                         });
    }
    return y;
}

Tensor linear_backward_input(const Tensor& grad_output_in, const Tensor& weight_in) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const Tensor weight = detail::contiguous_operand(weight_in);
    const std::string op = "linear_backward_input";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"weight", weight}},
                                        detail::kComputedInFloat32);
    require_matrix(op, "grad_output", "[N, out]", grad_output);
    require_matrix(op, "weight", "[out, in]", weight);
    require_same_size(op, "out", "grad_output", "[N, out]", grad_output, grad_output.size(1), "weight", "[out, in]",
                      weight, weight.size(0));
    if (detail::is_reduced_precision_tensor(grad_output)) {
        return detail::computed_in_float32(grad_output.dtype(), &linear_backward_input, grad_output, weight);
    }
    return run_gemm(op, GemmShape{grad_output.size(0), weight.size(1), weight.size(0), false, false}, grad_output,
                    weight, Tensor());
}

Tensor linear_backward_weight(const Tensor& grad_output_in, const Tensor& input_in) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const Tensor input = detail::contiguous_operand(input_in);
    const std::string op = "linear_backward_weight";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"input", input}},
                                        detail::kComputedInFloat32);
    require_matrix(op, "grad_output", "[N, out]", grad_output);
    require_matrix(op, "input", "[N, in]", input);
    require_same_size(op, "N", "grad_output", "[N, out]", grad_output, grad_output.size(0), "input", "[N, in]", input,
                      input.size(0));
    if (detail::is_reduced_precision_tensor(grad_output)) {
        return detail::computed_in_float32(grad_output.dtype(), &linear_backward_weight, grad_output, input);
    }
    return run_gemm(op, GemmShape{grad_output.size(1), input.size(1), input.size(0), true, false}, grad_output, input,
                    Tensor());
}

Tensor linear_backward_bias(const Tensor& grad_output_in) {
    const Tensor grad_output = detail::contiguous_operand(grad_output_in);
    const std::string op = "linear_backward_bias";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}}, detail::kComputedInFloat32);
    require_matrix(op, "grad_output", "[N, out]", grad_output);
    if (detail::is_reduced_precision_tensor(grad_output)) {
        return detail::computed_in_float32(grad_output.dtype(), &linear_backward_bias, grad_output);
    }
    // The per-column sum is a convolution's bias gradient with one spatial position; every
    // backend has it.
    detail::ConvProblem problem =
        detail::conv_problem(detail::ConvGeometry{}, grad_output.dtype(), grad_output.device());
    problem.bias_grad = {grad_output.size(0), grad_output.size(1), 1};
    detail::ConvChoice choice = detail::choose_variant(op, problem, ConvPass::BackwardBias);
    Tensor grad_bias = Tensor::empty(Shape{grad_output.size(1)}, grad_output.dtype(), grad_output.device());
    detail::run_variant(op, problem, ConvPass::BackwardBias, choice,
                             {.dy = grad_output.raw_data(), .out = grad_bias.raw_data()}, detail::stream_of(grad_output));
    return grad_bias;
}

}  // namespace convkit
