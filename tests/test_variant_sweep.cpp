// Every registered variant that can run here × the kernel sweeps (tests/kernel_sweeps.h) ×
// float32/float64 (and bfloat16/float16 over the tensor-core sweep) × contiguous/channels-last
// activations, each pass run directly through the
// variant and compared with the host reference computed in float64 (contiguous). A variant
// that does not support a problem records its reason (NotSupported is a result, not a quiet
// skip): the contiguous-only variants record it for every channels-last problem.
//
// Built twice: the host variants (this file as is, label host) and the CUDA variants
// (CONVKIT_SWEEP_CUDA, label gpu, skipped where no CUDA device is usable).
#include <gtest/gtest.h>

#include <iostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernel_sweeps.h"
#include "test_util.h"
#include "tolerances.h"
#include "variant_runner.h"

namespace convkit {
void PrintTo(DType dtype, std::ostream* os) { *os << dtype_name(dtype); }
void PrintTo(MemoryFormat format, std::ostream* os) { *os << memory_format_name(format); }

namespace {

#ifdef CONVKIT_SWEEP_CUDA
constexpr DeviceType kSweepDevice = DeviceType::CUDA;
template <typename P>
using SweepFixture = testing::WithCuda<::testing::TestWithParam<P>>;
Device sweep_device() { return Device::cuda(); }
#else
constexpr DeviceType kSweepDevice = DeviceType::Host;
template <typename P>
using SweepFixture = ::testing::TestWithParam<P>;
Device sweep_device() { return Device::host(); }
#endif

// The variants of this executable's device kind, by name (the registry is filled when the
// library loads, before the test's own initialisers run). cuda.igemm.unsplit is left out: it is
// cuda.igemm with split-K off, the same arithmetic wherever the default does not split (every
// sweep shape but one), and test_cuda_tensor_core_ops.cpp runs it on a problem that splits.
std::vector<std::string> conv_variant_names() {
    std::vector<std::string> names;
    for (const detail::ConvVariant* v : detail::conv_variants()) {
        if (v->device_type() == kSweepDevice && std::string(v->name()) != "cuda.igemm.unsplit") {
            names.emplace_back(v->name());
        }
    }
    return names;
}

std::vector<std::string> pool_variant_names() {
    std::vector<std::string> names;
    for (const detail::PoolVariant* v : detail::pool_variants()) {
        if (v->device_type() == kSweepDevice) names.emplace_back(v->name());
    }
    return names;
}

// Per element, relative to the sum of its terms' magnitudes (convolution passes) or to the
// reference's norm (pooling, on small integers): float64 sums in another order; float32 sums over
// up to a few thousand terms; 16-bit operands with float32 accumulation and one rounding of the
// result.
double tolerance(DType dtype) {
    switch (dtype) {
        case DType::Float64: return testing::kFloat64Tolerance;
        case DType::BFloat16: return testing::kBfloat16VsFloat64Tolerance;
        case DType::Float16: return testing::kFloat16VsFloat64Tolerance;
        default: return testing::kHostBlasFloat32Tolerance;
    }
}


std::string test_name_of(const std::string& variant, const std::string& problem, DType dtype, MemoryFormat layout,
                         std::size_t index) {
    const std::string format = layout == MemoryFormat::ChannelsLast ? "_channels_last" : "";
    return testing::test_name(variant + "_" + dtype_name(dtype) + format + "_" + problem) + "_" + std::to_string(index);
}

// Records each pass of the problem that the variant implements but refuses (test property and
// output), as a result of its own, not skipped quietly; returns how many it implements and how
// many of those it refuses. The passes it does not implement are left out of the comparison.
struct Refusals {
    int implemented = 0, refused = 0;
};
template <typename Variant, typename Problem, typename Pass, std::size_t N>
Refusals record_refusals(const Variant& variant, const Problem& problem, const Pass (&passes)[N],
                         const char* (*pass_name)(Pass)) {
    Refusals r;
    for (Pass pass : passes) {
        if (!variant.implements(pass)) continue;
        ++r.implemented;
        std::string reason;
        if (!variant.supports(problem, pass, &reason)) {
            ++r.refused;
            ::testing::Test::RecordProperty(std::string("not_supported_") + pass_name(pass), reason);
            std::cout << "[ NOT SUPPORTED ] " << variant.name() << " " << pass_name(pass) << ": " << reason << "\n";
        }
    }
    return r;
}

// ---- convolution ----------------------------------------------------------------------------

using ConvSweepParam = std::tuple<std::string, testing::ConvCase, DType, MemoryFormat>;

class ConvVariantSweep : public SweepFixture<ConvSweepParam> {};

// Every pass the variant implements of the case against the host reference in float64, with
// the thread's math mode (which the problem records).
void expect_every_pass_matches(const ConvSweepParam& param, double tol) {
    const auto& [name, c, dtype, layout] = param;
    const detail::ConvVariant& variant = testing::conv_variant_named(name);
    const std::string op = conv_op_name(c.params.spatial_rank, c.transposed);
    const detail::ConvGeometry g = c.transposed ? detail::conv_transpose_geometry(op, c.input, c.weight, c.params)
                                                : detail::conv_geometry(op, c.input, c.weight, c.params);
    detail::ConvProblem problem = detail::conv_problem(g, dtype, sweep_device());
    problem.x_layout = problem.y_layout = layout;
    problem.bias_grad = {g.batch, g.out_channels, g.output_spatial()};
    // The passes it runs are compared (cuda.wgmma refuses float32's backward-filter alone).
    const Refusals refusals = record_refusals(variant, problem, kConvPasses, conv_pass_name);
    if (refusals.refused == refusals.implemented) return;
    CONVKIT_SEEDED_RNG(rng);
    // float64 runs on float32-exact values, like the float32 ones.
    const testing::ConvPassInputs in =
        testing::random_pass_inputs(g, dtype == DType::Float64 ? DType::Float32 : dtype, rng);
    const testing::ConvPassResults expected =
        testing::run_conv_passes(testing::conv_variant_named("host.reference"), g, in, DType::Float64);
    const testing::ConvPassResults got =
        testing::run_conv_passes(variant, g, in, dtype, sweep_device(), layout, /*only_supported=*/true);
    // The passes it implements, each element against the sum of its terms' magnitudes: a sweep
    // shape with two output channels has a bias gradient of two sums, whose random terms both
    // cancel to near zero often enough that float32's rounding left no relative accuracy by the
    // norm (seed 5587772164761748097: cuda.im2col, the 2-channel replicate conv2d, 6.2e-5).
    testing::expect_conv_passes_close(got, expected, testing::conv_pass_magnitudes(g, in), tol);
}

TEST_P(ConvVariantSweep, EveryPassMatchesTheFloat64Reference) {
    expect_every_pass_matches(GetParam(), tolerance(std::get<2>(GetParam())));
}

// Float32 under MathMode::AllowTF32, where the tensor-core variant runs it on tf32 (operands
// rounded to 11 significant bits): the same comparison at the tf32 tolerance.
class Tf32ConvVariantSweep : public SweepFixture<ConvSweepParam> {};

TEST_P(Tf32ConvVariantSweep, EveryPassMatchesTheFloat64Reference) {
    const testing::MathModeGuard tf32(MathMode::AllowTF32);
    expect_every_pass_matches(GetParam(), testing::kTf32Tolerance);
}
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Tf32ConvVariantSweep);  // no tensor-core variant on the host

// The tensor-core variants (cuda.igemm and its forced tiles, cuda.wgmma and its producer ring): the only ones of
// convkit's own whose arithmetic the math mode changes (cuDNN's TF32 is test_cuda_cudnn.cpp's).
std::vector<std::string> tensor_core_variant_names() {
    std::vector<std::string> names;
    for (const std::string& name : conv_variant_names()) {
        if (name.rfind("cuda.igemm", 0) == 0 || name.rfind("cuda.wgmma", 0) == 0) names.push_back(name);
    }
    return names;
}

std::string conv_sweep_name(const ::testing::TestParamInfo<ConvSweepParam>& info) {
    return test_name_of(std::get<0>(info.param), std::get<1>(info.param).name(), std::get<2>(info.param),
                        std::get<3>(info.param), info.index);
}

INSTANTIATE_TEST_SUITE_P(Variants, ConvVariantSweep,
                         ::testing::Combine(::testing::ValuesIn(conv_variant_names()),
                                            ::testing::ValuesIn(testing::conv_sweep()),
                                            ::testing::Values(DType::Float32, DType::Float64),
                                            ::testing::Values(MemoryFormat::Contiguous, MemoryFormat::ChannelsLast)),
                         conv_sweep_name);

// The 16-bit problems, which only the tensor-core variant computes (every other variant records
// its refusal), over shapes it runs.
INSTANTIATE_TEST_SUITE_P(SixteenBit, ConvVariantSweep,
                         ::testing::Combine(::testing::ValuesIn(conv_variant_names()),
                                            ::testing::ValuesIn(testing::tensor_core_conv_sweep()),
                                            ::testing::Values(DType::BFloat16, DType::Float16),
                                            ::testing::Values(MemoryFormat::Contiguous, MemoryFormat::ChannelsLast)),
                         conv_sweep_name);

// The depthwise variant (cuda.depthwise; none on the host) over the depthwise shapes in every
// floating dtype and both layouts: channels-last runs 16-bit dtypes in every pass and float32 and
// float64 forward and backward-data, recording its refusal of their weight and bias gradients;
// contiguous runs float32 and float64 and records its refusal of 16-bit ones.
std::vector<std::string> depthwise_variant_names() {
    std::vector<std::string> names;
    for (const std::string& name : conv_variant_names()) {
        if (name.find("depthwise") != std::string::npos) names.push_back(name);
    }
    return names;
}
INSTANTIATE_TEST_SUITE_P(Depthwise, ConvVariantSweep,
                         ::testing::Combine(::testing::ValuesIn(depthwise_variant_names()),
                                            ::testing::ValuesIn(testing::depthwise_conv_sweep()),
                                            ::testing::Values(DType::BFloat16, DType::Float16, DType::Float32,
                                                              DType::Float64),
                                            ::testing::Values(MemoryFormat::Contiguous, MemoryFormat::ChannelsLast)),
                         conv_sweep_name);

// Float32 as tf32 over the tensor-core shapes (channels-last runs; contiguous records the
// refusal), and over the shapes whose channels per group are a multiple of 4 but not of 8,
// which only tf32 runs.
INSTANTIATE_TEST_SUITE_P(Tf32, Tf32ConvVariantSweep,
                         ::testing::Combine(::testing::ValuesIn(tensor_core_variant_names()),
                                            ::testing::ValuesIn(testing::tf32_conv_sweep()),
                                            ::testing::Values(DType::Float32),
                                            ::testing::Values(MemoryFormat::Contiguous, MemoryFormat::ChannelsLast)),
                         conv_sweep_name);

// ---- pooling ----------------------------------------------------------------------------------

// One pooling problem of the sweep: max or average over a PoolCase, or adaptive average to
// about half the input size.
struct PoolSweepCase {
    detail::PoolOp op;
    testing::PoolCase c;
    std::string name() const {
        const char* kind = op == detail::PoolOp::Max ? "max" : op == detail::PoolOp::Average ? "avg" : "adaptive";
        return std::string(kind) + "_" + c.name();
    }
    detail::PoolGeometry geometry() const {
        if (op == detail::PoolOp::AdaptiveAverage) {
            std::vector<std::int64_t> out;
            for (int d = 2; d < c.input.rank(); ++d) out.push_back(c.input[d] / 2 + 1);
            return detail::adaptive_pool_geometry("adaptive_avg_pool", c.input, out);
        }
        const PoolKind kind = op == detail::PoolOp::Max ? PoolKind::Max : PoolKind::Average;
        return detail::pool_geometry(pool_op_name(c.params.spatial_rank, kind), c.input, c.params, kind);
    }
};

// Every sweep case as max, average (where an average pool takes its parameters) and adaptive.
std::vector<PoolSweepCase> pool_cases() {
    std::vector<PoolSweepCase> cases;
    for (const testing::PoolCase& c : testing::pool_sweep()) {
        for (detail::PoolOp op : {detail::PoolOp::Max, detail::PoolOp::Average, detail::PoolOp::AdaptiveAverage}) {
            try {
                PoolSweepCase s{op, c};
                s.geometry();
                cases.push_back(s);
            } catch (const InvalidArgument&) {
                // average pooling has no dilation: not a problem of this op
            }
        }
    }
    return cases;
}

void PrintTo(const PoolSweepCase& c, std::ostream* os) { *os << c.name(); }

using PoolSweepParam = std::tuple<std::string, PoolSweepCase, DType, MemoryFormat>;

class PoolVariantSweep : public SweepFixture<PoolSweepParam> {};

// The forward and backward of a pooling variant, into NaN-filled outputs brought to the host
// (contiguous), every operand in the problem's layout.
std::pair<Tensor, Tensor> run_pool_passes(const detail::PoolVariant& variant, const detail::PoolProblem& problem,
                                          const Tensor& x64, const Tensor& dy64, DType dtype, Device device) {
    const auto on = [&](const Tensor& t) { return t.to(dtype).to(device).to(problem.x_layout); };
    const Tensor x = on(x64), dy = on(dy64);
    Tensor y = testing::nan_tensor(dy64.shape(), dtype, device).to(problem.x_layout);
    Tensor dx = testing::nan_tensor(x64.shape(), dtype, device).to(problem.x_layout);
    const Stream stream = testing::stream_for(device);
    const auto buffer = [](const Tensor& t) { return t.raw_physical_data(); };
    variant.run(problem, PoolPass::Forward, {.x = buffer(x), .out = buffer(y)}, {}, stream);
    variant.run(problem, PoolPass::Backward, {.x = buffer(x), .dy = buffer(dy), .out = buffer(dx)}, {}, stream);
    return {y.to(Device::host()).contiguous(), dx.to(Device::host()).contiguous()};
}

TEST_P(PoolVariantSweep, ForwardAndBackwardMatchTheFloat64Reference) {
    const auto& [name, s, dtype, layout] = GetParam();
    const detail::PoolVariant& variant = *detail::find_pool_variant(name);
    const detail::PoolGeometry g = s.geometry();
    detail::PoolProblem problem = detail::pool_problem(g, s.op, dtype, sweep_device());
    problem.x_layout = problem.y_layout = layout;
    if (record_refusals(variant, problem, kPoolPasses, pool_pass_name).refused > 0) return;
    CONVKIT_SEEDED_RNG(rng);
    // Small integers: no ties broken differently by rounding, exact sums in both dtypes.
    const Tensor x = testing::small_integer_tensor(s.c.input, rng(), 50, DType::Float64);
    const Tensor dy = testing::small_integer_tensor(g.output_shape(), rng(), 3, DType::Float64);
    const detail::PoolProblem reference_problem = detail::pool_problem(g, s.op, DType::Float64, Device::host());
    const auto [y_ref, dx_ref] = run_pool_passes(*detail::find_pool_variant("host.reference"), reference_problem, x,
                                                 dy, DType::Float64, Device::host());
    const auto [y, dx] = run_pool_passes(variant, problem, x, dy, dtype, sweep_device());
    const double tol = tolerance(dtype);
    EXPECT_LT(testing::relative_error(y, y_ref), tol) << "forward";
    EXPECT_LT(testing::relative_error(dx, dx_ref), tol) << "backward";
}

INSTANTIATE_TEST_SUITE_P(Variants, PoolVariantSweep,
                         ::testing::Combine(::testing::ValuesIn(pool_variant_names()),
                                            ::testing::ValuesIn(pool_cases()),
                                            ::testing::Values(DType::Float32, DType::Float64),
                                            ::testing::Values(MemoryFormat::Contiguous, MemoryFormat::ChannelsLast)),
                         [](const ::testing::TestParamInfo<PoolSweepParam>& info) {
                             return test_name_of(std::get<0>(info.param), std::get<1>(info.param).name(),
                                                 std::get<2>(info.param), std::get<3>(info.param), info.index);
                         });

}  // namespace
}  // namespace convkit
