// The CUDA pooling kernels' special cases against the host reference (label gpu): adaptive and
// global average, max pooling's special values bit for bit, sizes past 2^31 elements; outputs
// NaN-filled first. Most run twice: with the kernels that divide by FastDivisor and with those
// that divide in 64 bits (forced; they otherwise run only past 2^31 elements). The channels-last
// kernels that move 16-byte packs of channels run against the same kernels one element per
// thread, bit for bit. The sweep of max and average pooling over the kernel sweeps runs through
// the cuda.direct variant in tests/test_variant_sweep.cpp.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend_api/geometry.h"
#include "kernels/index_width.h"
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
        const kernels::ForcedIndexWidth width(wide);
        check();
    }
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

// Forces the mean pools' window teams to `members` threads for a scope (0 after it: by shape).
struct WindowTeamGuard {
    explicit WindowTeamGuard(int members) { kernels::set_pool_window_team_for_testing(members); }
    ~WindowTeamGuard() { kernels::set_pool_window_team_for_testing(0); }
    WindowTeamGuard(const WindowTeamGuard&) = delete;
    WindowTeamGuard& operator=(const WindowTeamGuard&) = delete;
};

// The average pools' forward with each output's window shared by a team of every size up to a
// warp (forced; by shape a team serves windows of 16 taps or more): ResNet's global average
// (49 taps, more than any team), adaptive windows of unequal sizes and fewer taps than the larger
// teams have members, average windows clipped by the padding, 1-D and 3-D, outputs that fill no
// whole warp of teams; both layouts, single elements and channels-last packs, both index widths.
// Random float64 values against the host within rounding (a team sums in its own order); small
// integers in bfloat16, whose every sum is exact, bit for bit against one thread an output, so a
// tap summed twice or skipped shows in either.
TEST_F(CudaPoolOps, WindowTeamsOfEverySizeSumEachTapOnce) {
    with_each_index_width([] {
        CONVKIT_SEEDED_RNG(rng);
        struct Case {
            Shape shape;
            std::vector<std::int64_t> adaptive_output;  // empty: average pooling by `params`
            PoolParams params = PoolParams(2, 1);
        };
        const Case cases[] = {
            {Shape{3, 16, 7, 7}, {1, 1}},
            {Shape{2, 512, 7, 7}, {1, 1}},  // more teams than the emulated grid's warps: a second round
            {Shape{2, 5, 7, 7}, {1, 1}},
            {Shape{2, 16, 7, 5}, {3, 3}},
            {Shape{1, 8, 9, 8}, {}, PoolParams(2, 5).set_stride(2).set_padding(2).set_count_include_pad(false)},
            {Shape{2, 3, 37}, {2}},
            {Shape{1, 16, 4, 3, 5}, {1, 1, 1}},
        };
        for (const Case& c : cases) {
            const bool adaptive = !c.adaptive_output.empty();
            const detail::PoolGeometry g =
                adaptive ? detail::adaptive_pool_geometry("adaptive_avg_pool", c.shape, c.adaptive_output)
                         : detail::pool_geometry("avg_pool", c.shape, c.params, PoolKind::Average);
            const Tensor random = testing::random_tensor(c.shape, rng);
            const Tensor integers = testing::small_integer_tensor(c.shape, rng(), 3);
            const Tensor expected =
                adaptive ? adaptive_avg_pool_forward(random, c.adaptive_output) : avg_pool_forward(random, c.params);
            for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
                if (format == MemoryFormat::ChannelsLast && c.shape.rank() == 3) continue;
                // The forward into a NaN-filled output in `format`, each window shared by `members`.
                const auto forward = [&](const Tensor& x, DType dtype, int members) {
                    const WindowTeamGuard team(members);
                    const Tensor xd = x.to(dtype).to(Device::cuda()).to(format);
                    Tensor y = testing::nan_tensor(g.output_shape(), dtype, Device::cuda()).to(format);
                    (adaptive ? kernels::adaptive_avg_pool_forward : kernels::avg_pool_forward)(
                        g, dtype, xd.raw_physical_data(), y.raw_physical_data(), current_stream(0), format);
                    return y.to(Device::host());
                };
                const Tensor alone = forward(integers, DType::BFloat16, 1);
                for (int members : {1, 2, 4, 8, 16, 32}) {
                    SCOPED_TRACE(c.shape.to_string() + " " + memory_format_name(format) + ", " +
                                 std::to_string(members) + " members");
                    EXPECT_LT(testing::relative_error(forward(random, DType::Float64, members), expected),
                              testing::kFloat64Tolerance);
                    const Tensor shared = forward(integers, DType::BFloat16, members);
                    EXPECT_TRUE(testing::exactly_equal(shared, alone))
                        << "max difference " << testing::max_abs_difference(shared, alone);
                }
            }
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
        // dy of small integers (every sum exact) and of random values spread over 2^-20..2^20,
        // whose float sums depend on their order: the kernels must add the same terms in the
        // same order (a cell gather summing its windows in the opposite order of the searching
        // one passed the small integers).
        std::vector<double> spread(static_cast<std::size_t>(out_shape.numel()));
        std::uniform_real_distribution<double> unit(-1.0, 1.0);
        std::uniform_int_distribution<int> exponent(-20, 20);
        for (double& v : spread) v = std::ldexp(unit(rng), exponent(rng));
        const Tensor dys[] = {testing::small_integer_tensor(out_shape, rng(), 3),
                              Tensor::from_vector(out_shape, spread)};
        for (DType dtype : {DType::Float32, DType::BFloat16}) {
            for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
                for (const Tensor& dy : dys) {
                    if (format == MemoryFormat::ChannelsLast && shape.rank() == 3) continue;
                    SCOPED_TRACE(params.to_string() + " " + shape.to_string() + " " + dtype_name(dtype) + " " +
                                 memory_format_name(format) + (&dy == &dys[0] ? ", small integers" : ", spread"));
                    const Tensor xd = x.to(dtype).to(Device::cuda()).to(format);
                    const Tensor dyd = dy.to(dtype).to(Device::cuda()).to(format);
                    Tensor y = testing::nan_tensor(out_shape, dtype, Device::cuda()).to(format);
                    const std::int64_t words = (out_shape.numel() + 7) / 8;
                    const Tensor taps =
                        Tensor::from_vector(Shape{words}, std::vector<std::int64_t>(words, 0)).to(Device::cuda());
                    auto* tap_bytes = static_cast<std::uint8_t*>(taps.raw_data());
                    kernels::max_pool_forward(g, dtype, xd.raw_physical_data(), y.raw_physical_data(),
                                              current_stream(0), format, tap_bytes);
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
}

// The backward from the forward's argmax taps against the backward that searches x, bit for bit:
// ties and NaN (small integers, every 7th value NaN or -inf), dy of small integers and of values
// spread over 2^-20..2^20 (order-dependent sums: the same windows in the same order), overlapping windows, a dilated
// window that misses the input (tap 255), ceil mode, 1-D to 3-D, both layouts, float32 and
// bfloat16, both index widths. Both kernels write into NaN-filled buffers, and the taps buffer
// is poisoned with zeros (tap 0, a real tap) so a tap the forward leaves unwritten shows.
TEST_F(CudaPoolOps, BackwardFromArgmaxTapsEqualsTheSearchingBackwardBitForBit) {
    with_each_index_width([] { expect_taps_backward_equals_searching_backward(); });
}
// ---- channels-last packs ---------------------------------------------------------------------

// The elements of `t` in channels-last order (NDHWC), as a flat float64 tensor: the buffer the
// kernels read and write in that layout.
Tensor channels_last_buffer(const Tensor& t) {
    const Tensor last = t.to(DType::Float64).to(Device::host()).to(MemoryFormat::ChannelsLast);
    const double* begin = last.physical_data<double>();
    return Tensor::from_vector(Shape{last.numel()}, std::vector<double>(begin, begin + last.numel()));
}

// Bytes on the device (max pooling's argmax taps) placed `offset` bytes past an aligned
// allocation, every byte of the allocation `poison` first: bytes() gives the `count` bytes
// after the offset and expects the 16 before and after them still poison.
struct ByteBuffer {
    static constexpr std::int64_t kGuard = 16;
    Tensor storage;  // int64 words
    std::int64_t offset, count;
    std::uint8_t poison;

    ByteBuffer(std::int64_t count_bytes, std::int64_t offset_bytes, std::uint8_t poison_byte)
        : offset(offset_bytes), count(count_bytes), poison(poison_byte) {
        const std::int64_t words = (offset + count + kGuard + 7) / 8;
        const std::int64_t word = static_cast<std::int64_t>(0x0101010101010101ULL * poison);
        storage = Tensor::from_vector(Shape{words}, std::vector<std::int64_t>(static_cast<std::size_t>(words), word))
                      .to(Device::cuda());
    }
    std::uint8_t* data() const { return static_cast<std::uint8_t*>(storage.raw_data()) + offset; }
    std::vector<std::uint8_t> bytes() const {
        const Tensor host = storage.to(Device::host());
        const auto* all = static_cast<const std::uint8_t*>(host.raw_data());
        for (std::int64_t i = 0; i < offset; ++i) EXPECT_EQ(all[i], poison) << "byte " << i - offset;
        for (std::int64_t i = offset + count; i < offset + count + kGuard; ++i)
            EXPECT_EQ(all[i], poison) << "byte " << i - offset;
        return std::vector<std::uint8_t>(all + offset, all + offset + count);
    }
};

// Where the buffers of a run lie: the tensors `elements` past an aligned allocation, the argmax
// taps `tap_bytes` past theirs. Aligned ones take the packs where the channels allow; an
// element or a byte off takes the per-element kernels.
struct Placement {
    std::int64_t elements;
    std::int64_t tap_bytes;
};

std::string placement_text(const Placement& p) {
    return "tensors " + std::to_string(p.elements) + " elements in, taps " + std::to_string(p.tap_bytes) + " bytes in";
}

// What one run of a pooling case gives: the forward's and backward's buffers (their bytes) and,
// for max pooling, the argmax taps.
struct PoolRun {
    std::vector<unsigned char> y, dx;
    std::vector<std::uint8_t> taps;
    Tensor y_values, dx_values;  // flat, channels-last order
};

// Max pooling (forward recording taps, backward from them), average or adaptive average pooling
// (`adaptive`, its geometry from adaptive_pool_geometry), forward and backward, on the kernels'
// channels-last buffers at `placement`, into NaN-poisoned outputs.
PoolRun run_channels_last_pooling(const detail::PoolGeometry& g, PoolKind kind, bool adaptive, DType dtype,
                                  const Tensor& x, const Tensor& dy, const Placement& placement,
                                  std::uint8_t tap_poison) {
    const Stream stream = current_stream(0);
    const std::int64_t out_count = g.planes() * g.output_spatial();
    const std::int64_t in_count = g.planes() * g.input_spatial();
    const testing::OffsetBuffer xd(channels_last_buffer(x).to(dtype), placement.elements);
    const testing::OffsetBuffer dyd(channels_last_buffer(dy).to(dtype), placement.elements);
    const testing::OffsetBuffer y(testing::nan_tensor(Shape{out_count}, dtype), placement.elements);
    const testing::OffsetBuffer dx(testing::nan_tensor(Shape{in_count}, dtype), placement.elements);
    const ByteBuffer taps(out_count, placement.tap_bytes, tap_poison);
    const MemoryFormat last = MemoryFormat::ChannelsLast;
    PoolRun run;
    if (kind == PoolKind::Max) {
        kernels::max_pool_forward(g, dtype, xd.data(), y.data(), stream, last, taps.data());
        kernels::max_pool_backward_from_taps(g, dtype, dyd.data(), taps.data(), dx.data(), stream, last);
        run.taps = taps.bytes();
    } else if (adaptive) {
        kernels::adaptive_avg_pool_forward(g, dtype, xd.data(), y.data(), stream, last);
        kernels::adaptive_avg_pool_backward(g, dtype, dyd.data(), dx.data(), stream, last);
    } else {
        kernels::avg_pool_forward(g, dtype, xd.data(), y.data(), stream, last);
        kernels::avg_pool_backward(g, dtype, dyd.data(), dx.data(), stream, last);
    }
    run.y = y.bytes();
    run.dx = dx.bytes();
    run.y_values = y.values(Shape{out_count}).to(DType::Float64);
    run.dx_values = dx.values(Shape{in_count}).to(DType::Float64);
    return run;
}

// Equal where both are NaN or both the same value; the count of the others.
std::int64_t values_differing(const Tensor& a, const Tensor& b) {
    const std::vector<double> u = a.to_vector(), v = b.to_vector();
    std::int64_t differing = 0;
    for (std::size_t i = 0; i < u.size(); ++i) differing += !(u[i] == v[i] || (std::isnan(u[i]) && std::isnan(v[i])));
    return differing + static_cast<std::int64_t>(u.size() != v.size());
}

void expect_packed_pooling_equals_per_element() {
    CONVKIT_SEEDED_RNG(rng);
    struct Case {
        PoolKind kind;
        PoolParams params;                               // adaptive: its rank only
        SpatialDims input;                               // the spatial extents (the last spatial_rank entries used)
        std::vector<std::int64_t> adaptive_output = {};  // adaptive average pooling to these extents
    };
    const Case cases[] = {
        {PoolKind::Max, PoolParams(2, 3).set_stride(2).set_padding(1), {1, 7, 6}},  // ResNet's stem, overlapping
        {PoolKind::Max, PoolParams(2, 2).set_stride(1).set_dilation(3).set_padding(1), {1, 3, 2}},  // windows miss
        {PoolKind::Max, PoolParams(2, 2).set_stride(2).set_ceil_mode(true), {1, 5, 7}},
        {PoolKind::Max, PoolParams(3, 2).set_stride(1), {3, 4, 3}},
        {PoolKind::Average, PoolParams(2, 3).set_stride(2).set_padding(1), {1, 7, 6}},
        {PoolKind::Average, PoolParams(2, 3).set_stride(2).set_padding(1).set_count_include_pad(false), {1, 6, 5}},
        {PoolKind::Average, PoolParams(3, 2).set_stride(1).set_ceil_mode(true), {3, 4, 3}},
        // The backward's cells of 2x2 positions: odd extents (cells past the input), stride 3
        // (positions no window holds), a 5-wide window at stride 1 (36 windows a cell), dilation
        // along h and w, 1-D and 3-D.
        {PoolKind::Max, PoolParams(2, 2).set_stride(3), {1, 7, 8}},
        {PoolKind::Max, PoolParams(2, 5).set_stride(1).set_padding(2), {1, 6, 7}},
        {PoolKind::Max, PoolParams(2, 3).set_stride(2).set_dilation(2).set_padding(1), {1, 9, 8}},
        {PoolKind::Max, PoolParams(1, 3).set_stride(2).set_padding(1), {1, 1, 9}},
        {PoolKind::Max, PoolParams(3, 3).set_stride(2).set_padding(1), {5, 5, 6}},
        {PoolKind::Average, PoolParams(2, 5).set_stride(1).set_padding(2), {1, 5, 7}},
        {PoolKind::Average, PoolParams(1, 3).set_stride(2).set_ceil_mode(true), {1, 1, 10}},
        {PoolKind::Average, PoolParams(3, 3).set_stride(2).set_padding(1).set_count_include_pad(false), {3, 5, 7}},
        // Adaptive average pooling: ResNet's global average (7x7 to 1x1), windows of unequal
        // sizes that overlap (7x5 to 3x3), more outputs than inputs (3x4 to 5x6: positions in
        // several windows), 1-D and 3-D.
        {PoolKind::Average, PoolParams(2, 1), {1, 7, 7}, {1, 1}},
        {PoolKind::Average, PoolParams(2, 1), {1, 7, 5}, {3, 3}},
        {PoolKind::Average, PoolParams(2, 1), {1, 3, 4}, {5, 6}},
        {PoolKind::Average, PoolParams(1, 1), {1, 1, 10}, {4}},
        {PoolKind::Average, PoolParams(3, 1), {5, 4, 6}, {2, 3, 4}},
    };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    for (const Case& c : cases) {
        // 16 channels: whole packs of every dtype; 12 of float and double only, 6 of double only, 5 of none.
        for (std::int64_t channels : {16, 12, 6, 5}) {
            const int rank = c.params.spatial_rank;
            const Shape shape = detail::image_shape(2, channels, c.input, rank);
            const bool adaptive = !c.adaptive_output.empty();
            const detail::PoolGeometry g =
                adaptive ? detail::adaptive_pool_geometry("adaptive_avg_pool", shape, c.adaptive_output)
                         : detail::pool_geometry("pool", shape, c.params, c.kind);
            // Small integers: ties, and sums exact in every dtype; max pooling's also NaN and -inf.
            std::vector<double> values = testing::small_integer_tensor(shape, rng(), 2).to_vector();
            if (c.kind == PoolKind::Max)
                for (std::size_t i = 0; i < values.size(); i += 7) values[i] = (i / 7) % 3 == 0 ? nan : -inf;
            const Tensor x = Tensor::from_vector(shape, values);
            const Tensor dy = testing::small_integer_tensor(g.output_shape(), rng(), 3);
            const Tensor y_host = c.kind == PoolKind::Max ? max_pool_forward(x, c.params)
                                  : adaptive              ? adaptive_avg_pool_forward(x, c.adaptive_output)
                                                          : avg_pool_forward(x, c.params);
            const Tensor dx_host = c.kind == PoolKind::Max ? max_pool_backward(dy, x, c.params)
                                   : adaptive              ? adaptive_avg_pool_backward(dy, shape)
                                                           : avg_pool_backward(dy, shape, c.params);
            for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
                const std::int64_t pack_elements = 16 / static_cast<std::int64_t>(dtype_size(dtype));
                for (const Placement& placement :
                     {Placement{0, 0}, Placement{pack_elements, 16}, Placement{1, 0}, Placement{0, 1}}) {
                    SCOPED_TRACE((adaptive ? "adaptive to " + g.output_shape().to_string() : c.params.to_string()) +
                                 " " + shape.to_string() + " " + dtype_name(dtype) + ", " + placement_text(placement));
                    kernels::set_pool_packs_for_testing(false);
                    const PoolRun single = run_channels_last_pooling(g, c.kind, adaptive, dtype, x, dy, placement, 1);
                    kernels::set_pool_packs_for_testing(true);
                    const PoolRun packed = run_channels_last_pooling(g, c.kind, adaptive, dtype, x, dy, placement, 0);
                    EXPECT_TRUE(packed.y == single.y)
                        << "forward, " << values_differing(packed.y_values, single.y_values) << " values differ";
                    EXPECT_TRUE(packed.dx == single.dx)
                        << "backward, " << values_differing(packed.dx_values, single.dx_values) << " values differ";
                    EXPECT_TRUE(packed.taps == single.taps) << "argmax taps";
                    // Against the host in float64: max pooling and its integer sums exactly (NaN
                    // where the host has NaN); the averages within the dtype's rounding.
                    const Tensor y_expected = channels_last_buffer(y_host), dx_expected = channels_last_buffer(dx_host);
                    if (c.kind == PoolKind::Max) {
                        EXPECT_EQ(values_differing(packed.y_values, y_expected), 0) << "forward against the host";
                        EXPECT_EQ(values_differing(packed.dx_values, dx_expected), 0) << "backward against the host";
                    } else {
                        const double tolerance = dtype == DType::Float64   ? testing::kFloat64Tolerance
                                                 : dtype == DType::Float32 ? testing::kCudaStrictFloat32Tolerance
                                                                           : testing::sixteen_bit_tolerance(dtype);
                        EXPECT_LT(testing::relative_error(packed.y_values, y_expected), tolerance) << "forward";
                        EXPECT_LT(testing::relative_error(packed.dx_values, dx_expected), tolerance) << "backward";
                    }
                }
            }
        }
    }
    kernels::set_pool_packs_for_testing(true);
}

// In channels-last, max and average pooling's forward and backward (max pooling's from the
// argmax taps) give each thread a 16-byte pack of adjacent channels where the channels are a
// multiple of the pack and the buffers aligned. Against the per-element kernels on the same
// inputs, bit for bit (outputs, gradients and taps; NaN payloads too), and against the host:
// every float dtype, channels that are and are not a multiple of each dtype's pack, tensors and
// taps at an aligned offset and at an unaligned one (which falls back), windows that overlap,
// miss the input, overhang in ceil mode, 2-D and 3-D, both index widths. Outputs are
// NaN-filled, the taps poisoned with a different byte in each run, and the bytes around every
// buffer checked untouched.
TEST_F(CudaPoolOps, PackedChannelsLastKernelsEqualThePerElementOnesBitForBit) {
    with_each_index_width([] { expect_packed_pooling_equals_per_element(); });
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
