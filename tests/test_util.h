#pragma once
// Helpers shared by the test suites: fresh seeds (printed on failure), relative error, NaN
// poisoning, and finite-difference gradients in float64.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "convkit/convkit.h"

namespace convkit::testing {

// A fresh seed per call, so every run tests new inputs; CONVKIT_TEST_SEED=<n> replays a run.
std::uint64_t fresh_seed();

// Puts "seed=<n> (replay with CONVKIT_TEST_SEED=<n>)" on every failure in the scope.
#define CONVKIT_SEED_TRACE(seed) \
    SCOPED_TRACE(::testing::Message() << "seed=" << (seed) << " (replay with CONVKIT_TEST_SEED=" << (seed) << ")")

// Declares `rng`, a generator freshly seeded for this test, whose seed is printed on failure.
#define CONVKIT_SEEDED_RNG(rng)                                          \
    const std::uint64_t rng##_seed = ::convkit::testing::fresh_seed(); \
    CONVKIT_SEED_TRACE(rng##_seed);                                    \
    std::mt19937_64 rng(rng##_seed)

// A fixture (over ::testing::Test or ::testing::TestWithParam<P>) whose tests skip, saying why,
// where no CUDA device is usable: the gpu-labelled suites derive from it.
template <typename Base = ::testing::Test>
class WithCuda : public Base {
protected:
    void SetUp() override {
        if (!cuda_is_available()) GTEST_SKIP() << "needs a CUDA device: " << cuda_unavailable_reason();
    }
};

// Skips a test, saying why, on the emulated CUDA device (docs/testing.md): for sizes a GPU handles
// in seconds and the emulator could not (tensors past 2^31 elements), and for NVIDIA's libraries.
#define CONVKIT_SKIP_ON_EMULATED_DEVICE(why)   \
    if (!::convkit::cuda_is_emulated()) {      \
    } else                                     \
        GTEST_SKIP() << "left to a real GPU: " << (why)

// Sets the thread's math mode (MathMode::AllowTF32, ...) for a scope and restores it after.
class MathModeGuard {
public:
    explicit MathModeGuard(MathMode mode) : previous_(default_math_mode()) { set_default_math_mode(mode); }
    ~MathModeGuard() { set_default_math_mode(previous_); }
    MathModeGuard(const MathModeGuard&) = delete;
    MathModeGuard& operator=(const MathModeGuard&) = delete;

private:
    MathMode previous_;
};

// A size in a kernel test: `gpu` on a GPU, `emulated` on the emulated CUDA device, whose
// grid-stride launches wrap at 64 blocks (kernels/launch.cuh), so the smaller size takes the same
// paths (more rows or channels than blocks in a grid) at an emulator's speed.
inline std::int64_t gpu_or_emulated(std::int64_t gpu, std::int64_t emulated) {
    return cuda_is_emulated() ? emulated : gpu;
}

// Makes host tensors run on the reference (Backend::Host) for the whole executable, whatever the
// default host backend (host-blas) or CONVKIT_HOST_BACKEND says: for suites whose host results
// are the oracle. Register once per executable, at namespace scope:
//   const auto* const pinned = ::testing::AddGlobalTestEnvironment(new testing::PinHostReference);
class PinHostReference : public ::testing::Environment {
public:
    void SetUp() override { set_default_host_backend(Backend::Host); }
};

// ||a - b|| / ||b|| over all elements (in double); ||a - b|| when b is all zeros. Tensors on any
// device; shapes must match. A NaN anywhere makes the result NaN, so a comparison `< tol` fails.
double relative_error(const Tensor& a, const Tensor& b);

// Largest |a_i - b_i|; NaN if any element is NaN.
double max_abs_difference(const Tensor& a, const Tensor& b);

// Largest |got_i - expected_i| / magnitude_i, where magnitude_i is the sum (or mean) of the
// absolute values of the terms behind element i: the error a backward-stable summation bounds,
// whatever the cancellation. relative_error cannot judge sums: random terms whose sum lands near
// zero leave the result no relative accuracy in any summation order. Absolute where magnitude_i
// is 0; NaN if any element is NaN.
double summation_error(const Tensor& got, const Tensor& expected, const Tensor& magnitudes);

// Sum of a_i * b_i in double.
double dot(const Tensor& a, const Tensor& b);

// True if a shared library whose file name contains `name` ("libcublas", "libcudnn.so") is
// mapped into this process (/proc/self/maps): for the tests of what is loaded on first use.
bool library_is_mapped(const std::string& name);

// True if every element equals exactly (bit-for-bit comparison of values, NaN != NaN).
bool exactly_equal(const Tensor& a, const Tensor& b);

// A tensor of NaN: outputs are poisoned with it before a kernel runs so unwritten elements fail.
Tensor nan_tensor(const Shape& shape, DType dtype = DType::Float32, Device device = Device::host());

// A CUDA buffer of `values` (flat, in their dtype) placed `offset` elements past an aligned
// allocation, the elements before it NaN: with offset 1 no 16-byte pack is aligned, so the
// kernels that move packs take their one-element path, and a write before the start shows.
struct OffsetBuffer {
    Tensor storage;
    std::int64_t offset;

    OffsetBuffer(const Tensor& values, std::int64_t offset_elements);
    void* data() const { return static_cast<char*>(storage.raw_data()) + offset * dtype_size(storage.dtype()); }
    // The elements after the offset, and whether those before it are still NaN.
    Tensor values(const Shape& shape) const;
    // The stored bytes of the elements after the offset (a NaN's payload included).
    std::vector<unsigned char> bytes() const;
};

// Small integers in [-range, range]: products and sums of them are exact in float32 and float64,
// so results can be compared bit for bit.
Tensor small_integer_tensor(const Shape& shape, std::uint64_t seed, int range = 3, DType dtype = DType::Float64);

// Runs op(x, w, b) on float64 inputs and again on their float32 copies, and expects both
// results to equal `expected` bit for bit: for small-integer data, where all arithmetic is exact.
template <typename Op>
void expect_exact_in_both_dtypes(Op op, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& expected);

// Central-difference gradient of the scalar function f at x (float64 host tensor), one element
// at a time: (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).
Tensor numeric_gradient(const std::function<double(const Tensor&)>& f, const Tensor& x, double eps = 1e-6);

// The worst relative error, over `inputs` (float64 host tensors), between the gradients autograd
// computes for f and central differences. f's output is contracted with a fixed random tensor,
// so every output element and every input element is checked. Inputs listed in `constants` get
// no gradient (e.g. integer targets, or inputs at a kink).
double gradcheck_error(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                       std::uint64_t seed, const std::vector<std::size_t>& constants = {});

// Every BatchNorm below `model` given random running statistics and affine parameters (a fresh
// layer's are the identity map, which would make folding or normalising trivial to get right).
void randomize_batch_norms(nn::Module& model, std::uint64_t seed);

// gradcheck_error for a module: the worst error over its input and every parameter between
// autograd and central differences (float64 module and input), for the output contracted with a
// fixed random tensor. Where a true gradient is zero (a conv bias before a training-mode
// BatchNorm) the absolute error counts instead of the relative one. Entries whose difference step
// crossed a ReLU's kink (the differences at the step and at half of it disagree) are left out, up
// to 1 + 1 in 200 of them; past that the input sits by a kink every entry reaches, and the check
// moves to a randomly shifted input (up to 3 times; 1 if none gives a verdict).
double module_gradcheck_error(nn::Module& module, const Tensor& input, std::uint64_t seed);

// `text` with every character GoogleTest does not accept in a parameter name ([A-Za-z0-9_])
// replaced by '_'.
std::string test_name(std::string text);

// "7x6": spatial sizes for names and traces.
std::string dims_text(const std::vector<std::int64_t>& dims);

// [n, c, spatial...].
Shape image_shape(std::int64_t n, std::int64_t c, const std::vector<std::int64_t>& spatial);

// Uniform in [-1, 1), float64, seeded from the test's generator.
Tensor random_tensor(const Shape& shape, std::mt19937_64& rng);
// random_tensor rounded to `dtype` and back: float64 values that `dtype` holds exactly, so a run
// in `dtype` sees the same inputs as a float64 reference.
Tensor random_exact_in(DType dtype, const Shape& shape, std::mt19937_64& rng);

// t converted to float32; an undefined tensor (no bias) stays undefined.
Tensor to_float32(const Tensor& t);

// Euclidean norm over all elements.
double norm(const Tensor& t);

// |<u1, v1> - <u2, v2>| relative to the larger of ||u1|| ||v1|| and ||u2|| ||v2||: the natural
// size of an inner product by Cauchy-Schwarz, which unlike |<u, v>| is not near zero by chance.
// Absolute when both are zero (a problem whose every tap reads zero padding), as relative_error.
double inner_product_mismatch(const Tensor& u1, const Tensor& v1, const Tensor& u2, const Tensor& v2);

// Uniform integer in [low, high] from a test's generator.
inline std::int64_t pick(std::mt19937_64& rng, std::int64_t low, std::int64_t high) {
    return std::uniform_int_distribution<std::int64_t>(low, high)(rng);
}

template <typename Op>
void expect_exact_in_both_dtypes(Op op, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& expected) {
    const Tensor y64 = op(x, w, b);
    EXPECT_TRUE(exactly_equal(y64, expected)) << "float64, max difference " << max_abs_difference(y64, expected);
    const Tensor y32 = op(to_float32(x), to_float32(w), to_float32(b));
    ASSERT_EQ(y32.dtype(), DType::Float32);
    EXPECT_TRUE(exactly_equal(y32, expected)) << "float32, max difference " << max_abs_difference(y32, expected);
}

}  // namespace convkit::testing
