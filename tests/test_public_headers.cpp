// The public headers must build in a translation unit that sees no CUDA header and treats every
// warning as an error: users of libconvkit.so compile with a plain C++ compiler.
#include "convkit/convkit.h"

#include <gtest/gtest.h>

#if defined(__CUDA_RUNTIME_API_H__) || defined(__CUDA_RUNTIME_H__) || defined(CUDNN_MAJOR) || defined(__cuda_cuda_h__)
#error "a public convkit header included a CUDA header"
#endif

TEST(PublicHeaders, BuildWithoutCudaAndRunAnOp) {
    using namespace convkit;
    const Tensor x = Tensor::full(Shape{1, 1, 3, 3}, 1.0);
    const Tensor w = Tensor::full(Shape{1, 1, 3, 3}, 2.0);
    EXPECT_EQ(conv_forward(x, w, ConvParams(2)).item(0), 18.0);
}

TEST(PublicHeaders, ElementwiseActivationReductionAndDropoutOps) {
    using namespace convkit;
    const Tensor x = Tensor::from_values(Shape{2, 2}, {-1, 2, 3, -4});
    EXPECT_EQ(sum(relu(x) * 2.0 + 1.0).item(0), 14.0);
    EXPECT_EQ(max(abs(x), 1).item(1), 4.0);
    EXPECT_EQ(argmax(x, 0).item(1), 0.0);
    EXPECT_EQ(dropout(x, 0.5, false, 1).raw_data(), x.raw_data());
}
