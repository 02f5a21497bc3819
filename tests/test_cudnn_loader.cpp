// cuDNN is opened on first use (src/backends/cudnn/cudnn_api.h), not linked: a process that never
// touches the cudnn backend never maps it, and when it does, every function convkit calls
// resolves. Needs no GPU. The library missing altogether is tested by
// tests/install/run-relocated-test (a fresh process with every CUDA library hidden).
#include <string>

#include "backends/cudnn/cudnn_api.h"
#include "test_util.h"

namespace convkit {
namespace {

bool cudnn_is_mapped() { return testing::library_is_mapped("libcudnn.so"); }

TEST(CudnnLoading, LoadedOnFirstUseWithEveryFunction) {
    if (cuda_is_emulated()) GTEST_SKIP() << "the emulated CUDA device build never loads cuDNN";
    if (!cudnn_is_mapped()) {
        (void)conv_forward(Tensor::full(Shape{1, 1, 4, 4}, 1.0), Tensor::full(Shape{1, 1, 3, 3}, 1.0), ConvParams(2));
        EXPECT_FALSE(cudnn_is_mapped()) << "a host convolution loaded cuDNN";
    }
    if (const std::string reason = detail::cudnn_unavailable_reason(); !reason.empty()) {
        EXPECT_NE(reason.find("install cuDNN"), std::string::npos) << reason;
        GTEST_SKIP() << "cuDNN is not installed here: " << reason;
    }
    const detail::CudnnApi& api = detail::cudnn();
    EXPECT_TRUE(cudnn_is_mapped());
    int resolved = 0;
#define CONVKIT_CUDNN_EXPECT_RESOLVED(name) \
    EXPECT_NE(api.name, nullptr) << #name;  \
    ++resolved;
    CONVKIT_CUDNN_FUNCTIONS(CONVKIT_CUDNN_EXPECT_RESOLVED)
#undef CONVKIT_CUDNN_EXPECT_RESOLVED
    EXPECT_GE(resolved, 30);
    EXPECT_STREQ(api.cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM");
    EXPECT_EQ(api.cudnnGetVersion() / 10000, static_cast<std::size_t>(CUDNN_MAJOR));
    const std::string info = build_info();
    EXPECT_NE(info.find("cuDNN compiled " + std::to_string(CUDNN_MAJOR)), std::string::npos) << info;
    EXPECT_NE(info.find(", loaded " + std::to_string(CUDNN_MAJOR) + "."), std::string::npos) << info;
}

}  // namespace
}  // namespace convkit
