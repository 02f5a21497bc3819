#pragma once
// GEMM problems for the tensor-core test kernels (tests/emu/gemm_bf16_mma.cu, wgmma_gemm.cu) with
// their plain-loop answers in double, shared by the emulator's tests (test_emu_planted.cpp) and
// the GPU's (test_cuda_mma.cpp, test_cuda_wgmma.cpp): the same kernel, the same check, on the CPU
// on every commit and on a GPU when one is lent.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "convkit/half.h"
#include "test_kernels.h"
#include "test_util.h"

namespace convkit::testing {

inline std::uint16_t bfloat16_bits(float value) {  // round to nearest even
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<std::uint16_t>(bits >> 16);
}

inline float bfloat16_value(std::uint16_t bits) {
    const std::uint32_t widened = std::uint32_t{bits} << 16;
    float value;
    std::memcpy(&value, &widened, sizeof(value));
    return value;
}

struct GemmProblem {
    int m, n, k;
    std::vector<std::uint16_t> a, b;  // bf16 bits, row-major m x k and k x n
    std::vector<double> expected;     // the plain loop over the bf16 values, in double
};

// Small integers in [-3, 3] make every product and sum exact in float: the kernel must then
// match bit for bit. Otherwise uniform in [-1, 1).
inline GemmProblem gemm_problem(int m, int n, int k, std::mt19937_64& rng, bool small_integers) {
    GemmProblem p{m,
                  n,
                  k,
                  std::vector<std::uint16_t>(static_cast<std::size_t>(m) * k),
                  std::vector<std::uint16_t>(static_cast<std::size_t>(k) * n),
                  std::vector<double>(static_cast<std::size_t>(m) * n, 0.0)};
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    auto draw = [&] { return small_integers ? static_cast<float>(pick(rng, -3, 3)) : uniform(rng); };
    for (auto& v : p.a) v = bfloat16_bits(draw());
    for (auto& v : p.b) v = bfloat16_bits(draw());
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j)
            for (int l = 0; l < k; ++l)
                p.expected[static_cast<std::size_t>(i) * n + j] +=
                    double{bfloat16_value(p.a[static_cast<std::size_t>(i) * k + l])} *
                    bfloat16_value(p.b[static_cast<std::size_t>(l) * n + j]);
    return p;
}

// Worst |c - expected| relative to the largest |expected| (NaN if any element is NaN).
inline double product_error(const std::vector<double>& expected, const std::vector<float>& c) {
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < c.size(); ++i) {
        if (std::isnan(c[i])) return std::nan("");
        worst = std::max(worst, std::abs(c[i] - expected[i]));
        scale = std::max(scale, std::abs(expected[i]));
    }
    return worst / std::max(scale, 1.0);
}

inline double gemm_error(const GemmProblem& p, const std::vector<float>& c) {
    return product_error(p.expected, c);
}

// A problem for wgmma_gemm (tests/emu/wgmma_gemm.cu): d (64 x n) = a (64 x k) * b (k x n) [+ c],
// b held transposed (n x k), values drawn as gemm_problem's, as bf16 or f16 bits or as floats
// already exact in tf32 (their 13 low mantissa bits zero); c float.
struct WgmmaProblem {
    kernels::emu_tests::WgmmaOperand operand;
    int n, k;
    bool swizzle128, accumulate;
    std::vector<unsigned char> a, b_transposed;  // the elements' bits, 2 or 4 bytes each
    std::vector<float> c;                        // empty unless accumulate
    std::vector<double> expected;
};

// Appends the bits of `value` as `operand` stores it and returns the value the tensor cores see.
inline double append_operand(kernels::emu_tests::WgmmaOperand operand, float value, std::vector<unsigned char>& out) {
    using kernels::emu_tests::WgmmaOperand;
    std::uint32_t bits;
    std::size_t bytes = 2;
    double exact;
    if (operand == WgmmaOperand::TensorFloat32) {
        std::memcpy(&bits, &value, sizeof(bits));
        bits &= ~0x1fffu;  // exact in tf32
        float kept;
        std::memcpy(&kept, &bits, sizeof(kept));
        exact = kept;
        bytes = 4;
    } else if (operand == WgmmaOperand::BFloat16) {
        bits = bfloat16_bits(value);
        exact = bfloat16_value(static_cast<std::uint16_t>(bits));
    } else {
        const float16 half(value);
        bits = half.bits;
        exact = static_cast<double>(half);
    }
    const std::size_t at = out.size();
    out.resize(at + bytes);
    std::memcpy(out.data() + at, &bits, bytes);  // little-endian: the low bytes
    return exact;
}

inline WgmmaProblem wgmma_problem(kernels::emu_tests::WgmmaOperand operand, int n, int k, bool swizzle128,
                                  bool accumulate, std::mt19937_64& rng, bool small_integers) {
    constexpr int m = 64;
    WgmmaProblem p{
        operand, n, k, swizzle128, accumulate, {}, {}, {}, std::vector<double>(static_cast<std::size_t>(m) * n, 0.0)};
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    auto draw = [&] { return small_integers ? static_cast<float>(pick(rng, -3, 3)) : uniform(rng); };
    std::vector<double> a(static_cast<std::size_t>(m) * k), b(static_cast<std::size_t>(n) * k);
    for (auto& v : a) v = append_operand(operand, draw(), p.a);
    for (auto& v : b) v = append_operand(operand, draw(), p.b_transposed);
    if (accumulate) {
        p.c.resize(p.expected.size());
        for (auto& v : p.c) v = draw();
    }
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double sum = accumulate ? p.c[static_cast<std::size_t>(i) * n + j] : 0.0;
            for (int l = 0; l < k; ++l)
                sum += a[static_cast<std::size_t>(i) * k + l] * b[static_cast<std::size_t>(j) * k + l];
            p.expected[static_cast<std::size_t>(i) * n + j] = sum;
        }
    return p;
}

}  // namespace convkit::testing
