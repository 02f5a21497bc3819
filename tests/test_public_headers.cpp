// The public headers must build in a translation unit that sees no CUDA header and treats every
// warning as an error: users of libconvkit.so compile with a plain C++ compiler.
#include "convkit/convkit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
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

TEST(PublicHeaders, SaveAndLoadSafetensors) {
    using namespace convkit;
    const std::string path = ::testing::TempDir() + "convkit-public-headers.safetensors";
    save_safetensors(path, {{"w", Tensor::full(Shape{2}, 3.0)}}, {{"format", "pt"}});
    std::map<std::string, std::string> metadata;
    const TensorMap loaded = load_safetensors(path, &metadata);
    std::remove(path.c_str());
    EXPECT_EQ(loaded.at("w").item(1), 3.0);
    EXPECT_EQ(metadata.at("format"), "pt");
}

TEST(PublicHeaders, MatrixProductThroughThePublicHeader) {
    using namespace convkit;
    const Tensor a = Tensor::full(Shape{2, 3}, 1.0);
    const Tensor b = Tensor::full(Shape{3, 4}, 2.0);
    EXPECT_EQ(matmul(a, b).item(0), 6.0);
}

TEST(PublicHeaders, ShapeAndNormOps) {
    using namespace convkit;
    const Tensor a = Tensor::full(Shape{2, 1, 2, 2}, 1.0);
    const Tensor skip = concat({a, upsample_nearest(Tensor::full(Shape{2, 1, 1, 1}, 3.0), {2})}, 1);
    EXPECT_EQ(flatten(slice(skip, 1, 1, 2)).shape(), (Shape{2, 4}));
    Tensor none;
    EXPECT_EQ(batch_norm(skip, Tensor(), Tensor(), none, none, true).shape(), skip.shape());
}

TEST(PublicHeaders, BuildWithoutCudaAndStepAnOptimizer) {
    using namespace convkit;
    Tensor p = Tensor::full(Shape{2}, 1.0).set_requires_grad();
    p.set_grad(Tensor::full(Shape{2}, 4.0));
    optim::SGD opt({p}, {.lr = 0.25});
    optim::StepLR schedule(opt, 1, 0.5);
    opt.step();
    schedule.step();
    EXPECT_EQ(p.item(0), 0.0);
    EXPECT_EQ(opt.learning_rate(), 0.125);
}

TEST(PublicHeaders, SoftmaxLossesAndMetricsAreReachable) {
    using namespace convkit;
    const Tensor logits = Tensor::zeros(Shape{2, 4});
    const Tensor targets = Tensor::from_vector(Shape{2}, std::vector<std::int64_t>{1, 3});
    EXPECT_EQ(softmax(logits, -1).item(0), 0.25);
    EXPECT_NEAR(cross_entropy(logits, targets, 0.0, Reduction::Mean).item(0), std::log(4.0), 1e-6);
    EXPECT_EQ(confusion_matrix(logits, targets, 4).shape(), (Shape{4, 4}));
}

TEST(PublicHeaders, ElementwiseActivationReductionAndDropoutOps) {
    using namespace convkit;
    const Tensor x = Tensor::from_values(Shape{2, 2}, {-1, 2, 3, -4});
    EXPECT_EQ(sum(relu(x) * 2.0 + 1.0).item(0), 14.0);
    EXPECT_EQ(max(abs(x), 1).item(1), 4.0);
    EXPECT_EQ(argmax(x, 0).item(1), 0.0);
    EXPECT_EQ(dropout(x, 0.5, false, 1).raw_data(), x.raw_data());
}

TEST(PublicHeaders, DatasetLoaderTransformsAndPinnedMemory) {
    using namespace convkit;
    auto dataset = std::make_shared<data::TensorDataset>(Tensor::zeros(Shape{5, 1, 4, 4}),
                                                         Tensor::zeros(Shape{5}, DType::Int64));
    data::DataLoader loader(dataset, {.batch_size = 2,
                                      .transform = data::compose({data::random_horizontal_flip(),
                                                                  data::normalize({0.5}, {0.25})})});
    std::int64_t examples = 0;
    for (const data::Batch& batch : loader.epoch(0)) examples += batch.inputs.size(0);
    EXPECT_EQ(examples, 5);
    EXPECT_EQ(data::fashion_mnist_class_names().size(), 10u);
    EXPECT_THROW((void)data::read_idx("/nonexistent/file-idx1-ubyte"), IoError);
    EXPECT_EQ(empty_pinned(Shape{3}).numel(), 3);
}
