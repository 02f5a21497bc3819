#pragma once
// The tolerance policy of the test suites, in one place (docs/testing.md explains it). Errors
// are relative, ||a - b|| / ||b|| over all elements (testing::relative_error); NaN always fails.
// The GPU suites' rows are here too, whichever device runs them (a GPU or the emulated one).
#include "convkit/dtype.h"

namespace convkit::testing {

// A float64 result against an independent float64 definition: they differ only in summation
// order and a few roundings.
inline constexpr double kFloat64Tolerance = 1e-12;
// A float32 result against the same inputs' float64 result: the host reference accumulates in
// double and rounds once, so only that final rounding (2^-24 relative) separates them.
inline constexpr double kFloat32VsFloat64Tolerance = 1e-6;
// A float32 result against an independent float64 definition on float64 inputs: the rounding
// of the inputs to float32 adds to that of the result.
inline constexpr double kFloat32VsIndependentTolerance = 1e-5;
// The host-blas backend (OpenBLAS) in float32 against the float64 reference: OpenBLAS sums in
// float32 (blocked, with FMA) where the reference sums in double and rounds once, over up to a
// few thousand terms in the tests; the same bound as the strict-float32 GPU paths.
inline constexpr double kHostBlasFloat32Tolerance = 1e-5;
// The same, judged per element against the sum of its terms' absolute values
// (testing::summation_error), which no cancellation can inflate. Worst measured over 100,000
// random problems of test_conv_blas (up to about 650 terms per sum), every pass and scratch
// budget: 3.4e-7, where the norm-relative error of the same runs reached 2.4e-5.
inline constexpr double kHostBlasFloat32SummationTolerance = 4e-6;
// Central differences in float64. The losses are linear (or piecewise linear away from kinks),
// so there is no truncation error and rounding leaves about 1e-9.
inline constexpr double kGradientTolerance = 1e-7;
// Step of the central differences for linear losses: larger steps only shrink the rounding
// error of f(x + eps) - f(x - eps). Losses with kinks (max pooling) use testing's default 1e-6.
inline constexpr double kFiniteDifferenceStep = 1e-3;

// A bfloat16/float16 op (computed in float32, rounded once) and its gradients against float64 on
// the same rounded inputs, relative to max(1, |value|): one rounding of the result (2^-9 and
// 2^-12 relative) with room for float32's arithmetic.
inline constexpr double kBfloat16VsFloat64Tolerance = 1e-2;
inline constexpr double kFloat16VsFloat64Tolerance = 1e-3;
// The one of those two for a 16-bit dtype.
inline double sixteen_bit_tolerance(DType dtype) {
    return dtype == DType::BFloat16 ? kBfloat16VsFloat64Tolerance : kFloat16VsFloat64Tolerance;
}

// ---- GPU kernels (tests/test_cuda_*.cpp) --------------------------------------------------
// A strict-float32 GPU kernel (FMA contraction allowed, no TF32) against the float64 reference:
// float32 sums over up to a few thousand terms, in another order.
inline constexpr double kCudaStrictFloat32Tolerance = 1e-5;
// float32 transcendental functions on the GPU against glibc's: an ulp or two apart.
inline constexpr double kCudaFloat32MathTolerance = 1e-5;
// TF32 tensor-core products: inputs rounded to 10 mantissa bits (2^-11 relative).
inline constexpr double kTf32Tolerance = 5e-3;
// cuDNN's float64 algorithms (FFT and Winograd among them) against the float64 reference.
inline constexpr double kCudnnFloat64Tolerance = 1e-11;
// float64 statistics reduced over many values in a fixed tree order (batch-norm variance and
// gradient sums) against the host's sequential sums.
inline constexpr double kCudaFloat64ReductionTolerance = 1e-11;

}  // namespace convkit::testing
