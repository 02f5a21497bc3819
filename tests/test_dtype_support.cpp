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
#include "sixteen_bit_layer_ops.h"
#include "temp_dir.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

struct OpCase {
    std::string name;                      // the op name its messages start with
    std::function<Tensor(DType)> run;      // builds its inputs in the dtype, runs the op
};

using testing::rounded_uniform;

std::vector<OpCase> op_cases() {
    const Shape s{2, 3, 4, 4};
    std::vector<OpCase> cases{
        {"add", [=](DType d) { return add(rounded_uniform(s, 1, d), rounded_uniform(s, 2, d)); }},
        {"mul", [=](DType d) { return mul(rounded_uniform(s, 1, d), rounded_uniform(Shape{4}, 2, d)); }},
        {"div", [=](DType d) { return div(rounded_uniform(s, 1, d), rounded_uniform(s, 2, d, 1.0, 2.0)); }},
        {"exp", [=](DType d) { return exp(rounded_uniform(s, 1, d)); }},
        {"log", [=](DType d) { return log(rounded_uniform(s, 1, d, 0.5, 2.0)); }},
        {"sqrt", [=](DType d) { return sqrt(rounded_uniform(s, 1, d, 0.5, 2.0)); }},
        {"add_scalar", [=](DType d) { return add_scalar(rounded_uniform(s, 1, d), 0.5); }},
        {"clamp", [=](DType d) { return clamp(rounded_uniform(s, 1, d), -0.5, 0.5); }},
        {"relu", [=](DType d) { return relu(rounded_uniform(s, 1, d)); }},
        {"sigmoid", [=](DType d) { return sigmoid(rounded_uniform(s, 1, d)); }},
        {"gelu", [=](DType d) { return gelu(rounded_uniform(s, 1, d)); }},
        {"sum", [=](DType d) { return sum(rounded_uniform(s, 1, d)); }},
        {"mean", [=](DType d) { return mean(rounded_uniform(s, 1, d), {1}); }},
        {"max", [=](DType d) { return max(rounded_uniform(s, 1, d)); }},
        {"softmax", [=](DType d) { return softmax(rounded_uniform(s, 1, d), 1); }},
        {"log_softmax", [=](DType d) { return log_softmax(rounded_uniform(s, 1, d), 1); }},
        {"dropout", [=](DType d) { return dropout(rounded_uniform(s, 1, d), 0.5, true, 3); }},
        {"matmul",
         [=](DType d) {
             return matmul(rounded_uniform(Shape{3, 5}, 1, d), rounded_uniform(Shape{5, 2}, 2, d));
         }},
        {"linear",
         [=](DType d) {
             return linear(rounded_uniform(Shape{3, 5}, 1, d), rounded_uniform(Shape{2, 5}, 2, d),
                           rounded_uniform(Shape{2}, 3, d));
         }},
        {"conv2d",
         [=](DType d) {
             return conv_forward(rounded_uniform(s, 1, d), rounded_uniform(Shape{2, 3, 3, 3}, 2, d), Tensor(),
                                 ConvParams(2));
         }},
        {"max_pool2d", [=](DType d) { return max_pool_forward(rounded_uniform(s, 1, d), PoolParams(2, 2)); }},
        {"avg_pool2d", [=](DType d) { return avg_pool_forward(rounded_uniform(s, 1, d), PoolParams(2, 2)); }},
        {"upsample_nearest2d",
         [=](DType d) {
             return upsample_nearest(rounded_uniform(s, 1, d), {2, 2});
         }},
        {"batch_norm2d",
         [=](DType d) {
             Tensor running_mean = Tensor::zeros(Shape{3}, d);
             Tensor running_var = Tensor::full(Shape{3}, 1.0, d);
             return batch_norm(rounded_uniform(s, 1, d), rounded_uniform(Shape{3}, 2, d),
                               rounded_uniform(Shape{3}, 3, d), running_mean, running_var, true);
         }},
        {"mse_loss", [=](DType d) { return mse_loss(rounded_uniform(s, 1, d), rounded_uniform(s, 2, d)); }},
        {"cross_entropy",
         [=](DType d) {
             return cross_entropy(rounded_uniform(Shape{4, 3}, 1, d),
                                  Tensor::from_vector(Shape{4}, std::vector<std::int64_t>{0, 2, 1, 2}));
         }},
        {"binary_cross_entropy_with_logits",
         [=](DType d) {
             return binary_cross_entropy_with_logits(rounded_uniform(s, 1, d), rounded_uniform(s, 2, d, 0.0, 1.0));
         }},
        // Shape ops copy elements of any size: these run.
        {"flatten", [=](DType d) { return flatten(rounded_uniform(s, 1, d)); }},
        {"concat",
         [=](DType d) {
             return concat({rounded_uniform(s, 1, d), rounded_uniform(s, 2, d)}, 1);
         }},
        {"slice", [=](DType d) { return slice(rounded_uniform(s, 1, d), 2, 1, 3); }},
    };
    return cases;
}

// Tolerances per dtype (relative to the float32 result's magnitude): one rounding of the
// inputs and one of the output, about 2^-8 for bfloat16 and 2^-11 for float16, a few times.
double tolerance(DType dtype) { return dtype == DType::BFloat16 ? 3e-2 : 4e-3; }

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
        const double tol = testing::sixteen_bit_tolerance(d);
        const Tensor x = rounded_uniform(Shape{3, 50}, 1, d);
        const Tensor y = rounded_uniform(Shape{50}, 2, d, 0.5, 2.0);
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

// Each layer op on 16-bit inputs against float64 on the same (rounded) inputs, gradients
// included (tests/sixteen_bit_layer_ops.h; test_cuda runs the same cases on the device).
TEST(DtypeSupport, LayerOpsAndTheirGradientsComputeSixteenBitInFloat32) {
    testing::expect_sixteen_bit_layer_ops_match_float64(Device::host());
}

// The 16-bit path keeps the ops' argument checks: a 16-bit tensor next to a float32 one is an
// error naming both (not silently widened), and geometry errors still name the op.
TEST(DtypeSupport, LayerOpsStillRejectMixedDtypesAndBadShapesByName) {
    const Tensor x = rounded_uniform(Shape{2, 3, 6, 6}, 1, DType::BFloat16);
    const Tensor w = rounded_uniform(Shape{4, 3, 3, 3}, 2, DType::BFloat16);
    const std::string bias =
        testing::message_of<InvalidArgument>([&] { conv_forward(x, w, Tensor::zeros(Shape{4}), ConvParams(2)); });
    EXPECT_NE(bias.find("conv2d: bias is float32 but input is bfloat16"), std::string::npos) << bias;
    const std::string weight = testing::message_of<InvalidArgument>([&] {
        linear(rounded_uniform(Shape{2, 5}, 1, DType::Float16), Tensor::zeros(Shape{3, 5}), Tensor());
    });
    EXPECT_NE(weight.find("linear: weight is float32 but input is float16"), std::string::npos) << weight;
    Tensor running_mean = Tensor::zeros(Shape{3});
    Tensor running_var = Tensor::full(Shape{3}, 1.0, DType::BFloat16);
    const std::string stats = testing::message_of<InvalidArgument>(
        [&] { batch_norm(x, Tensor(), Tensor(), running_mean, running_var, true); });
    EXPECT_NE(stats.find("batch_norm2d: running_mean is float32 but input is bfloat16"), std::string::npos) << stats;
    const std::string shape = testing::message_of<InvalidArgument>([&] {
        matmul(rounded_uniform(Shape{2, 3}, 1, DType::BFloat16), rounded_uniform(Shape{4, 5}, 2, DType::BFloat16));
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
