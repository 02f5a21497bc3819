#pragma once
// The layer ops (softmax, the losses, batch norm, convolution, pooling, matmul/linear, dropout,
// and public backward passes) on bfloat16/float16 inputs against float64 on the same rounded
// inputs, input gradients included: one list of cases for the host (test_dtype_support) and the
// device (test_cuda), so both run the same checks.
#include "convkit/tensor.h"
#include "tolerances.h"  // sixteen_bit_tolerance

namespace convkit::testing {

// Uniform values in [low, high) drawn in float32 and rounded to `dtype`: inputs that float64
// represents exactly, so a 16-bit op and its float64 reference see the same numbers.
Tensor rounded_uniform(const Shape& shape, std::uint64_t seed, DType dtype, double low = -1.0, double high = 1.0);

// |got - want| <= tol * max(1, |want|), element by element.
void expect_close_to_float64(const Tensor& got, const Tensor& want, double tol);

// Runs every case in bfloat16 and float16 on `device`: each result (and each gradient of a
// floating input, which must arrive in the input's dtype) is float32's rounded once, so within
// sixteen_bit_tolerance of float64 computed on the host. A 16-bit op run in 16-bit arithmetic,
// or rounding twice, misses float16's 1e-3 (a few of its ulps).
void expect_sixteen_bit_layer_ops_match_float64(Device device);

}  // namespace convkit::testing
