// Bad arguments raise a convkit::Error whose message names the op, the argument and the values.
#include "test_util.h"

namespace convkit {
namespace {

// Runs f, expects an exception of type E, and returns its message.
template <typename E, typename F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("wrong exception type: ") + e.what();
    }
    return "no exception";
}

#define EXPECT_MESSAGE(E, statement, expected)                                      \
    do {                                                                            \
        const std::string message_ = message_of<E>([&] { (void)(statement); });     \
        EXPECT_NE(message_.find(expected), std::string::npos) << "message: " << message_; \
    } while (0)

Tensor zeros(const Shape& shape, DType dtype = DType::Float32) { return Tensor::zeros(shape, dtype); }

TEST(OpErrors, MismatchedChannelsNameBothCountsAndTheWeightShape) {
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({1, 3, 8, 8}), zeros({32, 1, 3, 3}), ConvParams(2)),
                   "conv2d: input has 3 channels but weight expects 1 (weight shape [32, 1, 3, 3])");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_forward(zeros({1, 6, 8}), zeros({4, 2, 3}), ConvParams(1).set_groups(2)),
                   "conv1d: input has 6 channels but weight expects 4 (2 per group x 2 groups)");
    EXPECT_MESSAGE(InvalidArgument, conv_transpose_forward(zeros({1, 3, 4, 4}), zeros({4, 2, 3, 3}), ConvParams(2)),
                   "conv_transpose2d: input has 3 channels but weight expects 4");
}

TEST(OpErrors, GroupsMustDivideChannels) {
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({1, 4, 8, 8}), zeros({6, 2, 3, 3}), ConvParams(2).set_groups(3)),
                   "conv2d: groups 3 does not divide the input's 4 channels");
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({1, 4, 8, 8}), zeros({3, 2, 3, 3}), ConvParams(2).set_groups(2)),
                   "conv2d: groups 2 does not divide the weight's 3 output channels");
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({1, 4, 8, 8}), zeros({4, 1, 3, 3}), ConvParams(2).set_groups(0)),
                   "conv2d: groups must be at least 1, got 0");
}

TEST(OpErrors, KernelLargerThanThePaddedInput) {
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({1, 1, 4, 9}), zeros({1, 1, 5, 3}), ConvParams(2)),
                   "conv2d (dim H): kernel 5 (extent 5 with dilation 1) is larger than the padded input 4");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_forward(zeros({1, 1, 9, 4}), zeros({1, 1, 3, 3}), ConvParams(2).set_dilation({1, 2})),
                   "conv2d (dim W): kernel 3 (extent 5 with dilation 2) is larger than the padded input 4");
    EXPECT_MESSAGE(InvalidArgument, max_pool_forward(zeros({1, 1, 2, 2}), PoolParams(2, 3)),
                   "max_pool2d (dim H): kernel 3");
}

TEST(OpErrors, ZeroOrNegativeSizes) {
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({0, 1, 4, 4}), zeros({1, 1, 3, 3}), ConvParams(2)),
                   "conv2d: input shape [0, 1, 4, 4] has a zero or negative dimension");
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({1, 1, 4, 4}), zeros({1, 1, 0, 3}), ConvParams(2)),
                   "conv2d: weight shape [1, 1, 0, 3] has a zero or negative dimension");
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({1, 1, 4, 4}), zeros({1, 1, 3, 3}), ConvParams(2).set_stride(0)),
                   "conv2d: stride must be at least 1, got 0 in dim H");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_forward(zeros({1, 1, 4, 4}), zeros({1, 1, 3, 3}), ConvParams(2).set_padding({0, -1})),
                   "conv2d: padding must not be negative, got -1 in dim W");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_forward(zeros({1, 1, 4, 4}), zeros({1, 1, 3, 3}), ConvParams(2).set_dilation(-2)),
                   "conv2d: dilation must be at least 1, got -2 in dim H");
    EXPECT_MESSAGE(InvalidArgument, avg_pool_forward(zeros({1, 1, 4, 4}), PoolParams(2, 2).set_stride(0)),
                   "stride must be at least 1, got 0");
    EXPECT_MESSAGE(InvalidArgument, adaptive_avg_pool_forward(zeros({1, 1, 4, 4}), {2, 0}),
                   "adaptive_avg_pool2d: output size must be at least 1, got 0 in dim W");
    EXPECT_MESSAGE(InvalidArgument, Tensor::zeros(Shape{2, -3}), "dimensions must not be negative, got shape [2, -3]");
}

TEST(OpErrors, WrongRank) {
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({3, 8, 8}), zeros({4, 3, 3, 3}), ConvParams(2)),
                   "conv2d: input must have rank 4 ([N, C, H, W]), got shape [3, 8, 8]");
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({1, 3, 8, 8}), zeros({4, 3, 3}), ConvParams(2)),
                   "conv2d: weight must have rank 4 ([C_out, C_in / groups, kH, kW]), got shape [4, 3, 3]");
    EXPECT_MESSAGE(InvalidArgument, conv_forward(zeros({1, 3, 8, 8, 8}), zeros({4, 3, 3, 3, 3}), ConvParams(2)),
                   "conv2d: input must have rank 4");
    EXPECT_MESSAGE(InvalidArgument, max_pool_forward(zeros({1, 8, 8}), PoolParams(2, 2)),
                   "max_pool2d: input must have rank 4 ([N, C, H, W]), got shape [1, 8, 8]");
    EXPECT_MESSAGE(InvalidArgument, global_avg_pool_forward(zeros({8, 8})),
                   "global_avg_pool: input must be [N, C, spatial...], got [8, 8]");
}

TEST(OpErrors, DtypeAndDefinedness) {
    EXPECT_MESSAGE(InvalidArgument,
                   conv_forward(zeros({1, 1, 4, 4}), zeros({1, 1, 3, 3}, DType::Float64), ConvParams(2)),
                   "conv2d: weight is float64 but input is float32");
    EXPECT_MESSAGE(InvalidArgument, conv_forward(Tensor(), zeros({1, 1, 3, 3}), ConvParams(2)),
                   "conv2d: input is undefined");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_forward(zeros({1, 1, 4, 4}), zeros({2, 1, 3, 3}), zeros({3}), ConvParams(2)),
                   "conv2d: bias must have shape [2] (one value per output channel), got [3]");
}

TEST(OpErrors, BackwardShapesMustAgreeWithTheForwardOp) {
    EXPECT_MESSAGE(InvalidArgument,
                   conv_backward_data(zeros({1, 2, 5, 5}), zeros({2, 1, 3, 3}), Shape{1, 1, 8, 8}, ConvParams(2)),
                   "conv2d_backward_data: grad_output has shape [1, 2, 5, 5] but the op's output has shape [1, 2, 6, 6]");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_backward_filter(zeros({1, 2, 6, 6}), zeros({1, 1, 8, 8}), Shape{2, 1, 2, 2}, ConvParams(2)),
                   "conv2d_backward_filter: grad_output has shape [1, 2, 6, 6] but the op's output has shape [1, 2, 7, 7]");
    EXPECT_MESSAGE(InvalidArgument, max_pool_backward(zeros({1, 1, 3, 3}), zeros({1, 1, 8, 8}), PoolParams(2, 2)),
                   "max_pool2d_backward: grad_output has shape [1, 1, 3, 3] but the op's output has shape [1, 1, 4, 4]");
}

TEST(OpErrors, ParameterCombinationsThatHaveNoMeaning) {
    EXPECT_MESSAGE(InvalidArgument,
                   conv_forward(zeros({1, 1, 8, 8}), zeros({1, 1, 3, 3}), ConvParams(2).set_stride(2).set_same_padding()),
                   "conv2d: 'same' padding needs stride 1, got stride 2x2");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_forward(zeros({1, 1, 3, 8}), zeros({1, 1, 3, 3}),
                                ConvParams(2).set_padding(3).set_padding_mode(PaddingMode::Reflect)),
                   "conv2d: reflect padding 3 is too large for input size 3 in dim H (must be smaller than the size)");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_forward(zeros({1, 1, 8, 8}), zeros({1, 1, 3, 3}), ConvParams(2).set_output_padding(1)),
                   "conv2d: output_padding applies to transposed convolution only");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_transpose_forward(zeros({1, 1, 4, 4}), zeros({1, 1, 3, 3}),
                                          ConvParams(2).set_padding_mode(PaddingMode::Circular)),
                   "conv_transpose2d: only zeros padding is supported, got circular");
    EXPECT_MESSAGE(InvalidArgument,
                   conv_transpose_forward(zeros({1, 1, 4, 4}), zeros({1, 1, 3, 3}),
                                          ConvParams(2).set_stride(2).set_output_padding(2)),
                   "output_padding 2 must be non-negative and smaller than stride 2 or dilation 1");
    EXPECT_MESSAGE(InvalidArgument, max_pool_forward(zeros({1, 1, 8, 8}), PoolParams(2, 3).set_padding(2)),
                   "max_pool2d: padding 2 must be between 0 and half the kernel size 3 in dim H");
    EXPECT_MESSAGE(InvalidArgument, avg_pool_forward(zeros({1, 1, 8, 8}), PoolParams(2, 2).set_dilation(2)),
                   "avg_pool2d: dilation applies to max pooling only, got 2x2");
}

TEST(OpErrors, GlobalPoolingGradientHasOneValuePerPlane) {
    EXPECT_MESSAGE(InvalidArgument, global_avg_pool_backward(zeros({1, 2, 2, 2}), Shape{1, 2, 4, 4}),
                   "global_avg_pool2d_backward: grad_output must be [N, C, 1...] (one value per plane), got [1, 2, 2, 2]");
}

TEST(OpErrors, OnlyTheOpsOwnDimsOfAParameterCount) {
    // A scalar setter fills all three entries; a later per-dim setter for a 2-D op leaves the third.
    const ConvParams params = ConvParams(2).set_output_padding(1).set_output_padding({0, 0});
    EXPECT_NO_THROW(conv_forward(zeros({1, 1, 4, 4}), zeros({1, 1, 3, 3}), params));
    EXPECT_EQ(params.to_string(), "s1x1_p0x0_d1x1_g1");
}

TEST(OpErrors, EveryErrorIsAConvkitError) {
    // Callers can catch one base type for everything the library throws.
    EXPECT_THROW(conv_forward(zeros({1, 3, 8, 8}), zeros({32, 1, 3, 3}), ConvParams(2)), Error);
    EXPECT_THROW(max_pool_forward(zeros({1, 8, 8}), PoolParams(2, 2)), Error);
}

}  // namespace
}  // namespace convkit
