// The convolution epilogue (ConvEpilogue: residual and ReLU after the bias) on the host: one op
// and one autograd node that gives what the composition relu(conv(x, w) + b + r) of separate
// ops gives, forward and every gradient (the residual's included), in both memory formats, for
// convolutions and transposed ones; bad residuals are refused naming the argument.
#include <gtest/gtest.h>

#include "conv_epilogue_case.h"
#include "tolerances.h"

namespace convkit {
namespace {

using testing::EpilogueCase;

std::vector<EpilogueCase> cases() {
    return {
        {"conv2d padded", false, ConvParams(2).set_padding(1), Shape{2, 3, 6, 5}, Shape{4, 3, 3, 3}},
        {"conv1d strided", false, ConvParams(1).set_stride(2).set_padding(1), Shape{2, 2, 11}, Shape{3, 2, 3}},
        {"conv3d", false, ConvParams(3).set_padding(1), Shape{1, 2, 3, 4, 3}, Shape{2, 2, 3, 3, 3}},
        {"conv2d groups", false, ConvParams(2).set_groups(2), Shape{1, 4, 5, 5}, Shape{6, 2, 2, 2}},
        {"conv_transpose2d strided", true, ConvParams(2).set_stride(2).set_padding(1), Shape{2, 3, 3, 4},
         Shape{3, 2, 4, 4}},
    };
}

// Float64 on the host: the fused op runs the same arithmetic as the composition, so both agree
// to rounding, for every combination of bias, residual and ReLU.
TEST(ConvEpilogue, FusedOpGivesTheCompositionsResultAndGradients) {
    CONVKIT_SEEDED_RNG(rng);
    for (const EpilogueCase& c : cases()) {
        for (int combination = 0; combination < 8; ++combination) {
            const bool bias = combination & 1, residual = combination & 2, relu_after = combination & 4;
            SCOPED_TRACE(c.name + (bias ? " bias" : "") + (residual ? " residual" : "") + (relu_after ? " relu" : ""));
            const testing::EpilogueInputs in = testing::random_epilogue_inputs(c, bias, residual, DType::Float32, rng);
            const auto run = [&](bool fused) {
                return testing::run_epilogue(c, in, relu_after, fused, DType::Float64, Device::host(),
                                             MemoryFormat::Contiguous);
            };
            const testing::EpilogueResults fused = run(true), composed = run(false);
            testing::expect_epilogue_results_close(fused, composed, testing::kFloat64Tolerance);
            if (relu_after) {
                // The ReLU did something: some outputs were negative before it.
                EXPECT_GT(
                    testing::max_abs_difference(fused.y, testing::run_epilogue(c, in, false, true, DType::Float64,
                                                                               Device::host(), MemoryFormat::Contiguous)
                                                             .y),
                    0.0);
            }
        }
    }
}

// Channels-last activations (and a residual in the other format than the input) give the same
// numbers in the input's format.
TEST(ConvEpilogue, EitherMemoryFormatGivesTheSameResults) {
    CONVKIT_SEEDED_RNG(rng);
    for (const EpilogueCase& c : cases()) {
        SCOPED_TRACE(c.name);
        const testing::EpilogueInputs in = testing::random_epilogue_inputs(c, true, true, DType::Float32, rng);
        const testing::EpilogueResults expected =
            testing::run_epilogue(c, in, true, false, DType::Float64, Device::host(), MemoryFormat::Contiguous);
        const testing::EpilogueResults got =
            testing::run_epilogue(c, in, true, true, DType::Float64, Device::host(), MemoryFormat::ChannelsLast);
        testing::expect_epilogue_results_close(got, expected, testing::kFloat64Tolerance);

        const Tensor x = in.x.to(MemoryFormat::ChannelsLast);
        Tensor r = in.r.detach();  // stays contiguous: converted inside the op, its gradient back
        r.set_requires_grad();
        const ConvEpilogue epilogue{r, true};
        const Tensor y = c.transposed ? conv_transpose_forward(x, in.w, in.b, c.params, epilogue)
                                      : conv_forward(x, in.w, in.b, c.params, epilogue);
        EXPECT_EQ(y.memory_format(), MemoryFormat::ChannelsLast);
        EXPECT_LT(testing::relative_error(y.contiguous(), expected.y), testing::kFloat64Tolerance);
        y.backward(in.dy.to(MemoryFormat::ChannelsLast));
        EXPECT_EQ(r.grad().memory_format(), MemoryFormat::Contiguous);
        EXPECT_LT(testing::relative_error(r.grad(), expected.dr), testing::kFloat64Tolerance);
    }
}

// bfloat16 and float16 on the host compute in float32 (the epilogue included) and round once.
TEST(ConvEpilogue, SixteenBitMatchesFloat64) {
    CONVKIT_SEEDED_RNG(rng);
    for (const EpilogueCase& c : cases()) {
        for (DType dtype : {DType::BFloat16, DType::Float16}) {
            SCOPED_TRACE(c.name + " " + dtype_name(dtype));
            const testing::EpilogueInputs in = testing::random_epilogue_inputs(c, true, true, dtype, rng);
            const testing::EpilogueResults expected =
                testing::run_epilogue(c, in, true, false, DType::Float64, Device::host(), MemoryFormat::Contiguous);
            const testing::EpilogueResults got =
                testing::run_epilogue(c, in, true, true, dtype, Device::host(), MemoryFormat::Contiguous);
            testing::expect_epilogue_results_close(got, expected, testing::sixteen_bit_tolerance(dtype));
        }
    }
}

// Only the residual wants a gradient: it gets dy masked by the ReLU.
TEST(ConvEpilogue, ResidualAloneGetsTheMaskedGradient) {
    CONVKIT_SEEDED_RNG(rng);
    const EpilogueCase c = cases()[0];
    const testing::EpilogueInputs in = testing::random_epilogue_inputs(c, true, true, DType::Float32, rng);
    Tensor r = in.r.detach();
    r.set_requires_grad();
    const Tensor y = conv_forward(in.x, in.w, in.b, c.params, {r, true});
    y.backward(in.dy);
    const std::vector<double> ys = y.to_vector(), dys = in.dy.to_vector(), drs = r.grad().to_vector();
    ASSERT_EQ(drs.size(), dys.size());
    for (std::size_t i = 0; i < drs.size(); ++i) {
        ASSERT_EQ(drs[i], ys[i] > 0 ? dys[i] : 0.0) << "element " << i << ", y " << ys[i];
    }
}

TEST(ConvEpilogue, BadResidualIsRefusedNamingIt) {
    const Tensor x = Tensor::zeros(Shape{1, 2, 5, 5}), w = Tensor::zeros(Shape{3, 2, 3, 3});
    const ConvParams params(2);
    const auto message_of = [&](const Tensor& residual) {
        try {
            (void)conv_forward(x, w, Tensor(), params, {residual, true});
        } catch (const InvalidArgument& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const std::string wrong_shape = message_of(Tensor::zeros(Shape{1, 3, 5, 5}));
    EXPECT_NE(wrong_shape.find("conv2d"), std::string::npos) << wrong_shape;
    EXPECT_NE(wrong_shape.find("epilogue.residual"), std::string::npos) << wrong_shape;
    EXPECT_NE(wrong_shape.find("[1, 3, 3, 3]"), std::string::npos) << wrong_shape;
    EXPECT_NE(wrong_shape.find("[1, 3, 5, 5]"), std::string::npos) << wrong_shape;
    const std::string wrong_dtype = message_of(Tensor::zeros(Shape{1, 3, 3, 3}, DType::Float64));
    EXPECT_NE(wrong_dtype.find("epilogue.residual"), std::string::npos) << wrong_dtype;
    EXPECT_THROW((void)conv_transpose_forward(x, Tensor::zeros(Shape{2, 3, 3, 3}), Tensor(), params,
                                              {Tensor::zeros(Shape{1, 3, 5, 5}), false}),
                 InvalidArgument);
}

}  // namespace
}  // namespace convkit
