// Output-size arithmetic of convolution, transposed convolution and pooling, with the worked
// examples of docs/convolution-arithmetic.md.
#include "backend_api/geometry.h"
#include "test_util.h"

namespace convkit {
namespace {

TEST(ConvArithmetic, ClassicExerciseConvThenMaxPoolGives125) {
    // A 256x256 image, conv (kernel 3, stride 2, padding 1), then max pooling (kernel 4, stride 1).
    const std::int64_t conv = conv_output_size(256, 3, 2, 1);
    EXPECT_EQ(conv, 128);
    EXPECT_EQ(pool_output_size(conv, 4, 1, 0), 125);
    const Shape after_conv = conv_output_shape(Shape{1, 3, 256, 256}, Shape{16, 3, 3, 3}, ConvParams(2).set_stride(2).set_padding(1));
    EXPECT_EQ(after_conv, (Shape{1, 16, 128, 128}));
    const Shape after_pool = pool_output_shape(after_conv, PoolParams(2, 4).set_stride(1));
    EXPECT_EQ(after_pool, (Shape{1, 16, 125, 125}));
}

TEST(ConvArithmetic, ConvolutionOutputSizes) {
    EXPECT_EQ(conv_output_size(5, 3), 3);                 // no padding, unit stride
    EXPECT_EQ(conv_output_size(5, 3, 1, 1), 5);           // half padding keeps the size
    EXPECT_EQ(conv_output_size(5, 3, 1, 2), 7);           // full padding grows it
    EXPECT_EQ(conv_output_size(5, 3, 2, 1), 3);           // strided: floor((5 + 2 - 3) / 2) + 1
    EXPECT_EQ(conv_output_size(6, 3, 2, 1), 3);           // floor drops the last partial window
    EXPECT_EQ(conv_output_size(7, 3, 1, 0, 2), 3);        // dilation 2: effective kernel 5
    EXPECT_EQ(conv_output_size(28, 5, 1, 2), 28);
    EXPECT_EQ(conv_output_size_asymmetric(10, 4, 1, 1, 2, 1), 10);
}

TEST(ConvArithmetic, SamePaddingSplitsTheTotalWithTheExtraAtTheEnd) {
    EXPECT_EQ(same_padding(3), (std::array<std::int64_t, 2>{1, 1}));
    EXPECT_EQ(same_padding(4), (std::array<std::int64_t, 2>{1, 2}));
    EXPECT_EQ(same_padding(3, 2), (std::array<std::int64_t, 2>{2, 2}));
    EXPECT_EQ(same_padding(1), (std::array<std::int64_t, 2>{0, 0}));
    for (std::int64_t k = 1; k <= 7; ++k) {
        for (std::int64_t d = 1; d <= 3; ++d) {
            const auto p = same_padding(k, d);
            EXPECT_EQ(conv_output_size_asymmetric(9, k, 1, p[0], p[1], d), 9) << "k=" << k << " d=" << d;
        }
    }
    const Shape out = conv_output_shape(Shape{2, 3, 9, 10}, Shape{4, 3, 4, 5}, ConvParams(2).set_same_padding());
    EXPECT_EQ(out, (Shape{2, 4, 9, 10}));
}

TEST(ConvArithmetic, TransposedConvolutionInvertsTheConvolutionSize) {
    EXPECT_EQ(conv_transpose_output_size(3, 3), 5);
    EXPECT_EQ(conv_transpose_output_size(3, 3, 2, 1), 5);
    EXPECT_EQ(conv_transpose_output_size(3, 3, 2, 1, 1, 1), 6);  // output_padding picks 6 over 5
    EXPECT_EQ(conv_transpose_output_size(16, 4, 2, 1), 32);       // the DCGAN / U-Net doubling
    EXPECT_EQ(conv_transpose_output_size(4, 3, 1, 0, 2), 8);
    for (std::int64_t in = 4; in <= 12; ++in) {
        for (std::int64_t s = 1; s <= 3; ++s) {
            const std::int64_t out = conv_output_size(in, 3, s, 1);
            const std::int64_t op = (in + 2 - 3) % s;
            EXPECT_EQ(conv_transpose_output_size(out, 3, s, 1, 1, op), in) << "in=" << in << " s=" << s;
        }
    }
    EXPECT_THROW(conv_transpose_output_size(3, 3, 2, 1, 1, 2), InvalidArgument);  // op must be < stride
    EXPECT_EQ(conv_transpose_output_size(3, 3, 1, 0, 2, 1), 8);                   // or < dilation
    EXPECT_THROW(conv_transpose_output_size(1, 1, 1, 1), InvalidArgument);        // size would be -1
}

TEST(ConvArithmetic, TransposedShapeUsesGroupsAndWeightLayout) {
    // weight [C_in, C_out / groups, k]: 4 groups of 3 output channels.
    const Shape out =
        conv_transpose_output_shape(Shape{2, 8, 5, 7}, Shape{8, 3, 4, 4}, ConvParams(2).set_stride(2).set_padding(1).set_groups(4));
    EXPECT_EQ(out, (Shape{2, 12, 10, 14}));
}

// A convolution is one matrix product when its one output position reads the whole unpadded,
// undilated input: a fully connected layer as a convolution, a 1x1 on one position, the adjoint of
// a transposed layer from 1x1 (DCGAN's first, 1x1 -> 4x4); not with padding, dilation, a smaller
// kernel, or a stride that still leaves one position of a kernel smaller than the input.
TEST(ConvArithmetic, MatrixProductsAreTheConvolutionsThatReadTheWholeInputOnce) {
    const auto conv = [](const Shape& x, const Shape& w, const ConvParams& p) {
        return detail::is_matrix_product(detail::conv_geometry("conv", x, w, p));
    };
    EXPECT_TRUE(conv(Shape{3, 5, 4, 4}, Shape{7, 5, 4, 4}, ConvParams(2)));
    EXPECT_TRUE(conv(Shape{3, 8, 1, 1}, Shape{4, 8, 1, 1}, ConvParams(2)));
    EXPECT_TRUE(conv(Shape{2, 4, 6}, Shape{6, 2, 6}, ConvParams(1).set_groups(2).set_stride(3)));
    EXPECT_TRUE(conv(Shape{1, 2, 2, 3, 4}, Shape{5, 2, 2, 3, 4}, ConvParams(3)));
    EXPECT_TRUE(detail::is_matrix_product(
        detail::conv_transpose_geometry("conv_transpose2d", Shape{2, 100, 1, 1}, Shape{100, 64, 4, 4}, ConvParams(2))));
    EXPECT_FALSE(conv(Shape{3, 5, 4, 4}, Shape{7, 5, 4, 4}, ConvParams(2).set_padding(1)));   // 3x3 outputs
    EXPECT_FALSE(conv(Shape{3, 5, 4, 4}, Shape{7, 5, 3, 3}, ConvParams(2).set_stride(2)));    // one output, 3x3 of 4x4
    EXPECT_FALSE(conv(Shape{3, 5, 5, 5}, Shape{7, 5, 3, 3}, ConvParams(2).set_dilation(2)));  // one output, dilated
    EXPECT_FALSE(conv(Shape{3, 5, 4, 4}, Shape{7, 5, 2, 2}, ConvParams(2).set_stride(2)));    // 2x2 outputs
    EXPECT_FALSE(detail::is_matrix_product(detail::conv_transpose_geometry(
        "conv_transpose2d", Shape{2, 64, 4, 4}, Shape{64, 32, 4, 4}, ConvParams(2).set_stride(2).set_padding(1))));
}

TEST(ConvArithmetic, PoolingCeilModeDropsAWindowThatStartsInTheRightPadding) {
    EXPECT_EQ(pool_output_size(5, 2, 2), 2);
    EXPECT_EQ(pool_output_size(5, 2, 2, 0, 1, true), 3);  // the last window starts at 4, inside
    EXPECT_EQ(pool_output_size(6, 3, 3, 1, 1, false), 2);
    // ceil((6 + 2 - 3) / 3) + 1 = 3; window 2 starts at 2 * 3 - 1 = 5 < 6 + 1: kept.
    EXPECT_EQ(pool_output_size(6, 3, 3, 1, 1, true), 3);
    // in=4, k=2, s=2, p=1: ceil((4 + 2 - 2) / 2) + 1 = 3; window 2 starts at 2 * 2 - 1 = 3 < 5: kept.
    EXPECT_EQ(pool_output_size(4, 2, 2, 1, 1, true), 3);
    // in=5, k=2, s=3, p=1: ceil((5 + 2 - 2) / 3) + 1 = 3; window 2 starts at 6 >= 5 + 1: dropped.
    EXPECT_EQ(pool_output_size(5, 2, 3, 1, 1, true), 2);
    EXPECT_EQ(pool_output_size(7, 3, 2, 0, 2, false), 2);  // dilation 2: extent 5, floor(2 / 2) + 1
}

TEST(ConvArithmetic, PoolShapes) {
    EXPECT_EQ(pool_output_shape(Shape{1, 3, 9}, PoolParams(1, 3).set_stride(2)), (Shape{1, 3, 4}));
    EXPECT_EQ(pool_output_shape(Shape{2, 4, 5, 6, 7}, PoolParams(3, {1, 2, 3})), (Shape{2, 4, 5, 3, 2}));
    EXPECT_EQ(pool_output_shape(Shape{1, 1, 7, 7}, PoolParams(2, 3).set_stride(2).set_ceil_mode(), PoolKind::Average),
              (Shape{1, 1, 3, 3}));
}

TEST(ConvArithmetic, KernelLargerThanThePaddedInputIsAnError) {
    try {
        conv_output_size(4, 5, 1, 0, 1, "conv2d");
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_STREQ(e.what(),
                     "conv2d: kernel 5 (extent 5 with dilation 1) is larger than the padded input 4 (input 4 + padding 0 + 0)");
    }
    EXPECT_NO_THROW(conv_output_size(4, 5, 1, 1));
    EXPECT_THROW(conv_output_size(4, 3, 1, 0, 2), InvalidArgument);  // extent 5 > 4
    EXPECT_THROW(conv_output_size(0, 1), InvalidArgument);
    EXPECT_THROW(conv_output_size(4, 0), InvalidArgument);
    EXPECT_THROW(conv_output_size(4, 3, 0), InvalidArgument);
    EXPECT_THROW(conv_output_size(4, 3, 1, -1), InvalidArgument);
    EXPECT_THROW(pool_output_size(2, 3, 1), InvalidArgument);
}

TEST(ConvParams, ToStringNamesEveryNonDefault) {
    EXPECT_EQ(ConvParams(2).to_string(), "s1x1_p0x0_d1x1_g1");
    EXPECT_EQ(ConvParams(3).set_stride({1, 2, 3}).set_padding(1).set_groups(4).to_string(), "s1x2x3_p1x1x1_d1x1x1_g4");
    EXPECT_EQ(ConvParams(1).set_same_padding().set_padding_mode(PaddingMode::Reflect).to_string(), "s1_psame_d1_g1_reflect");
    EXPECT_EQ(ConvParams(2).set_stride(2).set_output_padding({1, 0}).to_string(), "s2x2_p0x0_d1x1_g1_op1x0");
    EXPECT_EQ(PoolParams(2, {3, 2}).to_string(), "k3x2_s3x2_p0x0");
    EXPECT_EQ(PoolParams(1, 3).set_stride(1).set_padding(1).set_ceil_mode().set_count_include_pad(false).to_string(),
              "k3_s1_p1_ceil_excludepad");
    EXPECT_THROW(ConvParams(4), InvalidArgument);
    EXPECT_THROW(ConvParams(2).set_stride({1, 2, 3}), InvalidArgument);
    EXPECT_THROW(PoolParams(2, {3}), InvalidArgument);
}

}  // namespace
}  // namespace convkit
