// Every op given bfloat16 or float16 tensors either computes the float32 result (rounded to the
// 16-bit type, within its tolerance) or raises NotSupported naming the op and the dtype: never
// runs the bytes as another type, never another error.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "temp_dir.h"
#include "test_util.h"

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

TEST(DtypeSupport, OptimizersAndTransformsRefuseSixteenBitByName) {
    std::mt19937_64 rng(1);
    for (DType d : {DType::BFloat16, DType::Float16}) {
        Tensor p = Tensor::zeros(Shape{3}, DType::Float32);
        Tensor q = Tensor::zeros(Shape{3}, d);
        optim::SGDOptions options;
        options.lr = 0.1;
        const std::string message = testing::message_of<NotSupported>([&] { optim::SGD({p, q}, options); });
        EXPECT_NE(message.find("SGD: parameter 1 is " + std::string(dtype_name(d))), std::string::npos) << message;
        const std::string flip = testing::message_of<NotSupported>(
            [&] { data::random_horizontal_flip(1.0)(Tensor::zeros(Shape{1, 2, 2}, d), rng); });
        EXPECT_NE(flip.find(dtype_name(d)), std::string::npos) << flip;
    }
}

}  // namespace
}  // namespace convkit
