#include "sixteen_bit_layer_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "tolerances.h"

namespace convkit::testing {

Tensor rounded_uniform(const Shape& shape, std::uint64_t seed, DType dtype, double low, double high) {
    return Tensor::uniform(shape, low, high, seed, DType::Float32).to(dtype);
}

void expect_close_to_float64(const Tensor& got, const Tensor& want, double tol) {
    const std::vector<double> values = got.to_vector();
    const std::vector<double> expected = want.to_vector();
    ASSERT_EQ(values.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        ASSERT_LE(std::abs(values[i] - expected[i]), tol * std::max(1.0, std::abs(expected[i]))) << "element " << i;
    }
}

namespace {

// An op of the layers (softmax, losses, batch norm, convolution, pooling, matmul/linear,
// dropout, and the public backward passes) with inputs made in the dtype under test.
struct LayerOpCase {
    std::string name;
    std::vector<Tensor> inputs;  // 16-bit (or int64 class indices)
    std::function<Tensor(const std::vector<Tensor>&)> run;
    bool differentiable = true;  // recorded for autograd: its input gradients are checked too
};

std::vector<LayerOpCase> layer_op_cases(DType d) {
    const Shape s{2, 3, 6, 6};
    const auto targets = Tensor::from_vector(Shape{4}, std::vector<std::int64_t>{0, 2, 1, 2});
    using Inputs = const std::vector<Tensor>&;
    return {
        {"softmax", {rounded_uniform(s, 1, d, -3, 3)}, [](Inputs x) { return softmax(x[0], 1); }},
        {"log_softmax", {rounded_uniform(s, 1, d, -3, 3)}, [](Inputs x) { return log_softmax(x[0], -1); }},
        {"softmax_backward",
         {rounded_uniform(s, 1, d), softmax(rounded_uniform(s, 2, d, -3, 3), 1)},
         [](Inputs x) { return softmax_backward(x[0], x[1], 1); },
         false},
        {"cross_entropy",
         {rounded_uniform(Shape{4, 3}, 1, d, -3, 3), targets},
         [](Inputs x) { return cross_entropy(x[0], x[1], 0.1); }},
        {"mse_loss",
         {rounded_uniform(s, 1, d), rounded_uniform(s, 2, d)},
         [](Inputs x) { return mse_loss(x[0], x[1]); }},
        {"binary_cross_entropy_with_logits",
         {rounded_uniform(s, 1, d, -3, 3), rounded_uniform(s, 2, d, 0, 1), rounded_uniform(Shape{6}, 3, d, 0.5, 2)},
         [](Inputs x) { return binary_cross_entropy_with_logits(x[0], x[1], Reduction::Sum, x[2]); }},
        {"batch_norm2d",
         {rounded_uniform(s, 1, d, -2, 3), rounded_uniform(Shape{3}, 2, d, 0.5, 2), rounded_uniform(Shape{3}, 3, d)},
         [](Inputs x) {
             Tensor running_mean = Tensor::zeros(Shape{3}, x[0].dtype(), x[0].device());
             Tensor running_var = Tensor::full(Shape{3}, 1.0, x[0].dtype(), x[0].device());
             return batch_norm(x[0], x[1], x[2], running_mean, running_var, true, 0.1, 1e-5);
         }},
        {"conv2d",
         {rounded_uniform(s, 1, d), rounded_uniform(Shape{4, 3, 3, 3}, 2, d), rounded_uniform(Shape{4}, 3, d)},
         [](Inputs x) { return conv_forward(x[0], x[1], x[2], ConvParams(2).set_padding(1).set_stride(2)); }},
        {"conv_transpose2d",
         {rounded_uniform(s, 1, d), rounded_uniform(Shape{3, 2, 3, 3}, 2, d), rounded_uniform(Shape{2}, 3, d)},
         [](Inputs x) { return conv_transpose_forward(x[0], x[1], x[2], ConvParams(2).set_stride(2)); }},
        {"conv2d_backward_data",
         {rounded_uniform(Shape{2, 4, 4, 4}, 1, d), rounded_uniform(Shape{4, 3, 3, 3}, 2, d)},
         [](Inputs x) {
             return conv_backward_data(x[0], x[1], Shape{2, 3, 6, 6}, ConvParams(2));
         },
         false},
        {"conv2d_backward_filter",
         {rounded_uniform(Shape{2, 4, 4, 4}, 1, d), rounded_uniform(s, 2, d)},
         [](Inputs x) {
             return conv_backward_filter(x[0], x[1], Shape{4, 3, 3, 3}, ConvParams(2));
         },
         false},
        {"max_pool2d", {rounded_uniform(s, 1, d)}, [](Inputs x) { return max_pool_forward(x[0], PoolParams(2, 2)); }},
        {"avg_pool2d",
         {rounded_uniform(s, 1, d)},
         [](Inputs x) { return avg_pool_forward(x[0], PoolParams(2, 3).set_stride(2).set_padding(1)); }},
        {"adaptive_avg_pool2d",
         {rounded_uniform(s, 1, d)},
         [](Inputs x) {
             return adaptive_avg_pool_forward(x[0], {4, 5});
         }},
        {"max_pool2d_backward",
         {rounded_uniform(Shape{2, 3, 3, 3}, 1, d), rounded_uniform(s, 2, d)},
         [](Inputs x) { return max_pool_backward(x[0], x[1], PoolParams(2, 2)); },
         false},
        {"matmul",
         {rounded_uniform(Shape{3, 20}, 1, d), rounded_uniform(Shape{20, 4}, 2, d)},
         [](Inputs x) { return matmul(x[0], x[1]); }},
        {"linear",
         {rounded_uniform(Shape{3, 20}, 1, d), rounded_uniform(Shape{4, 20}, 2, d), rounded_uniform(Shape{4}, 3, d)},
         [](Inputs x) { return linear(x[0], x[1], x[2]); }},
        {"linear_backward_weight",
         {rounded_uniform(Shape{3, 4}, 1, d), rounded_uniform(Shape{3, 20}, 2, d)},
         [](Inputs x) { return linear_backward_weight(x[0], x[1]); },
         false},
        {"dropout", {rounded_uniform(s, 1, d)}, [](Inputs x) { return dropout(x[0], 0.3, true, 5); }},
        // Activations and elementwise ops (the CUDA kernels compute 16-bit storage in float),
        // the bias-like broadcast's gradient summed back to its shape.
        {"relu", {rounded_uniform(s, 1, d, -2, 2)}, [](Inputs x) { return relu(x[0]); }},
        {"leaky_relu", {rounded_uniform(s, 1, d, -2, 2)}, [](Inputs x) { return leaky_relu(x[0], 0.1); }},
        {"sigmoid", {rounded_uniform(s, 1, d, -3, 3)}, [](Inputs x) { return sigmoid(x[0]); }},
        {"tanh", {rounded_uniform(s, 1, d, -2, 2)}, [](Inputs x) { return tanh(x[0]); }},
        {"exp", {rounded_uniform(s, 1, d, -2, 2)}, [](Inputs x) { return exp(x[0]); }},
        {"sqrt", {rounded_uniform(s, 1, d, 0.5, 2)}, [](Inputs x) { return sqrt(x[0]); }},
        {"add_broadcast",
         {rounded_uniform(s, 1, d), rounded_uniform(Shape{3, 1, 1}, 2, d)},
         [](Inputs x) { return add(x[0], x[1]); }},
        {"mul", {rounded_uniform(s, 1, d), rounded_uniform(s, 2, d)}, [](Inputs x) { return mul(x[0], x[1]); }},
        {"div",
         {rounded_uniform(s, 1, d), rounded_uniform(s, 2, d, 0.5, 2)},
         [](Inputs x) { return div(x[0], x[1]); }},
    };
}

}  // namespace

void expect_sixteen_bit_layer_ops_match_float64(Device device) {
    for (DType d : {DType::BFloat16, DType::Float16}) {
        const double tol = sixteen_bit_tolerance(d);
        for (const LayerOpCase& c : layer_op_cases(d)) {
            SCOPED_TRACE(c.name + " " + dtype_name(d));
            std::vector<Tensor> leaves;
            std::vector<Tensor> leaves64;
            for (const Tensor& t : c.inputs) {
                const bool floating = is_floating_point(t.dtype());
                Tensor on_device = t.to(device);
                leaves.push_back(floating && c.differentiable ? on_device.clone().set_requires_grad() : on_device);
                leaves64.push_back(floating ? t.to(DType::Float64) : t);
                if (floating && c.differentiable) leaves64.back().set_requires_grad();
            }
            const Tensor got = c.run(leaves);
            ASSERT_EQ(got.dtype(), d);
            ASSERT_EQ(got.device(), device);
            const Tensor want = c.run(leaves64);
            expect_close_to_float64(got, want, tol);
            if (!c.differentiable) continue;
            // d/dinput of sum(output * weights), weights exact in the dtype.
            const Tensor weights = rounded_uniform(got.shape(), 99, d);
            sum(mul(got, weights.to(device))).backward();
            sum(mul(want, weights.to(DType::Float64))).backward();
            for (std::size_t i = 0; i < leaves.size(); ++i) {
                if (!leaves[i].requires_grad()) continue;
                SCOPED_TRACE("gradient of input " + std::to_string(i));
                // The inputs the op does not differentiate (pos_weight) get none in either dtype.
                ASSERT_EQ(leaves[i].grad().defined(), leaves64[i].grad().defined());
                if (!leaves64[i].grad().defined()) continue;
                EXPECT_EQ(leaves[i].grad().dtype(), d);
                expect_close_to_float64(leaves[i].grad(), leaves64[i].grad(), tol);
            }
        }
    }
}

}  // namespace convkit::testing
