// The public convolution ops on CUDA tensors (label gpu): default backend, backend choice, and
// sizes past 2^31 elements. The kernels themselves are swept against the float64 reference
// through their variant in tests/test_variant_sweep.cpp.
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

// The host results every GPU suite of this executable compares with come from the reference.
const auto* const pinned = ::testing::AddGlobalTestEnvironment(new testing::PinHostReference);

class CudaConvOps : public testing::WithCuda<> {};

// The public ops on CUDA tensors run the CUDA backend by default and give the host's answer.
TEST_F(CudaConvOps, PublicOpsRunOnTheGpuByDefault) {
    const ConvParams p = ConvParams(2).set_stride(2).set_padding(1).set_groups(2);
    const Tensor x = Tensor::normal(Shape{2, 4, 9, 8}, 0, 1, testing::fresh_seed(), DType::Float64);
    const Tensor w = Tensor::normal(Shape{6, 2, 3, 3}, 0, 1, testing::fresh_seed(), DType::Float64);
    const Tensor b = Tensor::normal(Shape{6}, 0, 1, testing::fresh_seed(), DType::Float64);
    const Tensor on_gpu = conv_forward(x.to(Device::cuda()), w.to(Device::cuda()), b.to(Device::cuda()), p);
    EXPECT_TRUE(on_gpu.device().is_cuda());
    EXPECT_LT(testing::relative_error(on_gpu, conv_forward(x, w, b, p)), testing::kFloat64Tolerance);
    const Tensor dy = Tensor::normal(on_gpu.shape(), 0, 1, testing::fresh_seed(), DType::Float64);
    EXPECT_LT(testing::relative_error(conv_backward_bias(dy.to(Device::cuda())), conv_backward_bias(dy)),
              testing::kFloat64Tolerance);
}

// Host backends have their own slot: choosing one leaves CUDA tensors on the GPU backend.
TEST_F(CudaConvOps, ChoosingAHostBackendLeavesGpuTensorsOnTheGpu) {
    const Tensor x = Tensor::full(Shape{1, 1, 4, 4}, 1.0, DType::Float32, Device::cuda());
    const Tensor w = Tensor::full(Shape{1, 1, 3, 3}, 1.0, DType::Float32, Device::cuda());
    const Backend gpu_backend = default_backend();
    for (Backend host : {Backend::Host, Backend::HostBlas}) {
        BackendGuard guard(host);
        EXPECT_EQ(default_backend(), gpu_backend);
        const Tensor y = conv_forward(x, w, ConvParams(2));
        EXPECT_TRUE(y.device().is_cuda());
        EXPECT_EQ(y.to(Device::host()).to_vector(), std::vector<double>(4, 9.0));
    }
}

// More than 2^31 elements through the convolution path: an identity kernel [0, 1, 0] on a
// ramp must give the ramp back at every index, which a 32-bit index would get wrong.
TEST_F(CudaConvOps, ConvolutionPastTwoToTheThirtyOneElements) {
    CONVKIT_SKIP_ON_EMULATED_DEVICE("2^31 elements (8 GiB) are too many to emulate");
    const std::int64_t n = (std::int64_t{1} << 31) + 5;
    std::vector<float> ramp(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) ramp[static_cast<std::size_t>(i)] = static_cast<float>(i % 1021);
    const Tensor x = Tensor::from_vector(Shape{1, 1, n}, ramp, Device::cuda());
    std::vector<float>().swap(ramp);  // release the 8 GiB before the result comes back
    const Tensor w = Tensor::from_values(Shape{1, 1, 3}, {0, 1, 0}, DType::Float32, Device::cuda());
    const Tensor y = conv_forward(x, w, ConvParams(1).set_padding(1)).to(Device::host());
    ASSERT_EQ(y.numel(), n);
    const float* values = y.data<float>();
    std::int64_t wrong = 0;
    for (std::int64_t i = 0; i < n; ++i) wrong += values[i] != static_cast<float>(i % 1021);
    EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace convkit
