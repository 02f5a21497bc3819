// The CUDA pooling kernels' special cases against the host reference (label gpu): adaptive and
// global average, max pooling's special values bit for bit, sizes past 2^31 elements; outputs
// NaN-filled first. Most run twice: with the kernels that divide by FastDivisor and with those
// that divide in 64 bits (forced; they otherwise run only past 2^31 elements). The sweep of max
// and average pooling over the kernel sweeps runs through the cuda.direct variant in
// tests/test_variant_sweep.cpp.
#include <cmath>
#include <limits>

#include "backend_api/geometry.h"
#include "kernels/pool.h"
#include "sixteen_bit_layer_ops.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

// Runs kernel(out) into a NaN-filled tensor of `shape` and checks it against `reference`.
template <typename Launch>
void expect_matches(const Shape& shape, DType dtype, const Tensor& reference, const char* what, Launch launch) {
    Tensor out = testing::nan_tensor(shape, dtype, Device::cuda());
    launch(out);
    const double tolerance =
        dtype == DType::Float64 ? testing::kFloat64Tolerance : testing::kCudaStrictFloat32Tolerance;
    EXPECT_LT(testing::relative_error(out, reference), tolerance) << what;
}

class CudaPoolOps : public testing::WithCuda<> {};

// Runs `check` with the kernels that divide by FastDivisor (every launch here fits 32 bits) and
// again with those that divide in 64 bits, which otherwise run only past 2^31 elements.
template <typename Check>
void with_each_index_width(Check&& check) {
    for (bool wide : {false, true}) {
        SCOPED_TRACE(wide ? "64-bit index kernels" : "32-bit index kernels");
        kernels::set_pool_64_bit_indices_for_testing(wide);
        check();
    }
    kernels::set_pool_64_bit_indices_for_testing(false);
}

TEST_F(CudaPoolOps, AdaptiveAndGlobalAverageMatchTheHostReference) {
    with_each_index_width([&] {
        CONVKIT_SEEDED_RNG(rng);
        const std::vector<std::pair<Shape, std::vector<std::int64_t>>> problems = {{Shape{2, 3, 10}, {4}},
                                                                                   {Shape{1, 2, 7, 5}, {3, 3}},
                                                                                   {Shape{2, 3, 3, 4}, {5, 6}},
                                                                                   {Shape{1, 2, 5, 4, 6}, {2, 3, 4}}};
        for (const auto& [shape, out] : problems) {
            SCOPED_TRACE(shape.to_string());
            const Tensor x = testing::random_tensor(shape, rng);
            const Tensor y = adaptive_avg_pool_forward(x, out);
            const Tensor dy = testing::random_tensor(y.shape(), rng);
            const Tensor gpu_y = adaptive_avg_pool_forward(x.to(Device::cuda()), out);
            EXPECT_LT(testing::relative_error(gpu_y, y), testing::kFloat64Tolerance);
            const Tensor gpu_dx = adaptive_avg_pool_backward(dy.to(Device::cuda()), shape);
            EXPECT_LT(testing::relative_error(gpu_dx, adaptive_avg_pool_backward(dy, shape)),
                      testing::kFloat64Tolerance);
            const Tensor global = global_avg_pool_forward(x.to(Device::cuda()));
            EXPECT_LT(testing::relative_error(global, global_avg_pool_forward(x)), testing::kFloat64Tolerance);
            // Poisoned buffers through the kernel launchers, float32.
            const detail::PoolGeometry g = detail::adaptive_pool_geometry("adaptive_avg_pool", shape, out);
            const Tensor xf = x.to(DType::Float32).to(Device::cuda());
            const Tensor dyf = dy.to(DType::Float32).to(Device::cuda());
            expect_matches(y.shape(), DType::Float32, y, "adaptive forward", [&](Tensor& o) {
                kernels::adaptive_avg_pool_forward(g, DType::Float32, xf.raw_data(), o.raw_data(), current_stream(0));
            });
            expect_matches(shape, DType::Float32, adaptive_avg_pool_backward(dy, shape), "adaptive backward",
                           [&](Tensor& o) {
                               kernels::adaptive_avg_pool_backward(g, DType::Float32, dyf.raw_data(), o.raw_data(),
                                                                   current_stream(0));
                           });
        }
    });
}

// Ties, NaN and -inf, and dilated windows that miss the input: the GPU must pick the same
// element as the host (first maximum, last NaN) and give the same bits.
TEST_F(CudaPoolOps, MaxPoolingSpecialValuesMatchTheHostBitForBit) {
    with_each_index_width([&] {
        CONVKIT_SEEDED_RNG(rng);
        const double nan = std::numeric_limits<double>::quiet_NaN();
        const double inf = std::numeric_limits<double>::infinity();
        const std::vector<std::pair<PoolParams, Shape>> problems = {
            {PoolParams(2, 3).set_stride(1).set_padding(1), Shape{2, 3, 7, 6}},
            {PoolParams(1, 2).set_stride(1).set_dilation(3).set_padding(1),
             Shape{1, 2, 2}},  // a window misses the input
            {PoolParams(3, 2).set_stride(1), Shape{1, 2, 3, 4, 5}},
        };
        for (const auto& [params, shape] : problems) {
            SCOPED_TRACE(params.to_string() + " " + shape.to_string());
            std::vector<double> values = testing::small_integer_tensor(shape, rng(), 2).to_vector();  // many ties
            for (std::size_t i = 0; i < values.size(); i += 7) values[i] = (i / 7) % 3 == 0 ? nan : -inf;
            const Tensor x = Tensor::from_vector(shape, values);
            const Tensor y = max_pool_forward(x, params);
            const Tensor dy = testing::small_integer_tensor(y.shape(), rng(), 3);
            for (DType dtype : {DType::Float64, DType::Float32}) {
                const Tensor xd = x.to(dtype).to(Device::cuda());
                const std::vector<double> gpu_y = max_pool_forward(xd, params).to_vector();
                const std::vector<double> host_y = y.to_vector();
                ASSERT_EQ(gpu_y.size(), host_y.size());
                for (std::size_t i = 0; i < gpu_y.size(); ++i) {
                    EXPECT_TRUE((std::isnan(gpu_y[i]) && std::isnan(host_y[i])) || gpu_y[i] == host_y[i])
                        << "output " << i;
                }
                EXPECT_TRUE(testing::exactly_equal(max_pool_backward(dy.to(dtype).to(Device::cuda()), xd, params),
                                                   max_pool_backward(dy, x, params)));
            }
        }
    });
}

void expect_taps_backward_equals_searching_backward() {
    CONVKIT_SEEDED_RNG(rng);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<std::pair<PoolParams, Shape>> problems = {
        {PoolParams(2, 3).set_stride(2).set_padding(1), Shape{2, 3, 9, 8}},
        {PoolParams(2, 3).set_stride(1).set_padding(1), Shape{1, 16, 5, 6}},
        {PoolParams(1, 2).set_stride(1).set_dilation(3).set_padding(1), Shape{1, 2, 2}},
        {PoolParams(2, 2).set_stride(2).set_ceil_mode(true), Shape{2, 8, 5, 7}},
        {PoolParams(3, 2).set_stride(1), Shape{1, 2, 3, 4, 5}},
    };
    for (const auto& [params, shape] : problems) {
        std::vector<double> values = testing::small_integer_tensor(shape, rng(), 2).to_vector();
        for (std::size_t i = 0; i < values.size(); i += 7) values[i] = (i / 7) % 3 == 0 ? nan : -inf;
        const Tensor x = Tensor::from_vector(shape, values);
        const detail::PoolGeometry g = detail::pool_geometry("max_pool", shape, params, PoolKind::Max);
        const Shape out_shape = g.output_shape();
        const Tensor dy = testing::small_integer_tensor(out_shape, rng(), 3);
        for (DType dtype : {DType::Float32, DType::BFloat16}) {
            for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
                if (format == MemoryFormat::ChannelsLast && shape.rank() == 3) continue;
                SCOPED_TRACE(params.to_string() + " " + shape.to_string() + " " + dtype_name(dtype) + " " +
                             memory_format_name(format));
                const Tensor xd = x.to(dtype).to(Device::cuda()).to(format);
                const Tensor dyd = dy.to(dtype).to(Device::cuda()).to(format);
                Tensor y = testing::nan_tensor(out_shape, dtype, Device::cuda()).to(format);
                const std::int64_t words = (out_shape.numel() + 7) / 8;
                const Tensor taps =
                    Tensor::from_vector(Shape{words}, std::vector<std::int64_t>(words, 0)).to(Device::cuda());
                auto* tap_bytes = static_cast<std::uint8_t*>(taps.raw_data());
                kernels::max_pool_forward(g, dtype, xd.raw_physical_data(), y.raw_physical_data(), current_stream(0),
                                          format, tap_bytes);
                Tensor from_taps = testing::nan_tensor(shape, dtype, Device::cuda()).to(format);
                Tensor searching = testing::nan_tensor(shape, dtype, Device::cuda()).to(format);
                kernels::max_pool_backward_from_taps(g, dtype, dyd.raw_physical_data(), tap_bytes,
                                                     from_taps.raw_physical_data(), current_stream(0), format);
                kernels::max_pool_backward(g, dtype, dyd.raw_physical_data(), xd.raw_physical_data(),
                                           searching.raw_physical_data(), current_stream(0), format);
                EXPECT_TRUE(testing::exactly_equal(from_taps, searching))
                    << "max difference " << testing::max_abs_difference(from_taps, searching);
            }
        }
    }
}

// The backward from the forward's argmax taps against the backward that searches x, bit for bit:
// ties and NaN (small integers, every 7th value NaN or -inf), overlapping windows, a dilated
// window that misses the input (tap 255), ceil mode, 1-D to 3-D, both layouts, float32 and
// bfloat16, both index widths. Both kernels write into NaN-filled buffers, and the taps buffer
// is poisoned with zeros (tap 0, a real tap) so a tap the forward leaves unwritten shows.
TEST_F(CudaPoolOps, BackwardFromArgmaxTapsEqualsTheSearchingBackwardBitForBit) {
    with_each_index_width([] { expect_taps_backward_equals_searching_backward(); });
}
// Through the public ops, a recorded CUDA max pooling keeps its argmax taps, not its input: x may
// be overwritten after the forward and the gradient is still x's at the forward (the host
// reference variant, which keeps x, refuses that backward as it should).
TEST_F(CudaPoolOps, RecordedMaxPoolingKeepsItsTapsNotItsInput) {
    CONVKIT_SEEDED_RNG(rng);
    // The default choices (cuda.direct, host reference), whatever the environment names.
    const BackendGuard cuda(Backend::Cuda);
    const BackendGuard host(Backend::Host);
    const VariantGuard nothing_named;
    set_pool_variant("");
    set_variant_selection(VariantSelection::Default);
    const PoolParams params = PoolParams(2, 3).set_stride(2).set_padding(1);
    const Tensor x0 = testing::random_tensor(Shape{2, 3, 9, 8}, rng);
    const Tensor dy = testing::random_tensor(Shape{2, 3, 5, 4}, rng);
    Tensor expected_grad;
    {
        Tensor leaf = x0.clone().set_requires_grad();
        max_pool_forward(leaf * 2.0, params).backward(dy);
        expected_grad = leaf.grad();
    }
    for (const Device device : {Device::cuda(), Device::host()}) {
        SCOPED_TRACE(device.to_string());
        Tensor leaf = x0.to(device).detach().set_requires_grad();
        Tensor x = leaf * 2.0;  // its backward keeps nothing
        const Tensor y = max_pool_forward(x, params);
        {
            NoGradGuard no_grad;
            x.copy_(testing::random_tensor(x.shape(), rng).to(device));
        }
        if (device.type == DeviceType::CUDA) {
            y.backward(dy.to(device));
            EXPECT_LT(testing::relative_error(leaf.grad(), expected_grad), testing::kFloat64Tolerance);
        } else {
            EXPECT_THROW(y.backward(dy), InvalidArgument);
        }
    }
}

// More than 2^31 input elements: 2-wide max pooling of a ramp has a closed form at every index.
// Such a launch takes the kernels with 64-bit divisions (the others divide by FastDivisor, exact
// only below 2^31), so this is also the test of that choice.
TEST_F(CudaPoolOps, MaxPoolingPastTwoToTheThirtyOneElements) {
    CONVKIT_SKIP_ON_EMULATED_DEVICE("2^31 elements (8 GiB) are too many to emulate");
    const std::int64_t n = (std::int64_t{1} << 31) + 6;
    std::vector<float> ramp(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) ramp[static_cast<std::size_t>(i)] = static_cast<float>(i % 1000);
    const Tensor x = Tensor::from_vector(Shape{1, 1, n}, ramp, Device::cuda());
    std::vector<float>().swap(ramp);  // release the 8 GiB before the result comes back
    const Tensor y = max_pool_forward(x, PoolParams(1, 2)).to(Device::host());
    ASSERT_EQ(y.numel(), n / 2);
    const float* values = y.data<float>();
    std::int64_t wrong = 0;
    for (std::int64_t j = 0; j < n / 2; ++j) {
        const float expected = static_cast<float>(std::max((2 * j) % 1000, (2 * j + 1) % 1000));
        wrong += values[j] != expected;
    }
    EXPECT_EQ(wrong, 0);
}

// bfloat16/float16 in both memory formats run natively on cuda.direct (summed and compared in
// float): no layout conversion, results and gradients in the input's dtype and format, against
// the host in float64 on the same rounded values. Max pooling's windows overlap (stride 1), so
// its backward sums several outputs into one input; the 1-D and 3-D shapes check the other ranks.
TEST_F(CudaPoolOps, SixteenBitPoolingRunsNativelyInBothLayoutsAgainstTheFloat64Host) {
    with_each_index_width([&] {
        CONVKIT_SEEDED_RNG(rng);
        struct Problem {
            Shape input;
            PoolParams params;
            std::vector<std::int64_t> adaptive;
        };
        const Problem problems[] = {
            {Shape{2, 5, 9, 7}, PoolParams(2, 3).set_stride(1).set_padding(1), {4, 3}},
            {Shape{3, 4, 11}, PoolParams(1, 2), {5}},
            {Shape{1, 3, 4, 5, 6}, PoolParams(3, 2).set_stride(2), {2, 3, 2}},
        };
        for (const Problem& p : problems) {
            for (DType dtype : {DType::BFloat16, DType::Float16}) {
                const Tensor x = testing::random_tensor(p.input, rng).to(dtype).to(DType::Float64);
                for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
                    SCOPED_TRACE(p.input.to_string() + " " + dtype_name(dtype) + " " + memory_format_name(format));
                    auto run = [&](DType run_dtype, Device device, MemoryFormat run_format) {
                        std::vector<Tensor> results;
                        for (int op = 0; op < 3; ++op) {
                            Tensor leaf = x.to(run_dtype).to(device).to(run_format).detach().set_requires_grad();
                            const Tensor y = op == 0   ? max_pool_forward(leaf, p.params)
                                             : op == 1 ? avg_pool_forward(leaf, p.params)
                                                       : adaptive_avg_pool_forward(leaf, p.adaptive);
                            const Tensor dy = testing::random_tensor(y.shape(), rng).to(dtype).to(run_dtype).to(device);
                            y.backward(dy.to(run_format));
                            results.push_back(y);
                            results.push_back(leaf.grad());
                        }
                        return results;
                    };
                    const std::uint64_t seed = rng();
                    rng.seed(seed);
                    const std::vector<Tensor> host = run(DType::Float64, Device::host(), MemoryFormat::Contiguous);
                    rng.seed(seed);  // the same output gradients, drawn in the same order
                    reset_layout_conversions();
                    const std::vector<Tensor> gpu = run(dtype, Device::cuda(), format);
                    EXPECT_EQ(layout_conversions(), 0U);
                    const double tolerance = testing::sixteen_bit_tolerance(dtype);
                    const char* names[] = {"max", "max dx", "avg", "avg dx", "adaptive", "adaptive dx"};
                    for (std::size_t i = 0; i < host.size(); ++i) {
                        EXPECT_EQ(gpu[i].dtype(), dtype) << names[i];
                        EXPECT_EQ(gpu[i].memory_format(), format) << names[i];
                        EXPECT_LT(testing::relative_error(gpu[i], host[i]), tolerance) << names[i];
                    }
                }
            }
        }
    });
}

}  // namespace
}  // namespace convkit
