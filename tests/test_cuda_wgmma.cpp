// The warpgroup-MMA test kernel (tests/emu/wgmma_gemm.cu: wgmma m64nNk16 from 128-byte-swizzled
// and unswizzled K-major shared tiles) on the device (label gpu), checked against a float64
// product of the same 16-bit values. The emulator runs the same source in test_emu and, in the
// emulated-device build, here. On an H100/H200 it checks that the emulator's reading of the PTX
// ISA (descriptor bits, swizzle, accumulator fragment, scale-d) is the hardware's, which every
// wgmma kernel verified in the emulator then relies on; likewise the mbarrier ring for the
// mbarrier rules. Skipped on other devices (sm_90a code).
#include <cuda_runtime_api.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "cuda_capability.h"
#include "emu/bulk_copy_problem.h"
#include "emu/gemm_problem.h"
#include "emu/test_kernels.h"
#include "test_util.h"

namespace convkit {
namespace {

// wgmma is sm_90a code: compute capability 9.0 only (the bulk tensor copy, sm_90, is tested with it).
using CudaWgmma = testing::WithComputeCapability<9, 0, testing::Capability::Exactly>;

// A device copy of `host` (null for an empty vector), freed with cudaFree.
template <typename T>
T* device_copy(const std::vector<T>& host) {
    if (host.empty()) return nullptr;
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, host.size() * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    return static_cast<T*>(p);
}

std::vector<float> run_on_gpu(const testing::WgmmaProblem& p, bool mn_major) {
    unsigned char* a = device_copy(p.a);
    unsigned char* b = device_copy(p.b_transposed);
    float* c = device_copy(p.c);
    float* d = device_copy(std::vector<float>(p.expected.size(), 0.0f));
    EXPECT_EQ(cudaMemset(d, 0xff, p.expected.size() * sizeof(float)), cudaSuccess);  // NaN
    kernels::emu_tests::wgmma_gemm(p.operand, p.n, p.k, p.swizzle128, a, b, c, d, kernels::emu_tests::WgmmaPlant::None,
                                   mn_major);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> result(p.expected.size());
    EXPECT_EQ(cudaMemcpy(result.data(), d, result.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    for (void* buffer : {static_cast<void*>(a), static_cast<void*>(b), static_cast<void*>(c), static_cast<void*>(d)})
        cudaFree(buffer);  // null for an absent c: a no-op
    return result;
}

using kernels::emu_tests::WgmmaOperand;

struct WgmmaCase {
    WgmmaOperand operand;
    int n, k;
    bool swizzle128, accumulate, small_integers;
    bool mn_major = false;  // both operands MN-major (the transpose flags; 16-bit, swizzled)
};

std::string case_label(const WgmmaCase& c) {
    const char* operand = c.operand == WgmmaOperand::BFloat16  ? "bf16"
                          : c.operand == WgmmaOperand::Float16 ? "f16"
                                                               : "tf32";
    return std::string(operand) + "_n" + std::to_string(c.n) + "_k" + std::to_string(c.k) +
           (c.swizzle128 ? "_swizzle128" : "_unswizzled") + (c.accumulate ? "_accumulate" : "_overwrite") +
           (c.small_integers ? "_integers" : "_random") + (c.mn_major ? "_mn_major" : "");
}

std::string case_name(const ::testing::TestParamInfo<WgmmaCase>& info) {
    return case_label(info.param);
}

// gtest (and so ctest's test names) print the case by its label, not its bytes.
void PrintTo(const WgmmaCase& c, std::ostream* out) {
    *out << case_label(c);
}

class CudaWgmmaCases : public CudaWgmma, public ::testing::WithParamInterface<WgmmaCase> {};

// Small integers: every product and sum is exact in float, so the device must match bit for bit.
// Random values: the hardware's own order of float sums over k, within float rounding.
TEST_P(CudaWgmmaCases, MatchesTheFloat64Product) {
    const WgmmaCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    const testing::WgmmaProblem p =
        testing::wgmma_problem(c.operand, c.n, c.k, c.swizzle128, c.accumulate, rng, c.small_integers);
    const double error = testing::product_error(p.expected, run_on_gpu(p, c.mn_major));
    if (c.small_integers) {
        EXPECT_EQ(error, 0.0);
    } else {
        EXPECT_LT(error, 1e-5);
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaWgmmaCases,
                         ::testing::Values(WgmmaCase{WgmmaOperand::BFloat16, 64, 128, true, false, true},
                                           WgmmaCase{WgmmaOperand::BFloat16, 128, 64, true, true, false},
                                           WgmmaCase{WgmmaOperand::BFloat16, 64, 64, false, true, true},
                                           WgmmaCase{WgmmaOperand::Float16, 64, 128, true, true, true},
                                           WgmmaCase{WgmmaOperand::Float16, 64, 64, false, false, false},
                                           WgmmaCase{WgmmaOperand::TensorFloat32, 64, 64, true, true, true},
                                           WgmmaCase{WgmmaOperand::TensorFloat32, 64, 32, false, false, false},
                                           WgmmaCase{WgmmaOperand::BFloat16, 128, 64, true, true, true, true},
                                           WgmmaCase{WgmmaOperand::BFloat16, 64, 64, true, false, false, true},
                                           WgmmaCase{WgmmaOperand::Float16, 64, 128, true, true, true, true}),
                         case_name);

// The mbarrier ring (tests/emu/mbarrier_ring.cu) on the device: one producer warp and two
// consumer warps through 3 stages and 40 chunks (both parities of every stage's barriers many
// times); each consumer's sum in its own order, bit for bit with the host's. On an H100/H200 this
// pins the emulator's parity rules (a wait for parity 1 on a fresh barrier returns at once; a
// phase completes at its count's arrivals) to the hardware's: a wrong reading hangs or reads a
// stage early here.
TEST_F(CudaWgmma, MbarrierRingMatchesTheHost) {
    constexpr int kChunks = 40;
    std::vector<float> in(kChunks * 32);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i % 89) * 0.5f - 11.0f;
    std::vector<float> expected(64);
    for (std::size_t t = 0; t < expected.size(); ++t) {
        float sum = 0.0f;
        for (std::size_t c = 0; c < kChunks; ++c) sum += in[c * 32 + t % 32];
        expected[t] = sum;
    }
    float* device_in = device_copy(in);
    float* device_out = device_copy(std::vector<float>(64, 0.0f));
    EXPECT_EQ(cudaMemset(device_out, 0xff, 64 * sizeof(float)), cudaSuccess);  // NaN
    kernels::emu_tests::mbarrier_pipeline_probe(device_in, kChunks, device_out);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> out(64);
    EXPECT_EQ(cudaMemcpy(out.data(), device_out, out.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(device_in);
    cudaFree(device_out);
    EXPECT_EQ(out, expected);
}

// A bulk-copy probe problem on the device: its tensor, coordinates and offsets (im2col) copied
// over, its map encoded by `encode` for the device copy, out poisoned (0xAB); the probe's bytes.
template <class Problem, class Encode, class Probe>
std::vector<unsigned char> copy_probe_on_gpu(Problem& p, Encode&& encode, Probe&& probe) {
    unsigned char* tensor = device_copy(p.tensor);
    int* coordinates = device_copy(p.coordinates);
    unsigned char* out = device_copy(std::vector<unsigned char>(p.expected.size(), 0xAB));
    std::uint16_t* offsets = nullptr;
    if constexpr (requires { p.offsets; }) offsets = device_copy(p.offsets);
    p.spec.global = tensor;
    probe(encode("test", p.spec), coordinates, offsets, static_cast<unsigned>(tma::box_bytes(p.spec)), out);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<unsigned char> result(p.expected.size());
    EXPECT_EQ(cudaMemcpy(result.data(), out, result.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    for (void* buffer : {static_cast<void*>(tensor), static_cast<void*>(coordinates), static_cast<void*>(offsets),
                         static_cast<void*>(out)})
        cudaFree(buffer);  // null offsets: a no-op
    return result;
}

// The bulk tensor copy (tests/emu/bulk_tensor_copy.cu) on the device: each box's bytes in shared
// memory, as the copy engine leaves them, byte for byte against the definition the emulator
// follows (bulk_copy_problem.h): the driver's encoding of the same map, the zero fill outside the
// tensor (negative coordinates too), the 128-byte swizzle on the stage's address, and a transaction
// count of the whole box, which completes the phase (a wrong reading of any hangs or differs here).
TEST_F(CudaWgmma, BulkTensorCopyMatchesTheDefinition) {
    CONVKIT_SEEDED_RNG(rng);
    for (testing::BulkCopyProblem& p : testing::bulk_copy_problems(rng)) {
        SCOPED_TRACE(p.name);
        const std::vector<unsigned char> result = copy_probe_on_gpu(
            p, kernels::encode_tiled_tensor_map,
            [&](const tma::TensorMap& map, const int* coordinates, const std::uint16_t*, unsigned bytes,
                unsigned char* out) {
                kernels::emu_tests::bulk_tensor_copy_probe(map, p.spec.rank, coordinates, p.boxes, bytes, out);
            });
        EXPECT_EQ(result, p.expected);
    }
}

// The im2col copy on the device, byte for byte against the definition the emulator follows
// (bulk_copy_problem.h): the bounding box from the corners, the walk's order and wrap across
// images, the traversal stride, the offsets, the channel range, the zero fill; 2-D (a tensor under
// and one over 128 KiB), strided, 1-D, 3-D. The first run on an H100/H200 tests the project's
// reading of the PTX ISA's im2col mode, which cuda.wgmma.producer's A tiles rely on.
TEST_F(CudaWgmma, BulkIm2colCopyMatchesTheDefinition) {
    CONVKIT_SEEDED_RNG(rng);
    for (testing::BulkIm2colProblem& p : testing::bulk_im2col_problems(rng)) {
        SCOPED_TRACE(p.name);
        const std::vector<unsigned char> result = copy_probe_on_gpu(
            p, kernels::encode_im2col_tensor_map,
            [&](const tma::TensorMap& map, const int* coordinates, const std::uint16_t* offsets, unsigned bytes,
                unsigned char* out) {
                kernels::emu_tests::bulk_im2col_copy_probe(map, p.spec.rank, coordinates, offsets, p.boxes, bytes, out);
            });
        EXPECT_EQ(result, p.expected);
    }
}

}  // namespace
}  // namespace convkit
