#pragma once
// A bf16 GEMM problem for gemm_bf16_mma (tests/emu/gemm_bf16_mma.cu) with its plain-loop answer,
// shared by the emulator's test (test_emu_planted.cpp) and the GPU's (test_cuda_mma.cpp): the
// same kernel, the same check, on the CPU on every commit and on a GPU when one is lent.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

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
    GemmProblem p{m, n, k, std::vector<std::uint16_t>(static_cast<std::size_t>(m) * k),
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
inline double gemm_error(const GemmProblem& p, const std::vector<float>& c) {
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < c.size(); ++i) {
        if (std::isnan(c[i])) return std::nan("");
        worst = std::max(worst, std::abs(c[i] - p.expected[i]));
        scale = std::max(scale, std::abs(p.expected[i]));
    }
    return worst / std::max(scale, 1.0);
}

}  // namespace convkit::testing
