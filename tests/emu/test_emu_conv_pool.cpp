// The convolution and pooling kernels (kernels/conv_direct.cu, kernels/pool_max.cu and
// pool_mean.cu) executed on the CPU by the emulator, through their own launchers on host memory,
// against the host reference: float64 to 1e-12, float32 to 1e-5, every output poisoned with NaN
// first, on the GPU suites' own sweeps (kernel_sweeps.h): ranks 1-3, stride, dilation, groups and
// depthwise, every padding mode, 'same', transposed with output_padding, ceil mode.
#include "emu_test_support.h"
#include "kernel_sweeps.h"
#include "kernels/conv_direct.h"
#include "kernels/pool.h"

namespace convkit {
namespace {

// The host results every suite of test_emu compares with come from the reference.
const auto* const pinned = ::testing::AddGlobalTestEnvironment(new testing::PinHostReference);

using testing::ConvCase;
using testing::PoolCase;

// The GPU suite's sweep (kernel_sweeps.h) but the case built to overflow one grid of
// backward-filter blocks (76,800 weights, each a block of 256 fibers here: minutes on the CPU);
// that loop's second trip stays for the GPU.
std::vector<ConvCase> affordable_conv_sweep() {
    std::vector<ConvCase> cases;
    for (const ConvCase& c : testing::conv_sweep())
        if (c.weight.numel() <= 4096) cases.push_back(c);
    return cases;
}

class EmuConv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(EmuConv, EveryPassMatchesTheHostReference) {
    const ConvCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    const std::string op = conv_op_name(c.params.spatial_rank, c.transposed);
    const detail::ConvGeometry g = c.transposed ? detail::conv_transpose_geometry(op, c.input, c.weight, c.params)
                                                : detail::conv_geometry(op, c.input, c.weight, c.params);
    const Tensor x = testing::random_tensor(g.input_shape(), rng);
    const Tensor w = testing::random_tensor(c.weight, rng);
    const Tensor dy = testing::random_tensor(g.output_shape(), rng);
    const Tensor bias_out = testing::random_tensor(Shape{g.out_channels}, rng);
    const Tensor bias_in = testing::random_tensor(Shape{g.in_channels}, rng);
    const Tensor ref_forward = c.transposed ? conv_transpose_backward_data(x, w, dy.shape(), c.params)
                                            : conv_forward(x, w, bias_out, c.params);
    const Tensor ref_data = c.transposed ? conv_transpose_forward(dy, w, bias_in, c.params)
                                         : conv_backward_data(dy, w, x.shape(), c.params);
    const Tensor ref_filter = c.transposed ? conv_transpose_backward_filter(x, dy, c.weight, c.params)
                                           : conv_backward_filter(dy, x, c.weight, c.params);
    const Tensor ref_bias = conv_backward_bias(dy);
    for (DType dtype : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor xd = x.to(dtype), wd = w.to(dtype), dyd = dy.to(dtype);
        const Tensor bout = bias_out.to(dtype), bin = bias_in.to(dtype);
        testing::expect_kernel_output(ref_forward, dtype, "forward", [&](void* out) {
            kernels::conv_forward_direct(g, dtype, xd.raw_data(), wd.raw_data(),
                                         c.transposed ? nullptr : bout.raw_data(), out, testing::kEmuStream);
        });
        testing::expect_kernel_output(ref_data, dtype, "backward data", [&](void* out) {
            kernels::conv_backward_data_direct(g, dtype, dyd.raw_data(), wd.raw_data(),
                                               c.transposed ? bin.raw_data() : nullptr, out, testing::kEmuStream);
        });
        testing::expect_kernel_output(ref_filter, dtype, "backward filter", [&](void* out) {
            kernels::conv_backward_filter_direct(g, dtype, dyd.raw_data(), xd.raw_data(), out, testing::kEmuStream);
        });
        testing::expect_kernel_output(ref_bias, dtype, "bias gradient", [&](void* out) {
            kernels::conv_backward_bias(g.batch, g.out_channels, g.output_spatial(), dtype, dyd.raw_data(), out,
                                        testing::kEmuStream);
        });
    }
}

INSTANTIATE_TEST_SUITE_P(Sweep, EmuConv, ::testing::ValuesIn(affordable_conv_sweep()), testing::conv_case_name);

class EmuPool : public ::testing::TestWithParam<PoolCase> {};

TEST_P(EmuPool, MaxAndAverageMatchTheHostReference) {
    const PoolCase& c = GetParam();
    CONVKIT_SEEDED_RNG(rng);
    // Rounded to float32 first, so that both dtypes see the same values and the same argmax.
    const Tensor x = testing::random_tensor(c.input, rng).to(DType::Float32).to(DType::Float64);
    for (PoolKind kind : {PoolKind::Max, PoolKind::Average}) {
        if (kind == PoolKind::Average && c.params.dilation != SpatialDims{1, 1, 1}) continue;
        const bool is_max = kind == PoolKind::Max;
        SCOPED_TRACE(is_max ? "max" : "average");
        const detail::PoolGeometry g =
            detail::pool_geometry(pool_op_name(c.params.spatial_rank, kind), c.input, c.params, kind);
        const Tensor dy = testing::random_tensor(g.output_shape(), rng);
        const Tensor ref_y = is_max ? max_pool_forward(x, c.params) : avg_pool_forward(x, c.params);
        const Tensor ref_dx = is_max ? max_pool_backward(dy, x, c.params) : avg_pool_backward(dy, c.input, c.params);
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor xd = x.to(dtype), dyd = dy.to(dtype);
            testing::expect_kernel_output(ref_y, dtype, "forward", [&](void* out) {
                if (is_max) {
                    kernels::max_pool_forward(g, dtype, xd.raw_data(), out, testing::kEmuStream);
                } else {
                    kernels::avg_pool_forward(g, dtype, xd.raw_data(), out, testing::kEmuStream);
                }
            });
            testing::expect_kernel_output(ref_dx, dtype, "backward", [&](void* out) {
                if (is_max) {
                    kernels::max_pool_backward(g, dtype, dyd.raw_data(), xd.raw_data(), out, testing::kEmuStream);
                } else {
                    kernels::avg_pool_backward(g, dtype, dyd.raw_data(), out, testing::kEmuStream);
                }
            });
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Sweep, EmuPool, ::testing::ValuesIn(testing::pool_sweep()), testing::pool_case_name);

TEST(EmuPoolAdaptive, ForwardAndBackwardMatchTheHostReference) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<std::pair<Shape, std::vector<std::int64_t>>> problems = {{Shape{2, 3, 10}, {4}},
                                                                               {Shape{1, 2, 7, 5}, {3, 3}},
                                                                               {Shape{1, 2, 3, 4}, {5, 6}},
                                                                               {Shape{1, 1, 5, 4, 6}, {2, 3, 4}}};
    for (const auto& [shape, out] : problems) {
        SCOPED_TRACE(shape.to_string());
        const Tensor x = testing::random_tensor(shape, rng);
        const Tensor y = adaptive_avg_pool_forward(x, out);
        const Tensor dy = testing::random_tensor(y.shape(), rng);
        const Tensor ref_dx = adaptive_avg_pool_backward(dy, shape);
        const detail::PoolGeometry g = detail::adaptive_pool_geometry("adaptive_avg_pool", shape, out);
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor xd = x.to(dtype), dyd = dy.to(dtype);
            testing::expect_kernel_output(y, dtype, "adaptive forward", [&](void* o) {
                kernels::adaptive_avg_pool_forward(g, dtype, xd.raw_data(), o, testing::kEmuStream);
            });
            testing::expect_kernel_output(ref_dx, dtype, "adaptive backward", [&](void* o) {
                kernels::adaptive_avg_pool_backward(g, dtype, dyd.raw_data(), o, testing::kEmuStream);
            });
        }
    }
}

}  // namespace
}  // namespace convkit
