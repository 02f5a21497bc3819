// The GPU matrix products (cuBLAS, and convkit's own kernel that the emulated CUDA device uses)
// against the host reference (label gpu): every transpose combination, with and without bias,
// odd sizes, float64 (1e-12), strict float32 (1e-5) and TF32 (5e-3) per element against the sum
// of its terms' magnitudes, into NaN-filled outputs; the public ops on CUDA tensors; the cuBLAS
// error check.
#include <array>
#include <random>
#include <vector>

#include "cuda/cublas_api.h"
#include "cuda/cublas_check.h"
#include "backend_api/backend_registry.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

using detail::GemmShape;

// As docs/testing.md: strict float32 like the hand-written kernels; TF32 rounds each product's
// inputs to 10 mantissa bits (2^-11 relative).

class CudaLinear : public testing::WithCuda<> {
protected:
    void TearDown() override { set_default_math_mode(MathMode::Strict); }
};

using testing::MathModeGuard;

struct GpuProduct {
    const char* name;
    const detail::GemmBackendOps& ops;
};

// Every matrix product a CUDA tensor may get: cuBLAS's on a GPU, convkit's kernel everywhere.
std::vector<GpuProduct> gpu_products() {
    std::vector<GpuProduct> products = {{"convkit kernel", detail::cuda_gemm_backend()}};
    if (!cuda_is_emulated()) products.push_back({"cuBLAS", detail::cublas_gemm_backend()});
    return products;
}

// The table's product on the device into a NaN-filled [m, n], brought back to the host.
Tensor run_on(const detail::GemmBackendOps& ops, const GemmShape& s, const Tensor& a, const Tensor& b,
              const Tensor& bias, DType dtype, Device device) {
    const Tensor ad = a.to(dtype).to(device), bd = b.to(dtype).to(device);
    const Tensor biasd = bias.defined() ? bias.to(dtype).to(device) : Tensor();
    Tensor c = testing::nan_tensor(Shape{s.m, s.n}, dtype, device);
    ops.gemm(s, dtype, ad.raw_data(), bd.raw_data(), biasd.defined() ? biasd.raw_data() : nullptr, c.raw_data(),
             device.is_cuda() ? current_stream(device.index) : Stream{});
    return c.to(Device::host());
}

TEST_F(CudaLinear, EveryGpuProductMatchesTheHostReference) {
    CONVKIT_SEEDED_RNG(rng);
    // Odd sizes, a vector-like product, and one large enough for tensor-core tiles.
    const std::vector<std::array<std::int64_t, 3>> sizes = {{1, 1, 1}, {7, 5, 3}, {33, 1, 65}, {1, 129, 17},
                                                            {257, 129, 300}};
    for (const auto& [m, n, k] : sizes)
        for (bool ta : {false, true})
            for (bool tb : {false, true})
                for (bool with_bias : {false, true}) {
                    const GemmShape s{m, n, k, ta, tb};
                    SCOPED_TRACE(::testing::Message() << "m=" << m << " n=" << n << " k=" << k << (ta ? " A^T" : "")
                                                    << (tb ? " B^T" : "") << (with_bias ? " +bias" : ""));
                    const Tensor a = testing::random_tensor(ta ? Shape{k, m} : Shape{m, k}, rng);
                    const Tensor b = testing::random_tensor(tb ? Shape{n, k} : Shape{k, n}, rng);
                    const Tensor bias = with_bias ? testing::random_tensor(Shape{n}, rng) : Tensor();
                    const Tensor reference =
                        run_on(detail::host_gemm_backend(), s, a, b, bias, DType::Float64, Device::host());
                    // Each element judged against the sum of its terms' magnitudes (the product on
                    // |a|, |b|, |bias|): the one-element problems (m = n = 1) may cancel to near zero,
                    // a * b + bias with k = 1 in about 1 run in 200, where rounding the inputs to
                    // float32 alone leaves no relative accuracy (seed 5477695767078343880: m=1 n=1
                    // k=1 +bias, 4.9e-5 relative in strict float32).
                    const Tensor magnitudes = run_on(detail::host_gemm_backend(), s, abs(a), abs(b),
                                                     with_bias ? abs(bias) : Tensor(), DType::Float64, Device::host());
                    for (const GpuProduct& product : gpu_products()) {
                        SCOPED_TRACE(product.name);
                        EXPECT_LT(
                            testing::summation_error(run_on(product.ops, s, a, b, bias, DType::Float64, Device::cuda()),
                                                     reference, magnitudes),
                            testing::kFloat64Tolerance)
                            << "float64";
                        {
                            MathModeGuard strict(MathMode::Strict);
                            EXPECT_LT(testing::summation_error(
                                          run_on(product.ops, s, a, b, bias, DType::Float32, Device::cuda()), reference,
                                          magnitudes),
                                      testing::kCudaStrictFloat32Tolerance)
                                << "strict float32";
                        }
                        MathModeGuard tf32(MathMode::AllowTF32);
                        EXPECT_LT(
                            testing::summation_error(run_on(product.ops, s, a, b, bias, DType::Float32, Device::cuda()),
                                                     reference, magnitudes),
                            testing::kTf32Tolerance)
                            << "tf32";
                    }
                }
}

// Small integers are exact in TF32 as well (|v| <= 3 needs 2 bits), so even the TF32 path and
// its bias must agree bit for bit; any index or transpose error would show.
TEST_F(CudaLinear, ExactOnSmallIntegersInEveryMode) {
    CONVKIT_SEEDED_RNG(rng);
    const GemmShape s{45, 37, 29, true, false};
    const Tensor a = testing::small_integer_tensor(Shape{s.k, s.m}, rng());
    const Tensor b = testing::small_integer_tensor(Shape{s.k, s.n}, rng());
    const Tensor bias = testing::small_integer_tensor(Shape{s.n}, rng());
    const Tensor reference = run_on(detail::host_gemm_backend(), s, a, b, bias, DType::Float64, Device::host());
    for (MathMode mode : {MathMode::Strict, MathMode::AllowTF32}) {
        MathModeGuard guard(mode);
        for (DType dtype : {DType::Float64, DType::Float32})
            for (const GpuProduct& product : gpu_products()) {
                EXPECT_TRUE(testing::exactly_equal(run_on(product.ops, s, a, b, bias, dtype, Device::cuda()), reference))
                    << product.name << " " << math_mode_name(mode) << " " << dtype_name(dtype);
            }
    }
}

// The public ops on CUDA tensors (cuBLAS whichever GPU backend is chosen; convkit's kernel on the
// emulated device) give the host's answers.
TEST_F(CudaLinear, PublicOpsOnCudaTensors) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = testing::random_tensor(Shape{9, 20}, rng);
    const Tensor w = testing::random_tensor(Shape{6, 20}, rng);
    const Tensor b = testing::random_tensor(Shape{6}, rng);
    const Tensor dy = testing::random_tensor(Shape{9, 6}, rng);
    const Device gpu = Device::cuda();
    const Tensor m = testing::random_tensor(Shape{20, 3}, rng);
    std::vector<Tensor> reference;
    {
        BackendGuard host(Backend::Host);
        reference = {linear(x, w, b), linear_backward_input(dy, w), linear_backward_weight(dy, x),
                     linear_backward_bias(dy), matmul(x, m)};
    }
    for (Backend backend : {Backend::Cuda, Backend::Cudnn}) {
#ifndef CONVKIT_WITH_CUDNN
        if (backend == Backend::Cudnn) continue;
#endif
        if (backend == Backend::Cudnn && cuda_is_emulated()) continue;  // cuDNN needs a GPU
        BackendGuard guard(backend);
        const Tensor y = linear(x.to(gpu), w.to(gpu), b.to(gpu));
        EXPECT_TRUE(y.device().is_cuda());
        EXPECT_LT(testing::relative_error(y, reference[0]), testing::kFloat64Tolerance) << backend_name(backend);
        EXPECT_LT(testing::relative_error(linear_backward_input(dy.to(gpu), w.to(gpu)), reference[1]),
                  testing::kFloat64Tolerance);
        EXPECT_LT(testing::relative_error(linear_backward_weight(dy.to(gpu), x.to(gpu)), reference[2]),
                  testing::kFloat64Tolerance);
        EXPECT_LT(testing::relative_error(linear_backward_bias(dy.to(gpu)), reference[3]), testing::kFloat64Tolerance);
        EXPECT_LT(testing::relative_error(matmul(x.to(gpu), m.to(gpu)), reference[4]), testing::kFloat64Tolerance);
    }
}

TEST_F(CudaLinear, CublasFailuresThrowCudaErrorNamingTheCall) {
    if (cuda_is_emulated()) GTEST_SKIP() << "cuBLAS cannot run on the emulated CUDA device";
    try {
        CONVKIT_CHECK_CUBLAS(detail::cublas_api().sgemm(nullptr, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, nullptr, nullptr,
                                                        1, nullptr, 1, nullptr, nullptr, 1));
        FAIL() << "expected CudaError";
    } catch (const CudaError& e) {
        EXPECT_NE(std::string(e.what()).find("sgemm"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("failed: CUBLAS_STATUS_"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace convkit
