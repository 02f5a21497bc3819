// The bad-input sweep: every public op and layer, given a wrong rank, mismatched channels,
// zero or negative sizes, the wrong dtype or tensors on different devices, throws a
// convkit::Error whose message names the op (and so the problem's place); nothing aborts.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "test_util.h"

namespace convkit {
namespace {

struct BadCall {
    std::string name;      // the test's name: op and what is wrong
    std::string expected;  // a part of the message: the op's name, or the value at fault
    std::function<void()> call;
};

Tensor f32(const Shape& s) { return Tensor::zeros(s); }
Tensor f64(const Shape& s) { return Tensor::zeros(s, DType::Float64); }
Tensor i64(const Shape& s) { return Tensor::zeros(s, DType::Int64); }
Tensor none;

std::vector<BadCall> bad_calls() {
    const ConvParams conv2 = ConvParams(2);
    const PoolParams pool2(2, 2);
    return {
        // Wrong rank.
        {"conv2d_rank3_input", "conv2d", [=] { conv_forward(f32({1, 3, 8}), f32({4, 3, 3, 3}), conv2); }},
        {"conv1d_rank4_input", "conv1d", [] { conv_forward(f32({1, 3, 8, 8}), f32({4, 3, 3}), ConvParams(1)); }},
        {"conv_transpose2d_rank3", "conv_transpose2d",
         [=] { conv_transpose_forward(f32({1, 3, 8}), f32({3, 4, 3, 3}), conv2); }},
        {"max_pool2d_rank2", "max_pool2d", [=] { max_pool_forward(f32({8, 8}), pool2); }},
        {"avg_pool3d_rank4", "avg_pool3d", [] { avg_pool_forward(f32({1, 1, 8, 8}), PoolParams(3, 2)); }},
        {"adaptive_pool_rank2", "adaptive_avg_pool", [] { adaptive_avg_pool_forward(f32({4, 4}), {2, 2}); }},
        {"batch_norm_rank1", "batch_norm", [] { batch_norm(f32({4}), none, none, none, none, true); }},
        {"linear_rank3", "linear", [] { linear(f32({2, 3, 4}), f32({5, 4}), none); }},
        {"matmul_rank1", "matmul", [] { matmul(f32({3}), f32({3, 2})); }},
        {"softmax_dim_out_of_range", "softmax", [] { softmax(f32({2, 3}), 2); }},
        {"sum_dim_out_of_range", "sum", [] { sum(f32({2, 3}), {-3}); }},
        {"cross_entropy_targets_rank", "cross_entropy", [] { cross_entropy(f32({4, 3}), i64({4, 1})); }},
        {"upsample_rank2", "upsample", [] { upsample_nearest(f32({4, 4}), {2}); }},
        {"Conv2d_layer_rank3", "conv2d", [] { nn::Conv2d(3, 4, 3)(f32({3, 8, 8})); }},
        {"BatchNorm2d_layer_rank3", "BatchNorm2d", [] { nn::BatchNorm2d(3)(f32({2, 3, 4})); }},
        {"Linear_layer_rank4", "linear", [] { nn::Linear(4, 2)(f32({1, 1, 2, 2})); }},
        {"MaxPool3d_layer_rank4", "max_pool3d", [] { nn::MaxPool3d(2)(f32({1, 1, 4, 4})); }},
        // Mismatched channels or features.
        {"conv2d_channels", "input has 3 channels but weight expects 2",
         [=] { conv_forward(f32({1, 3, 8, 8}), f32({4, 2, 3, 3}), conv2); }},
        {"conv2d_bias_size", "bias", [=] { conv_forward(f32({1, 3, 8, 8}), f32({4, 3, 3, 3}), f32({5}), conv2); }},
        {"conv2d_groups", "groups", [] {
             conv_forward(f32({1, 3, 8, 8}), f32({4, 1, 3, 3}), ConvParams(2).set_groups(3));
         }},
        {"batch_norm_weight_channels", "batch_norm", [] { batch_norm(f32({2, 3, 4}), f32({4}), none, none, none, true); }},
        {"linear_features", "linear", [] { linear(f32({2, 3}), f32({5, 4}), none); }},
        {"matmul_inner", "matmul", [] { matmul(f32({2, 3}), f32({4, 2})); }},
        {"add_broadcast", "add", [] { add(f32({2, 3}), f32({4})); }},
        {"mul_broadcast", "mul", [] { mul(f32({2, 3, 4}), f32({3, 3})); }},
        {"concat_other_dims", "concat", [] { concat({f32({1, 2, 4, 4}), f32({1, 2, 5, 4})}, 1); }},
        {"mse_shapes", "mse_loss", [] { mse_loss(f32({2, 3}), f32({3, 2})); }},
        {"cross_entropy_batch", "cross_entropy", [] { cross_entropy(f32({4, 3}), i64({5})); }},
        {"cross_entropy_class_out_of_range", "cross_entropy",
         [] { cross_entropy(f32({2, 3}), Tensor::from_vector(Shape{2}, std::vector<std::int64_t>{0, 3})); }},
        {"bce_shapes", "binary_cross_entropy_with_logits",
         [] { binary_cross_entropy_with_logits(f32({2, 3}), f32({2, 4})); }},
        {"Conv2d_layer_channels", "conv2d", [] { nn::Conv2d(3, 4, 3)(f32({1, 2, 8, 8})); }},
        {"Linear_layer_features", "linear", [] { nn::Linear(4, 2)(f32({3, 5})); }},
        {"BatchNorm2d_layer_channels", "batch_norm", [] { nn::BatchNorm2d(3)(f32({2, 4, 5, 5})); }},
        // Zero or negative sizes and parameters.
        {"tensor_negative_dim", "Tensor::empty", [] { Tensor::zeros(Shape{2, -1}); }},
        {"conv2d_zero_width", "conv2d", [=] { conv_forward(f32({1, 3, 8, 0}), f32({4, 3, 3, 3}), conv2); }},
        {"conv2d_zero_batch", "conv2d", [=] { conv_forward(f32({0, 3, 8, 8}), f32({4, 3, 3, 3}), conv2); }},
        {"conv2d_kernel_too_large", "conv2d", [=] { conv_forward(f32({1, 3, 2, 2}), f32({4, 3, 3, 3}), conv2); }},
        {"conv2d_negative_padding", "padding", [] {
             conv_forward(f32({1, 3, 8, 8}), f32({4, 3, 3, 3}), ConvParams(2).set_padding(-1));
         }},
        {"conv2d_zero_stride", "stride", [] {
             conv_forward(f32({1, 3, 8, 8}), f32({4, 3, 3, 3}), ConvParams(2).set_stride(0));
         }},
        {"pool_zero_kernel", "kernel", [] { max_pool_forward(f32({1, 1, 4, 4}), PoolParams(2, 0)); }},
        {"upsample_zero_scale", "upsample", [] { upsample_nearest(f32({1, 1, 4, 4}), {0}); }},
        {"slice_out_of_range", "slice", [] { slice(f32({1, 4, 2}), 1, 2, 9); }},
        {"dropout_negative_p", "dropout", [] { dropout(f32({4}), -0.5, true, 1); }},
        {"Conv2d_zero_channels", "Conv2d", [] { nn::Conv2d(0, 4, 3); }},
        {"Linear_zero_features", "Linear", [] { nn::Linear(0, 2); }},
        {"BatchNorm_zero_features", "BatchNorm2d", [] { nn::BatchNorm2d(0); }},
        {"Dropout_p_above_one", "Dropout", [] { nn::Dropout(1.5); }},
        {"AdaptiveAvgPool_no_size", "AdaptiveAvgPool", [] { nn::AdaptiveAvgPool({}); }},
        {"batch_norm_one_value_per_channel", "batch_norm",
         [] { batch_norm(f32({1, 3}), none, none, none, none, true); }},
        // Wrong dtype.
        {"conv2d_int64_input", "conv2d", [=] { conv_forward(i64({1, 3, 8, 8}), f32({4, 3, 3, 3}), conv2); }},
        {"conv2d_mixed_float", "conv2d", [=] { conv_forward(f64({1, 3, 8, 8}), f32({4, 3, 3, 3}), conv2); }},
        {"relu_int64", "relu", [] { relu(i64({4})); }},
        {"sum_int64", "sum", [] { sum(i64({4})); }},
        {"softmax_int64", "softmax", [] { softmax(i64({2, 3}), 1); }},
        {"add_mixed_float", "add", [] { add(f32({2}), f64({2})); }},
        {"cross_entropy_float_targets", "cross_entropy", [] { cross_entropy(f32({2, 3}), f32({2})); }},
        {"max_pool_int64", "max_pool2d", [=] { max_pool_forward(i64({1, 1, 4, 4}), pool2); }},
        {"linear_int64", "linear", [] { linear(i64({2, 3}), f32({4, 3}), none); }},
        {"Linear_layer_float64_input", "linear", [] { nn::Linear(3, 2)(f64({2, 3})); }},
        {"requires_grad_int64", "set_requires_grad", [] { i64({2}).set_requires_grad(); }},
        // Undefined tensors.
        {"conv2d_undefined_weight", "conv2d", [=] { conv_forward(f32({1, 3, 8, 8}), none, conv2); }},
        {"relu_undefined", "relu", [] { relu(none); }},
    };
}

class BadInput : public ::testing::TestWithParam<BadCall> {};

TEST_P(BadInput, ThrowsAConvkitErrorNamingTheProblem) {
    const BadCall& bad = GetParam();
    try {
        bad.call();
        FAIL() << bad.name << ": no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(bad.expected), std::string::npos)
            << bad.name << ": the message does not mention '" << bad.expected << "': " << e.what();
    } catch (const std::exception& e) {
        FAIL() << bad.name << ": not a convkit::Error: " << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(EveryOpAndLayer, BadInput, ::testing::ValuesIn(bad_calls()),
                         [](const ::testing::TestParamInfo<BadCall>& info) { return info.param.name; });

// Tensors on different devices: needs a GPU.
class BadInputAcrossDevices : public testing::WithCuda<> {};

TEST_F(BadInputAcrossDevices, OpsRefuseTensorsOnDifferentDevices) {
    const Tensor host = f32({1, 3, 8, 8});
    const Tensor gpu = Tensor::zeros(Shape{4, 3, 3, 3}, DType::Float32, Device::cuda(0));
    for (const auto& call : std::vector<std::function<void()>>{
             [=] { conv_forward(host, gpu, ConvParams(2)); },
             [=] { add(host, Tensor::zeros(Shape{1, 3, 8, 8}, DType::Float32, Device::cuda(0))); },
             [=] { linear(f32({2, 3}), Tensor::zeros(Shape{4, 3}, DType::Float32, Device::cuda(0)), none); },
             [=] { nn::Conv2d(3, 4, 3)(Tensor::zeros(Shape{1, 3, 8, 8}, DType::Float32, Device::cuda(0))); }}) {
        try {
            call();
            ADD_FAILURE() << "no error for tensors on two devices";
        } catch (const InvalidArgument& e) {
            EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
        }
    }
}

}  // namespace
}  // namespace convkit
