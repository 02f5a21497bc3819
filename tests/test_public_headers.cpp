// The public headers must build in a translation unit that sees no CUDA header and treats every
// warning as an error: users of libconvkit.so compile with a plain C++ compiler.
#include "convkit/convkit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__CUDA_RUNTIME_API_H__) || defined(__CUDA_RUNTIME_H__) || defined(CUDNN_MAJOR) || defined(__cuda_cuda_h__)
#error "a public convkit header included a CUDA header"
#endif

TEST(PublicHeaders, BuildWithoutCudaAndRunAnOp) {
    using namespace convkit;
    const Tensor x = Tensor::full(Shape{1, 1, 3, 3}, 1.0);
    const Tensor w = Tensor::full(Shape{1, 1, 3, 3}, 2.0);
    EXPECT_EQ(conv_forward(x, w, ConvParams(2)).item(0), 18.0);
}

TEST(PublicHeaders, SoftmaxLossesAndMetricsAreReachable) {
    using namespace convkit;
    const Tensor logits = Tensor::zeros(Shape{2, 4});
    const Tensor targets = Tensor::from_vector(Shape{2}, std::vector<std::int64_t>{1, 3});
    EXPECT_EQ(softmax(logits, -1).item(0), 0.25);
    EXPECT_NEAR(cross_entropy(logits, targets, 0.0, Reduction::Mean).item(0), std::log(4.0), 1e-6);
    EXPECT_EQ(confusion_matrix(logits, targets, 4).shape(), (Shape{4, 4}));
}
