// The bf16 tensor-core GEMM (tests/emu/gemm_bf16_mma.cu: mma.sync m16n8k16, ldmatrix, cp.async)
// on the GPU (label gpu), checked exactly as the emulator's test checks it (emu/gemm_problem.h).
// Passing both ways shows that the emulator's PTX fragment layouts are the hardware's: the next
// tensor-core kernel verified in the emulator can trust them.
#include <cuda_runtime_api.h>

#include <vector>

#include "cuda_capability.h"
#include "emu/gemm_problem.h"
#include "emu/test_kernels.h"
#include "test_util.h"

namespace convkit {
namespace {

// bf16 mma.sync and cp.async need compute capability 8.0.
using CudaMma = testing::WithComputeCapability<8, 0, testing::Capability::AtLeast>;

// Device copies of a problem's operands, the product back on the host.
std::vector<float> run_on_gpu(const testing::GemmProblem& p) {
    void *a = nullptr, *b = nullptr, *c = nullptr;
    EXPECT_EQ(cudaMalloc(&a, p.a.size() * 2), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&b, p.b.size() * 2), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&c, p.expected.size() * sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(a, p.a.data(), p.a.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(b, p.b.data(), p.b.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaMemset(c, 0xff, p.expected.size() * sizeof(float)), cudaSuccess);  // NaN
    kernels::emu_tests::gemm_bf16_mma(p.m, p.n, p.k, static_cast<const std::uint16_t*>(a),
                                      static_cast<const std::uint16_t*>(b), static_cast<float*>(c));
    std::vector<float> result(p.expected.size());
    EXPECT_EQ(cudaMemcpy(result.data(), c, result.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return result;
}

TEST_F(CudaMma, GemmOnSmallIntegersIsExact) {
    CONVKIT_SEEDED_RNG(rng);
    const testing::GemmProblem p = testing::gemm_problem(64, 96, 128, rng, true);
    EXPECT_EQ(testing::gemm_error(p, run_on_gpu(p)), 0.0);
}

// The hardware sums in float in its own order: float rounding over 256 terms.
TEST_F(CudaMma, GemmOnRandomValuesWithinFloatRounding) {
    CONVKIT_SEEDED_RNG(rng);
    const testing::GemmProblem p = testing::gemm_problem(128, 64, 256, rng, false);
    EXPECT_LT(testing::gemm_error(p, run_on_gpu(p)), 1e-5);
}

}  // namespace
}  // namespace convkit
