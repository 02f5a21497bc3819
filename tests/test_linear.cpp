// matmul and linear: the host reference against hand-computed values and an explicit
// transpose-then-multiply written here; the host-blas path against the reference (both per
// element against the sum of its terms' magnitudes; small integers bit for bit) into NaN-filled
// outputs; every gradient against central differences in float64 on both host backends; the
// shape errors, which name the op and the shapes.
#include <array>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "cuda/cublas_api.h"
#include "backend_api/backend_registry.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

using detail::GemmShape;
using testing::dot;
using testing::exactly_equal;
using testing::nan_tensor;
using testing::numeric_gradient;
using testing::pick;
using testing::random_tensor;
using testing::relative_error;

// ---- An independent definition: transpose explicitly, then the textbook triple loop ------------

Tensor transpose(const Tensor& m) {
    const std::int64_t rows = m.size(0), cols = m.size(1);
    const std::vector<double> v = m.to_vector();
    std::vector<double> t(v.size());
    for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j)
            t[static_cast<std::size_t>(j * rows + i)] = v[static_cast<std::size_t>(i * cols + j)];
    return Tensor::from_vector(Shape{cols, rows}, t);
}

// a [m, k] x b [k, n] (+ bias [n]), in double.
Tensor product(const Tensor& a, const Tensor& b, const Tensor& bias = Tensor()) {
    const std::int64_t m = a.size(0), k = a.size(1), n = b.size(1);
    const std::vector<double> va = a.to_vector(), vb = b.to_vector();
    const std::vector<double> vbias =
        bias.defined() ? bias.to_vector() : std::vector<double>(static_cast<std::size_t>(n));
    std::vector<double> c(static_cast<std::size_t>(m * n));
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
            double sum = vbias[static_cast<std::size_t>(j)];
            for (std::int64_t l = 0; l < k; ++l)
                sum += va[static_cast<std::size_t>(i * k + l)] * vb[static_cast<std::size_t>(l * n + j)];
            c[static_cast<std::size_t>(i * n + j)] = sum;
        }
    return Tensor::from_vector(Shape{m, n}, c);
}

// ---- Backend tables ----------------------------------------------------------------------------

struct GemmOperands {
    GemmShape shape;
    Tensor a, b, bias;  // float64, stored as the shape says; bias may be undefined
};

GemmOperands random_operands(std::mt19937_64& rng, bool transpose_a, bool transpose_b, bool with_bias,
                             std::int64_t m = 0, std::int64_t n = 0, std::int64_t k = 0) {
    GemmShape s{m > 0 ? m : pick(rng, 1, 40), n > 0 ? n : pick(rng, 1, 40), k > 0 ? k : pick(rng, 1, 300),
                transpose_a, transpose_b};
    GemmOperands o{s, random_tensor(transpose_a ? Shape{s.k, s.m} : Shape{s.m, s.k}, rng),
                   random_tensor(transpose_b ? Shape{s.n, s.k} : Shape{s.k, s.n}, rng), Tensor()};
    if (with_bias) o.bias = random_tensor(Shape{s.n}, rng);
    return o;
}

// The table's product into a NaN-filled [m, n].
Tensor run_gemm(const detail::GemmBackendOps& ops, const GemmOperands& o, DType dtype) {
    const Tensor a = o.a.to(dtype), b = o.b.to(dtype);
    const Tensor bias = o.bias.defined() ? o.bias.to(dtype) : Tensor();
    Tensor c = nan_tensor(Shape{o.shape.m, o.shape.n}, dtype);
    ops.gemm(o.shape, dtype, a.raw_data(), b.raw_data(), bias.defined() ? bias.raw_data() : nullptr, c.raw_data(),
             Stream{});
    return c;
}

std::string flags(const GemmShape& s, bool bias) {
    return std::string(s.transpose_a ? "A^T" : "A") + (s.transpose_b ? " B^T" : " B") + (bias ? " +bias" : "") +
           " m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k);
}

TEST(LinearReference, MatchesExplicitTransposeAndProduct) {
    CONVKIT_SEEDED_RNG(rng);
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (bool with_bias : {false, true}) {
                const GemmOperands o = random_operands(rng, ta, tb, with_bias);
                SCOPED_TRACE(flags(o.shape, with_bias));
                const Tensor expected = product(ta ? transpose(o.a) : o.a, tb ? transpose(o.b) : o.b, o.bias);
                // Per element against the sum of its terms' magnitudes (summation_error), as the
                // definition computes it on |a|, |b|, |bias|: with m = n = 1 the one element's k
                // random-signed terms may cancel to near zero, and rounding the inputs to float32
                // leaves it no relative accuracy (seed 15594517384077044175: m=1 n=1 k=113,
                // 1.4e-5 relative).
                const Tensor magnitudes =
                    product(ta ? transpose(abs(o.a)) : abs(o.a), tb ? transpose(abs(o.b)) : abs(o.b),
                            with_bias ? abs(o.bias) : Tensor());
                EXPECT_LT(testing::summation_error(run_gemm(detail::host_gemm_backend(), o, DType::Float64), expected,
                                                   magnitudes),
                          testing::kFloat64Tolerance);
                EXPECT_LT(testing::summation_error(run_gemm(detail::host_gemm_backend(), o, DType::Float32), expected,
                                                   magnitudes),
                          testing::kFloat32VsIndependentTolerance);
            }
}

TEST(LinearReference, KnownValues) {
    BackendGuard guard(Backend::Host);
    const Tensor a = Tensor::from_values(Shape{2, 3}, {1, 2, 3, 4, 5, 6}, DType::Float64);
    const Tensor b = Tensor::from_values(Shape{3, 2}, {7, 8, 9, 10, 11, 12}, DType::Float64);
    EXPECT_EQ(matmul(a, b).to_vector(), (std::vector<double>{58, 64, 139, 154}));
    // linear: weight [out = 2, in = 3] is b^T, bias [2].
    const Tensor w = Tensor::from_values(Shape{2, 3}, {7, 9, 11, 8, 10, 12}, DType::Float64);
    const Tensor bias = Tensor::from_values(Shape{2}, {0.5, -1}, DType::Float64);
    EXPECT_EQ(linear(a, w, bias).to_vector(), (std::vector<double>{58.5, 63, 139.5, 153}));
    EXPECT_EQ(linear_backward_bias(a).to_vector(), (std::vector<double>{5, 7, 9}));
}

#ifdef CONVKIT_WITH_OPENBLAS
// The same product on |a|, |b| and |bias|: each element is the sum of the absolute values of the
// terms behind that element of the signed product, the scale a summation's rounding error (and
// that of rounding the inputs to float32) is bounded by, however much the terms cancel.
Tensor term_magnitudes(const GemmOperands& o) {
    const GemmOperands magnitudes{o.shape, abs(o.a), abs(o.b), o.bias.defined() ? abs(o.bias) : Tensor()};
    return run_gemm(detail::host_gemm_backend(), magnitudes, DType::Float64);
}

// Random sizes, then sizes that make the product parallel, split by rows (m > n) and by
// columns (n > m), and one too small to split.
TEST(LinearBlas, EveryTransposeAndBiasMatchesTheReference) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<std::array<std::int64_t, 3>> sizes = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0},
                                                            {71, 50, 40}, {20, 93, 61}, {3, 4, 5}};
    for (const auto& [m, n, k] : sizes)
        for (bool ta : {false, true})
            for (bool tb : {false, true})
                for (bool with_bias : {false, true}) {
                    const GemmOperands o = random_operands(rng, ta, tb, with_bias, m, n, k);
                    SCOPED_TRACE(flags(o.shape, with_bias));
                    const Tensor reference = run_gemm(detail::host_gemm_backend(), o, DType::Float64);
                    // Judged per element against the sum of its terms' magnitudes (summation_error):
                    // a random problem may be one element (m = n = 1) whose k random-signed terms
                    // cancel to near zero, and OpenBLAS's float32 sums then have no relative accuracy
                    // left (seed 15252849413043825109: m=1 n=1 k=254, 1.5e-5 norm-relative).
                    const Tensor magnitudes = term_magnitudes(o);
                    EXPECT_LT(testing::summation_error(run_gemm(detail::host_blas_gemm_backend(), o, DType::Float64),
                                                       reference, magnitudes),
                              testing::kFloat64Tolerance);
                    EXPECT_LT(testing::summation_error(run_gemm(detail::host_blas_gemm_backend(), o, DType::Float32),
                                                       reference, magnitudes),
                              testing::kHostBlasFloat32SummationTolerance);
                }
}

TEST(LinearBlas, ExactOnSmallIntegers) {
    CONVKIT_SEEDED_RNG(rng);
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            GemmOperands o = random_operands(rng, ta, tb, true);
            o.a = testing::small_integer_tensor(o.a.shape(), rng());
            o.b = testing::small_integer_tensor(o.b.shape(), rng());
            o.bias = testing::small_integer_tensor(o.bias.shape(), rng());
            SCOPED_TRACE(flags(o.shape, true));
            const Tensor reference = run_gemm(detail::host_gemm_backend(), o, DType::Float64);
            for (DType dtype : {DType::Float64, DType::Float32}) {
                EXPECT_TRUE(exactly_equal(run_gemm(detail::host_blas_gemm_backend(), o, dtype), reference))
                    << dtype_name(dtype);
            }
        }
}
#endif

// ---- Public ops --------------------------------------------------------------------------------

// Runs `check` once per host backend this build has.
template <typename Check>
void for_each_host_backend(Check check) {
#ifdef CONVKIT_WITH_OPENBLAS
    for (Backend backend : {Backend::Host, Backend::HostBlas}) {
#else
    for (Backend backend : {Backend::Host}) {
#endif
        SCOPED_TRACE(backend_name(backend));
        BackendGuard guard(backend);
        check();
    }
}

// linear is matmul with the weight transposed plus the bias, and matmul's gradients are
// linear's with the roles of the operands exchanged: cross-checks of the transpose flags.
TEST(Linear, AgreesWithMatmulOfTheTransposedWeight) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{7, 13}, rng);
    const Tensor w = random_tensor(Shape{5, 13}, rng);
    const Tensor b = random_tensor(Shape{5}, rng);
    const Tensor dy = random_tensor(Shape{7, 5}, rng);
    for_each_host_backend([&] {
        EXPECT_LT(relative_error(linear(x, w, b), product(x, transpose(w), b)), testing::kFloat64Tolerance);
        EXPECT_LT(relative_error(linear(x, w), matmul(x, transpose(w))), testing::kFloat64Tolerance);
        EXPECT_LT(relative_error(matmul_backward_a(dy, transpose(w)), linear_backward_input(dy, w)),
                  testing::kFloat64Tolerance);
        EXPECT_LT(relative_error(matmul_backward_b(dy, x), transpose(linear_backward_weight(dy, x))),
                  testing::kFloat64Tolerance);
    });
}

// Central differences of the linear losses <op(...), r> in float64, for every operand.
TEST(Linear, GradientsMatchFiniteDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{6, 9}, rng);
    const Tensor w = random_tensor(Shape{4, 9}, rng);
    const Tensor b = random_tensor(Shape{4}, rng);
    const Tensor r = random_tensor(Shape{6, 4}, rng);
    const Tensor m = random_tensor(Shape{9, 4}, rng);  // matmul's b
    const double eps = testing::kFiniteDifferenceStep;
    for_each_host_backend([&] {
        const auto loss_x = [&](const Tensor& p) { return dot(linear(p, w, b), r); };
        const auto loss_w = [&](const Tensor& p) { return dot(linear(x, p, b), r); };
        const auto loss_b = [&](const Tensor& p) { return dot(linear(x, w, p), r); };
        EXPECT_LT(relative_error(linear_backward_input(r, w), numeric_gradient(loss_x, x, eps)),
                  testing::kGradientTolerance);
        EXPECT_LT(relative_error(linear_backward_weight(r, x), numeric_gradient(loss_w, w, eps)),
                  testing::kGradientTolerance);
        EXPECT_LT(relative_error(linear_backward_bias(r), numeric_gradient(loss_b, b, eps)),
                  testing::kGradientTolerance);
        const auto loss_a = [&](const Tensor& p) { return dot(matmul(p, m), r); };
        const auto loss_m = [&](const Tensor& p) { return dot(matmul(x, p), r); };
        EXPECT_LT(relative_error(matmul_backward_a(r, m), numeric_gradient(loss_a, x, eps)),
                  testing::kGradientTolerance);
        EXPECT_LT(relative_error(matmul_backward_b(r, x), numeric_gradient(loss_m, m, eps)),
                  testing::kGradientTolerance);
    });
}

// Autograd records matmul and linear: every input's gradient against central differences.
TEST(Linear, AutogradMatchesCentralDifferences) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{5, 7}, rng);
    const Tensor w = random_tensor(Shape{3, 7}, rng);
    const Tensor b = random_tensor(Shape{3}, rng);
    const Tensor m = random_tensor(Shape{7, 4}, rng);
    constexpr double kGradcheckTolerance = 1e-6;  // docs/autograd.md: float64, eps 1e-6
    for_each_host_backend([&] {
        EXPECT_LT(testing::gradcheck_error([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                                           {x, w, b}, rng()),
                  kGradcheckTolerance)
            << "linear";
        EXPECT_LT(testing::gradcheck_error([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, {x, w},
                                           rng()),
                  kGradcheckTolerance)
            << "linear without bias";
        EXPECT_LT(testing::gradcheck_error([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {x, m},
                                           rng()),
                  kGradcheckTolerance)
            << "matmul";
        // A chain: the second product's gradient flows through the first; x is a constant.
        EXPECT_LT(testing::gradcheck_error(
                      [](const std::vector<Tensor>& in) { return matmul(linear(in[0], in[1], in[2]), in[3]); },
                      {x, w, b, random_tensor(Shape{3, 2}, rng)}, rng(), {0}),
                  kGradcheckTolerance)
            << "linear then matmul";
    });
    // The graph names its ops; nothing is recorded with grad mode off.
    Tensor leaf_w = w.clone().set_requires_grad();
    const Tensor y = matmul(x, m.clone().set_requires_grad());
    EXPECT_EQ(y.grad_fn_name(), "matmul");
    EXPECT_EQ(linear(x, leaf_w, b).grad_fn_name(), "linear");
    {
        NoGradGuard no_grad;
        EXPECT_FALSE(linear(x, leaf_w, b).requires_grad());
    }
}

TEST(Linear, Float32ResultsAndTheirDtype) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = random_tensor(Shape{33, 257}, rng);
    const Tensor w = random_tensor(Shape{17, 257}, rng);
    const Tensor b = random_tensor(Shape{17}, rng);
    const Tensor expected = product(x, transpose(w), b);
    for_each_host_backend([&] {
        const Tensor y = linear(x.to(DType::Float32), w.to(DType::Float32), b.to(DType::Float32));
        EXPECT_EQ(y.dtype(), DType::Float32);
        EXPECT_LT(relative_error(y, expected), testing::kHostBlasFloat32Tolerance);
    });
}

// ---- cuBLAS, loaded on demand ------------------------------------------------------------------

bool cublas_is_mapped() { return testing::library_is_mapped("libcublas"); }

// A process that never multiplies CUDA tensors never loads cuBLAS (test_cuda_linear.cpp runs
// it); when loaded, every function convkit calls resolves. Needs no GPU.
TEST(CublasLoading, LoadedOnFirstUseWithEveryFunction) {
    if (cuda_is_emulated()) GTEST_SKIP() << "the emulated CUDA device build never loads cuBLAS";
    const bool mapped_before = cublas_is_mapped();
    if (!mapped_before) {
        (void)linear(Tensor::full(Shape{2, 3}, 1.0, DType::Float64), Tensor::full(Shape{4, 3}, 2.0, DType::Float64));
        EXPECT_FALSE(cublas_is_mapped()) << "a host matrix product loaded cuBLAS";
    }
    const detail::CublasApi& api = detail::cublas_api();
    EXPECT_TRUE(cublas_is_mapped());
    EXPECT_NE(api.create, nullptr);
    EXPECT_NE(api.set_stream, nullptr);
    EXPECT_NE(api.set_math_mode, nullptr);
    EXPECT_NE(api.sgemm, nullptr);
    EXPECT_NE(api.dgemm, nullptr);
    EXPECT_STREQ(api.status_name(CUBLAS_STATUS_NOT_INITIALIZED), "CUBLAS_STATUS_NOT_INITIALIZED");
    EXPECT_NE(api.status_string(CUBLAS_STATUS_ALLOC_FAILED), nullptr);
}

// ---- Errors ------------------------------------------------------------------------------------

template <typename F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const InvalidArgument& e) {
        return e.what();
    }
    return "no InvalidArgument";
}

TEST(LinearErrors, NameTheOpAndTheShapes) {
    const auto t = [](Shape s, DType dtype = DType::Float32) { return Tensor::zeros(s, dtype); };
    EXPECT_EQ(message_of([&] { matmul(t({2, 3}), t({4, 5})); }),
              "matmul: a [M, K] is [2, 3] and b [K, N] is [4, 5]: K differs (3 vs 4)");
    EXPECT_EQ(message_of([&] { matmul(t({2, 3, 1}), t({3, 5})); }),
              "matmul: a must be a matrix [M, K], got shape [2, 3, 1]");
    EXPECT_EQ(message_of([&] { matmul(t({2, 0}), t({0, 5})); }),
              "matmul: a [M, K] must have every size at least 1, got [2, 0]");
    EXPECT_EQ(message_of([&] { matmul(t({2, 3}), t({3, 5}, DType::Float64)); }),
              "matmul: b is float64 but a is float32");
    EXPECT_EQ(message_of([&] { linear(t({8, 3}), t({4, 5})); }),
              "linear: input [N, in] is [8, 3] and weight [out, in] is [4, 5]: in differs (3 vs 5)");
    EXPECT_EQ(message_of([&] { linear(t({8, 5}), t({4, 5}), t({5})); }),
              "linear: bias must have shape [out] = [4] (weight is [4, 5]), got [5]");
    EXPECT_EQ(message_of([&] { linear_backward_input(t({8, 3}), t({4, 5})); }),
              "linear_backward_input: grad_output [N, out] is [8, 3] and weight [out, in] is [4, 5]: out differs (3 vs "
              "4)");
    EXPECT_EQ(message_of([&] { linear_backward_weight(t({8, 4}), t({7, 5})); }),
              "linear_backward_weight: grad_output [N, out] is [8, 4] and input [N, in] is [7, 5]: N differs (8 vs 7)");
    EXPECT_EQ(message_of([&] { linear_backward_bias(t({8})); }),
              "linear_backward_bias: grad_output must be a matrix [N, out], got shape [8]");
    EXPECT_EQ(message_of([&] { matmul_backward_a(t({2, 5}), t({3, 4})); }),
              "matmul_backward_a: grad_output [M, N] is [2, 5] and b [K, N] is [3, 4]: N differs (5 vs 4)");
    EXPECT_EQ(message_of([&] { matmul_backward_b(t({2, 5}), t({3, 4})); }),
              "matmul_backward_b: grad_output [M, N] is [2, 5] and a [M, K] is [3, 4]: M differs (2 vs 3)");
    EXPECT_EQ(message_of([&] { matmul(t({2, 3}, DType::Int64), t({3, 5}, DType::Int64)); }),
              "matmul: a must be float32 or float64, got int64");
}

}  // namespace
}  // namespace convkit
