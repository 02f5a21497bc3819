// The hand-written CUDA convolution kernels against the host reference (label gpu).
// Each kernel writes into buffers filled with NaN beforehand, so an element it leaves unwritten
// fails; float64 must match the reference to 1e-12, strict float32 to 1e-5 (relative error).
#include <limits>

#include "kernel_sweeps.h"
#include "kernels/conv_direct.h"
#include "backend_api/geometry.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {


// The host results every GPU suite of this executable compares with come from the reference.
const auto* const pinned = ::testing::AddGlobalTestEnvironment(new testing::PinHostReference);

using testing::ConvCase;

class CudaConv : public testing::WithCuda<::testing::TestWithParam<ConvCase>> {};

// Each pass computed once on the host in float64, then by the kernels in float64 and float32
// into NaN-filled buffers.
TEST_P(CudaConv, EveryPassMatchesTheHostReference) {
    const ConvCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    const std::string op = conv_op_name(c.params.spatial_rank, c.transposed);
    const detail::ConvGeometry g = c.transposed ? detail::conv_transpose_geometry(op, c.input, c.weight, c.params)
                                                : detail::conv_geometry(op, c.input, c.weight, c.params);
    // In the geometry's terms (the adjoint convolution for a transposed op).
    const Shape conv_in = g.input_shape();
    const Shape conv_out = g.output_shape();
    const Tensor x = testing::random_tensor(conv_in, rng);
    const Tensor w = testing::random_tensor(c.weight, rng);
    const Tensor dy = testing::random_tensor(conv_out, rng);
    const Tensor bias_out = testing::random_tensor(Shape{g.out_channels}, rng);
    const Tensor bias_in = testing::random_tensor(Shape{g.in_channels}, rng);

    // The host reference of the three passes plus the bias gradient, in float64.
    const Tensor ref_forward = c.transposed ? conv_transpose_backward_data(x, w, dy.shape(), c.params)
                                            : conv_forward(x, w, bias_out, c.params);
    const Tensor ref_data = c.transposed ? conv_transpose_forward(dy, w, bias_in, c.params)
                                         : conv_backward_data(dy, w, x.shape(), c.params);
    const Tensor ref_filter = c.transposed ? conv_transpose_backward_filter(x, dy, c.weight, c.params)
                                           : conv_backward_filter(dy, x, c.weight, c.params);
    const Tensor ref_bias = conv_backward_bias(dy);

    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        const double tolerance = dtype == DType::Float64 ? testing::kFloat64Tolerance : testing::kCudaStrictFloat32Tolerance;
        const Device gpu = Device::cuda();
        const Tensor xd = x.to(dtype).to(gpu);
        const Tensor wd = w.to(dtype).to(gpu);
        const Tensor dyd = dy.to(dtype).to(gpu);
        const Tensor bout = bias_out.to(dtype).to(gpu);
        const Tensor bin = bias_in.to(dtype).to(gpu);
        const Stream stream = current_stream(0);

        Tensor y = testing::nan_tensor(conv_out, dtype, gpu);
        kernels::conv_forward_direct(g, dtype, xd.raw_data(), wd.raw_data(), c.transposed ? nullptr : bout.raw_data(),
                                     y.raw_data(), stream);
        EXPECT_LT(testing::relative_error(y, ref_forward), tolerance) << "forward";

        Tensor dx = testing::nan_tensor(conv_in, dtype, gpu);
        kernels::conv_backward_data_direct(g, dtype, dyd.raw_data(), wd.raw_data(),
                                           c.transposed ? bin.raw_data() : nullptr, dx.raw_data(), stream);
        EXPECT_LT(testing::relative_error(dx, ref_data), tolerance) << "backward data";

        Tensor dw = testing::nan_tensor(c.weight, dtype, gpu);
        kernels::conv_backward_filter_direct(g, dtype, dyd.raw_data(), xd.raw_data(), dw.raw_data(), stream);
        EXPECT_LT(testing::relative_error(dw, ref_filter), tolerance) << "backward filter";

        Tensor db = testing::nan_tensor(Shape{g.out_channels}, dtype, gpu);
        kernels::conv_backward_bias(g.batch, g.out_channels, g.output_spatial(), dtype, dyd.raw_data(), db.raw_data(),
                                    stream);
        EXPECT_LT(testing::relative_error(db, ref_bias), tolerance) << "bias gradient";
    }
}

INSTANTIATE_TEST_SUITE_P(Sweep, CudaConv, ::testing::ValuesIn(testing::conv_sweep()), testing::conv_case_name);

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
