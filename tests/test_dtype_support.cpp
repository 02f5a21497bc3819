// Every op given bfloat16 or float16 tensors either computes the float32 result (rounded to the
// 16-bit type, within its tolerance) or raises NotSupported naming the op and the dtype: never
// runs the bytes as another type, never another error.
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "convkit/convkit.h"
#include "temp_dir.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

struct OpCase {
    std::string name;                      // the op name its messages start with
    std::function<Tensor(DType)> run;      // builds its inputs in the dtype, runs the op
};

Tensor input(const Shape& shape, std::uint64_t seed, DType dtype, double low = -1.0, double high = 1.0) {
    return Tensor::uniform(shape, low, high, seed, DType::Float32).to(dtype);
}

std::vector<OpCase> op_cases() {
    const Shape s{2, 3, 4, 4};
    std::vector<OpCase> cases{
        {"add", [=](DType d) { return add(input(s, 1, d), input(s, 2, d)); }},
        {"mul", [=](DType d) { return mul(input(s, 1, d), input(Shape{4}, 2, d)); }},
        {"div", [=](DType d) { return div(input(s, 1, d), input(s, 2, d, 1.0, 2.0)); }},
        {"exp", [=](DType d) { return exp(input(s, 1, d)); }},
        {"log", [=](DType d) { return log(input(s, 1, d, 0.5, 2.0)); }},
        {"sqrt", [=](DType d) { return sqrt(input(s, 1, d, 0.5, 2.0)); }},
        {"add_scalar", [=](DType d) { return add_scalar(input(s, 1, d), 0.5); }},
        {"clamp", [=](DType d) { return clamp(input(s, 1, d), -0.5, 0.5); }},
        {"relu", [=](DType d) { return relu(input(s, 1, d)); }},
        {"sigmoid", [=](DType d) { return sigmoid(input(s, 1, d)); }},
        {"gelu", [=](DType d) { return gelu(input(s, 1, d)); }},
        {"sum", [=](DType d) { return sum(input(s, 1, d)); }},
        {"mean", [=](DType d) { return mean(input(s, 1, d), {1}); }},
        {"max", [=](DType d) { return max(input(s, 1, d)); }},
        {"softmax", [=](DType d) { return softmax(input(s, 1, d), 1); }},
        {"log_softmax", [=](DType d) { return log_softmax(input(s, 1, d), 1); }},
        {"dropout", [=](DType d) { return dropout(input(s, 1, d), 0.5, true, 3); }},
        {"matmul", [=](DType d) { return matmul(input(Shape{3, 5}, 1, d), input(Shape{5, 2}, 2, d)); }},
        {"linear",
         [=](DType d) { return linear(input(Shape{3, 5}, 1, d), input(Shape{2, 5}, 2, d), input(Shape{2}, 3, d)); }},
        {"conv2d",
         [=](DType d) { return conv_forward(input(s, 1, d), input(Shape{2, 3, 3, 3}, 2, d), Tensor(), ConvParams(2)); }},
        {"max_pool2d", [=](DType d) { return max_pool_forward(input(s, 1, d), PoolParams(2, 2)); }},
        {"avg_pool2d", [=](DType d) { return avg_pool_forward(input(s, 1, d), PoolParams(2, 2)); }},
        {"upsample_nearest2d", [=](DType d) { return upsample_nearest(input(s, 1, d), {2, 2}); }},
        {"batch_norm2d",
         [=](DType d) {
             Tensor running_mean = Tensor::zeros(Shape{3}, d);
             Tensor running_var = Tensor::full(Shape{3}, 1.0, d);
             return batch_norm(input(s, 1, d), input(Shape{3}, 2, d), input(Shape{3}, 3, d), running_mean,
                               running_var, true);
         }},
        {"mse_loss", [=](DType d) { return mse_loss(input(s, 1, d), input(s, 2, d)); }},
        {"cross_entropy",
         [=](DType d) {
             return cross_entropy(input(Shape{4, 3}, 1, d), Tensor::from_vector(Shape{4}, std::vector<std::int64_t>{0, 2, 1, 2}));
         }},
        {"binary_cross_entropy_with_logits",
         [=](DType d) { return binary_cross_entropy_with_logits(input(s, 1, d), input(s, 2, d, 0.0, 1.0)); }},
        // Shape ops copy elements of any size: these run.
        {"flatten", [=](DType d) { return flatten(input(s, 1, d)); }},
        {"concat", [=](DType d) { return concat({input(s, 1, d), input(s, 2, d)}, 1); }},
        {"slice", [=](DType d) { return slice(input(s, 1, d), 2, 1, 3); }},
    };
    return cases;
}

// Tolerances per dtype (relative to the float32 result's magnitude): one rounding of the
// inputs and one of the output, about 2^-8 for bfloat16 and 2^-11 for float16, a few times.
double tolerance(DType dtype) { return dtype == DType::BFloat16 ? 3e-2 : 4e-3; }

// Against float64 on the same rounded inputs (tests/tolerances.h).
double sixteen_bit_tolerance(DType dtype) {
    return dtype == DType::BFloat16 ? testing::kBfloat16VsFloat64Tolerance : testing::kFloat16VsFloat64Tolerance;
}

// |got - want| <= tol * max(1, |want|) element by element.
void expect_close_to_float64(const Tensor& got, const Tensor& want, double tol) {
    const std::vector<double> values = got.to_vector();
    const std::vector<double> expected = want.to_vector();
    ASSERT_EQ(values.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        ASSERT_LE(std::abs(values[i] - expected[i]), tol * std::max(1.0, std::abs(expected[i]))) << "element " << i;
    }
}

TEST(DtypeSupport, SixteenBitInputsComputeOrRaiseNotSupportedNamingOpAndDtype) {
    int ran = 0;
    int refused = 0;
    for (const OpCase& c : op_cases()) {
        for (DType d : {DType::BFloat16, DType::Float16}) {
            SCOPED_TRACE(c.name + " " + dtype_name(d));
            try {
                const Tensor got = c.run(d);
                ++ran;
                ASSERT_TRUE(got.dtype() == d || got.dtype() == DType::Float32) << dtype_name(got.dtype());
                const std::vector<double> want = c.run(DType::Float32).to_vector();
                const std::vector<double> values = got.to_vector();
                ASSERT_EQ(values.size(), want.size());
                for (std::size_t i = 0; i < want.size(); ++i) {
                    ASSERT_NEAR(values[i], want[i], tolerance(d) * (1.0 + std::abs(want[i]))) << "element " << i;
                }
            } catch (const NotSupported& e) {
                ++refused;
                const std::string message = e.what();
                EXPECT_NE(message.find(c.name), std::string::npos) << message;
                EXPECT_NE(message.find(dtype_name(d)), std::string::npos) << message;
            } catch (const std::exception& e) {
                ADD_FAILURE() << "raised something other than NotSupported: " << e.what();
            }
        }
    }
    EXPECT_GT(ran, 0);
    EXPECT_GT(refused, 0);
}

// Elementwise ops and reductions take 16-bit storage and compute in float32: against the same
// (rounded) inputs in float64, the error is the output's one rounding and float32's arithmetic.
TEST(DtypeSupport, ElementwiseAndReductionsComputeSixteenBitInFloat32) {
    for (DType d : {DType::BFloat16, DType::Float16}) {
        SCOPED_TRACE(dtype_name(d));
        const double tol = sixteen_bit_tolerance(d);
        const Tensor x = input(Shape{3, 50}, 1, d);
        const Tensor y = input(Shape{50}, 2, d, 0.5, 2.0);
        const Tensor x64 = x.to(DType::Float64);
        const Tensor y64 = y.to(DType::Float64);
        const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&, const Tensor&)>>> ops{
            {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
            {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
            {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
            {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
            {"exp", [](const Tensor& a, const Tensor&) { return exp(a); }},
            {"log", [](const Tensor&, const Tensor& b) { return log(b); }},
            {"sqrt", [](const Tensor&, const Tensor& b) { return sqrt(b); }},
            {"pow_scalar", [](const Tensor&, const Tensor& b) { return pow_scalar(b, 1.5); }},
            {"tanh", [](const Tensor& a, const Tensor&) { return tanh(a); }},
            {"sigmoid", [](const Tensor& a, const Tensor&) { return sigmoid(a); }},
            {"gelu", [](const Tensor& a, const Tensor&) { return gelu(a); }},
            {"clamp", [](const Tensor& a, const Tensor&) { return clamp(a, -0.3, 0.4); }},
            {"sum", [](const Tensor& a, const Tensor&) { return sum(a); }},
            {"sum_dim0", [](const Tensor& a, const Tensor&) { return sum(a, {0}, true); }},
            {"mean_dim1", [](const Tensor& a, const Tensor&) { return mean(a, {1}); }},
            {"max_dim1", [](const Tensor& a, const Tensor&) { return max(a, 1); }},
            {"sum_to_shape", [](const Tensor& a, const Tensor&) { return sum_to_shape(a, Shape{50}); }},
        };
        for (const auto& [name, op] : ops) {
            SCOPED_TRACE(name);
            const Tensor got = op(x, y);
            ASSERT_EQ(got.dtype(), d);
            const std::vector<double> want = op(x64, y64).to_vector();
            const std::vector<double> values = got.to_vector();
            ASSERT_EQ(values.size(), want.size());
            for (std::size_t i = 0; i < want.size(); ++i) {
                ASSERT_LE(std::abs(values[i] - want[i]), tol * std::max(1.0, std::abs(want[i]))) << "element " << i;
            }
        }
        EXPECT_EQ(argmax(x, 1).to_vector(), argmax(x64, 1).to_vector());

        // Gradients flow in the tensors' dtype: d/dx sum(x * y) = y broadcast, exactly.
        Tensor leaf = x.clone().detach().set_requires_grad();
        sum(mul(leaf, y)).backward();
        ASSERT_TRUE(leaf.grad().defined());
        EXPECT_EQ(leaf.grad().dtype(), d);
        const std::vector<double> grad = leaf.grad().to_vector();
        const std::vector<double> y_values = y.to_vector();
        for (std::size_t i = 0; i < grad.size(); ++i) ASSERT_EQ(grad[i], y_values[i % 50]) << i;
        // Mixed dtypes stay an error naming both.
        const std::string mixed = testing::message_of<InvalidArgument>([&] { add(x, y64); });
        EXPECT_NE(mixed.find("add: b is float64 but a is " + std::string(dtype_name(d))), std::string::npos) << mixed;
    }
}

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
        {"softmax", {input(s, 1, d, -3, 3)}, [](Inputs x) { return softmax(x[0], 1); }},
        {"log_softmax", {input(s, 1, d, -3, 3)}, [](Inputs x) { return log_softmax(x[0], -1); }},
        {"softmax_backward",
         {input(s, 1, d), softmax(input(s, 2, d, -3, 3), 1)},
         [](Inputs x) { return softmax_backward(x[0], x[1], 1); },
         false},
        {"cross_entropy",
         {input(Shape{4, 3}, 1, d, -3, 3), targets},
         [](Inputs x) { return cross_entropy(x[0], x[1], 0.1); }},
        {"mse_loss", {input(s, 1, d), input(s, 2, d)}, [](Inputs x) { return mse_loss(x[0], x[1]); }},
        {"binary_cross_entropy_with_logits",
         {input(s, 1, d, -3, 3), input(s, 2, d, 0, 1), input(Shape{6}, 3, d, 0.5, 2)},
         [](Inputs x) { return binary_cross_entropy_with_logits(x[0], x[1], Reduction::Sum, x[2]); }},
        {"batch_norm2d",
         {input(s, 1, d, -2, 3), input(Shape{3}, 2, d, 0.5, 2), input(Shape{3}, 3, d)},
         [](Inputs x) {
             Tensor running_mean = Tensor::zeros(Shape{3}, x[0].dtype());
             Tensor running_var = Tensor::full(Shape{3}, 1.0, x[0].dtype());
             return batch_norm(x[0], x[1], x[2], running_mean, running_var, true, 0.1, 1e-5);
         }},
        {"conv2d",
         {input(s, 1, d), input(Shape{4, 3, 3, 3}, 2, d), input(Shape{4}, 3, d)},
         [](Inputs x) { return conv_forward(x[0], x[1], x[2], ConvParams(2).set_padding(1).set_stride(2)); }},
        {"conv_transpose2d",
         {input(s, 1, d), input(Shape{3, 2, 3, 3}, 2, d), input(Shape{2}, 3, d)},
         [](Inputs x) { return conv_transpose_forward(x[0], x[1], x[2], ConvParams(2).set_stride(2)); }},
        {"conv2d_backward_data",
         {input(Shape{2, 4, 4, 4}, 1, d), input(Shape{4, 3, 3, 3}, 2, d)},
         [](Inputs x) {
             return conv_backward_data(x[0], x[1], Shape{2, 3, 6, 6}, ConvParams(2));
         },
         false},
        {"conv2d_backward_filter",
         {input(Shape{2, 4, 4, 4}, 1, d), input(s, 2, d)},
         [](Inputs x) {
             return conv_backward_filter(x[0], x[1], Shape{4, 3, 3, 3}, ConvParams(2));
         },
         false},
        {"max_pool2d", {input(s, 1, d)}, [](Inputs x) { return max_pool_forward(x[0], PoolParams(2, 2)); }},
        {"avg_pool2d",
         {input(s, 1, d)},
         [](Inputs x) { return avg_pool_forward(x[0], PoolParams(2, 3).set_stride(2).set_padding(1)); }},
        {"adaptive_avg_pool2d",
         {input(s, 1, d)},
         [](Inputs x) {
             return adaptive_avg_pool_forward(x[0], {4, 5});
         }},
        {"max_pool2d_backward",
         {input(Shape{2, 3, 3, 3}, 1, d), input(s, 2, d)},
         [](Inputs x) { return max_pool_backward(x[0], x[1], PoolParams(2, 2)); },
         false},
        {"matmul", {input(Shape{3, 20}, 1, d), input(Shape{20, 4}, 2, d)}, [](Inputs x) { return matmul(x[0], x[1]); }},
        {"linear",
         {input(Shape{3, 20}, 1, d), input(Shape{4, 20}, 2, d), input(Shape{4}, 3, d)},
         [](Inputs x) { return linear(x[0], x[1], x[2]); }},
        {"linear_backward_weight",
         {input(Shape{3, 4}, 1, d), input(Shape{3, 20}, 2, d)},
         [](Inputs x) { return linear_backward_weight(x[0], x[1]); },
         false},
        {"dropout", {input(s, 1, d)}, [](Inputs x) { return dropout(x[0], 0.3, true, 5); }},
    };
}

// Each layer op on 16-bit inputs against float64 on the same (rounded) inputs: its result is
// float32's rounded once, and so are the gradients of its floating inputs, which arrive in the
// inputs' dtype. A 16-bit op run in 16-bit arithmetic, or rounding twice, would miss these
// tolerances (float16's 1e-3 is a few of its ulps).
TEST(DtypeSupport, LayerOpsAndTheirGradientsComputeSixteenBitInFloat32) {
    for (DType d : {DType::BFloat16, DType::Float16}) {
        const double tol = sixteen_bit_tolerance(d);
        for (const LayerOpCase& c : layer_op_cases(d)) {
            SCOPED_TRACE(c.name + " " + dtype_name(d));
            std::vector<Tensor> leaves;
            std::vector<Tensor> leaves64;
            for (const Tensor& t : c.inputs) {
                const bool floating = is_floating_point(t.dtype());
                leaves.push_back(floating && c.differentiable ? t.clone().set_requires_grad() : t);
                leaves64.push_back(floating ? t.to(DType::Float64) : t);
                if (floating && c.differentiable) leaves64.back().set_requires_grad();
            }
            const Tensor got = c.run(leaves);
            ASSERT_EQ(got.dtype(), d);
            const Tensor want = c.run(leaves64);
            expect_close_to_float64(got, want, tol);
            if (!c.differentiable) continue;
            // d/dinput of sum(output * weights), weights exact in the dtype.
            const Tensor weights = input(got.shape(), 99, d);
            sum(mul(got, weights)).backward();
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

// The 16-bit path keeps the ops' argument checks: a 16-bit tensor next to a float32 one is an
// error naming both (not silently widened), and geometry errors still name the op.
TEST(DtypeSupport, LayerOpsStillRejectMixedDtypesAndBadShapesByName) {
    const Tensor x = input(Shape{2, 3, 6, 6}, 1, DType::BFloat16);
    const Tensor w = input(Shape{4, 3, 3, 3}, 2, DType::BFloat16);
    const std::string bias =
        testing::message_of<InvalidArgument>([&] { conv_forward(x, w, Tensor::zeros(Shape{4}), ConvParams(2)); });
    EXPECT_NE(bias.find("conv2d: bias is float32 but input is bfloat16"), std::string::npos) << bias;
    const std::string weight = testing::message_of<InvalidArgument>([&] {
        linear(input(Shape{2, 5}, 1, DType::Float16), Tensor::zeros(Shape{3, 5}), Tensor());
    });
    EXPECT_NE(weight.find("linear: weight is float32 but input is float16"), std::string::npos) << weight;
    Tensor running_mean = Tensor::zeros(Shape{3});
    Tensor running_var = Tensor::full(Shape{3}, 1.0, DType::BFloat16);
    const std::string stats = testing::message_of<InvalidArgument>(
        [&] { batch_norm(x, Tensor(), Tensor(), running_mean, running_var, true); });
    EXPECT_NE(stats.find("batch_norm2d: running_mean is float32 but input is bfloat16"), std::string::npos) << stats;
    const std::string shape = testing::message_of<InvalidArgument>([&] {
        matmul(input(Shape{2, 3}, 1, DType::BFloat16), input(Shape{4, 5}, 2, DType::BFloat16));
    });
    EXPECT_NE(shape.find("matmul: a [M, K] is [2, 3] and b [K, N] is [4, 5]: K differs (3 vs 4)"), std::string::npos)
        << shape;
}

TEST(DtypeSupport, TransformsRefuseSixteenBitByName) {
    std::mt19937_64 rng(1);
    for (DType d : {DType::BFloat16, DType::Float16}) {
        const std::string flip = testing::message_of<NotSupported>(
            [&] { data::random_horizontal_flip(1.0)(Tensor::zeros(Shape{1, 2, 2}, d), rng); });
        EXPECT_NE(flip.find(dtype_name(d)), std::string::npos) << flip;
    }
}

}  // namespace
}  // namespace convkit
