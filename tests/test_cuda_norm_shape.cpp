// The CUDA shape-op and batch-normalization kernels against the host backend (label gpu):
// launchers write into NaN-filled buffers so unwritten elements fail; odd sizes, many channels
// (past the 65535-block grid), large spatial sizes, and a float32 input with a large mean.
// Copies are exact; float64 arithmetic to 1e-12; float32 to 1e-5 of the host's double result.
#include <cmath>

#include "backends/host/batch_norm_host.h"
#include "backends/host/shape_ops_host.h"
#include "kernels/batch_norm.h"
#include "kernels/shape_ops.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {
using namespace convkit::testing;

double tolerance_for(DType dtype) {
    return dtype == DType::Float64 ? kFloat64Tolerance : testing::kCudaStrictFloat32Tolerance;
}

class CudaShapeOps : public WithCuda<> {};

TEST_F(CudaShapeOps, BlockCopiesMatchTheHostExactly) {
    CONVKIT_SEEDED_RNG(rng);
    // [outer, source_dim, inner] windows copied into a [outer, length, inner] buffer (a slice)
    // and back into the window of a larger one (slice backward / concat).
    struct Window {
        std::int64_t outer, inner, source_dim, start, length;
    };
    const std::vector<Window> windows = {{1, 1, 7, 2, 3},   {3, 5, 4, 1, 2},     {2, 257, 9, 0, 9},
                                         {5, 3, 11, 10, 1}, {1, 65537, 3, 1, 2}, {700, 2, 3, 0, 1}};
    for (const Window& w : windows) {
        SCOPED_TRACE(std::to_string(w.outer) + "x" + std::to_string(w.source_dim) + "x" + std::to_string(w.inner));
        for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::BFloat16, DType::Float16}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor source = small_integer_tensor(Shape{w.outer, w.source_dim, w.inner}, rng(), 100).to(dtype);
            detail::BlockCopyGeometry g{w.outer, w.inner, w.length, w.source_dim, w.start, w.length, 0};
            Tensor host = Tensor::zeros(Shape{w.outer, w.length, w.inner}, dtype);
            detail::block_copy_host(g, dtype_size(dtype), source.raw_data(), host.raw_data());
            const Tensor source_gpu = source.to(Device::cuda());
            Tensor gpu = dtype == DType::Int64 ? Tensor::full(host.shape(), -7, dtype, Device::cuda())
                                               : nan_tensor(host.shape(), dtype, Device::cuda());
            kernels::block_copy(g, dtype_size(dtype), source_gpu.raw_data(), gpu.raw_data(), current_stream(0));
            EXPECT_TRUE(exactly_equal(gpu, host)) << "slice";
            // Back into the window of a tensor of the source's shape.
            const detail::BlockCopyGeometry back{w.outer, w.inner, w.length, w.length, 0, w.source_dim, w.start};
            Tensor host_back = Tensor::zeros(source.shape(), dtype);
            detail::block_copy_host(back, dtype_size(dtype), host.raw_data(), host_back.raw_data());
            Tensor gpu_back = Tensor::zeros(source.shape(), dtype, Device::cuda());
            kernels::block_copy(back, dtype_size(dtype), gpu.raw_data(), gpu_back.raw_data(), current_stream(0));
            EXPECT_TRUE(exactly_equal(gpu_back, host_back)) << "window";
        }
    }
}

// Rows widened with zeros and narrowed back (cuda.igemm's channel padding): the kernel against
// the host loop, every element size, into NaN-filled buffers; the host loop against the
// definition (each row's first channels kept, the added ones +0; 5 -> 4 narrows), and narrowing
// a widened copy gives the source back.
TEST_F(CudaShapeOps, ChannelRowsWidenWithZerosAndNarrowBack) {
    CONVKIT_SEEDED_RNG(rng);
    struct Rows {
        std::int64_t rows, from, to;
    };
    const std::vector<Rows> cases = {{1, 3, 8}, {257, 1, 8}, {7, 5, 4}, {65537, 3, 8}, {2, 12, 16}, {9, 4, 4}};
    for (const Rows& r : cases) {
        SCOPED_TRACE(std::to_string(r.rows) + " rows " + std::to_string(r.from) + " -> " + std::to_string(r.to));
        for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor source = small_integer_tensor(Shape{r.rows, r.from}, rng(), 100).to(dtype);
            const detail::ChannelRowsGeometry g{r.rows, r.from, r.to};
            Tensor host = nan_tensor(Shape{r.rows, r.to}, dtype, Device::host());
            detail::copy_channel_rows_host(g, dtype_size(dtype), source.raw_data(), host.raw_data());
            const Tensor source64 = source.to(DType::Float64), host64 = host.to(DType::Float64);
            for (std::int64_t row = 0; row < r.rows; row += std::max<std::int64_t>(1, r.rows / 64)) {
                for (std::int64_t c = 0; c < r.to; ++c) {
                    const double got = host64.data<double>()[row * r.to + c];
                    const double want = c < r.from ? source64.data<double>()[row * r.from + c] : 0.0;
                    ASSERT_EQ(got, want) << "row " << row << " channel " << c;
                    if (c >= r.from) {
                        ASSERT_FALSE(std::signbit(got)) << "an added channel is +0";
                    }
                }
            }
            Tensor gpu = nan_tensor(host.shape(), dtype, Device::cuda());
            kernels::copy_channel_rows(g, dtype_size(dtype), source.to(Device::cuda()).raw_data(), gpu.raw_data(),
                                       current_stream(0));
            EXPECT_TRUE(exactly_equal(gpu, host)) << "copied";
            if (r.to < r.from) continue;  // narrowed: nothing to give back
            Tensor back = nan_tensor(source.shape(), dtype, Device::cuda());
            kernels::copy_channel_rows({r.rows, r.to, r.from}, dtype_size(dtype), gpu.raw_data(), back.raw_data(),
                                       current_stream(0));
            EXPECT_TRUE(exactly_equal(back, source)) << "narrowed back";
        }
    }
    EXPECT_THROW(kernels::copy_channel_rows({1, 1, 2}, 3, nullptr, nullptr, current_stream(0)), InvalidArgument);
}

TEST_F(CudaShapeOps, ConcatSliceSplitAndTheirGradientsMatchTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor a = random_tensor(Shape{3, 5, 17, 9}, rng);
    const Tensor b = random_tensor(Shape{3, 3, 17, 9}, rng);  // cropped to channels 1..2
    const Tensor dy = random_tensor(Shape{3, 7, 17, 9}, rng);
    auto run = [&](Device device) {
        Tensor la = a.to(device).detach().set_requires_grad();
        Tensor lb = b.to(device).detach().set_requires_grad();
        const Tensor y = concat({la, slice(lb, 1, 1, 3)}, 1);
        const std::vector<Tensor> parts = split(y, 1, {4, 3});
        concat({parts[1], parts[0]}, 1).backward(dy.to(device));
        return std::vector<Tensor>{y, parts[0], la.grad(), lb.grad()};
    };
    const std::vector<Tensor> host = run(Device::host());
    const std::vector<Tensor> gpu = run(Device::cuda());
    for (std::size_t i = 0; i < host.size(); ++i) EXPECT_TRUE(exactly_equal(gpu[i], host[i])) << "result " << i;
}

struct UpsampleCase {
    Shape input;
    std::array<std::int64_t, 3> output;  // widened: index 0 is D
};

TEST_F(CudaShapeOps, NearestUpsamplingMatchesTheHostIntoPoisonedBuffers) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<UpsampleCase> cases = {
        {Shape{2, 3, 7}, {1, 1, 21}},           {Shape{1, 2, 5}, {1, 1, 2}},         // 1d up, down
        {Shape{2, 3, 5, 7}, {1, 10, 14}},       {Shape{1, 5, 7, 3}, {1, 9, 11}},     // 2d scale, odd size
        {Shape{1, 2, 257, 263}, {1, 514, 789}},                                      // large spatial
        {Shape{1, 2, 3, 5, 4}, {6, 10, 8}},     {Shape{2, 1, 4, 3, 5}, {7, 2, 13}},  // 3d
    };
    for (const UpsampleCase& c : cases) {
        SCOPED_TRACE(c.input.to_string());
        detail::UpsampleGeometry g;
        g.planes = c.input[0] * c.input[1];
        const int spatial = c.input.rank() - 2;
        std::vector<std::int64_t> out_dims = {c.input[0], c.input[1]};
        for (int s = 0; s < spatial; ++s) {
            const auto widened = static_cast<std::size_t>(3 - spatial + s);
            g.input[widened] = c.input[2 + s];
            g.output[widened] = c.output[widened];
            out_dims.push_back(c.output[widened]);
        }
        const Shape out_shape(out_dims);
        const Tensor x = random_tensor(c.input, rng);
        const Tensor dy = random_tensor(out_shape, rng);
        Tensor ref_y = Tensor::empty(out_shape, DType::Float64);
        Tensor ref_dx = Tensor::empty(c.input, DType::Float64);
        detail::upsample_nearest_forward_host(g, DType::Float64, x.raw_data(), ref_y.raw_data());
        detail::upsample_nearest_backward_host(g, DType::Float64, dy.raw_data(), ref_dx.raw_data());
        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Tensor xd = x.to(dtype).to(Device::cuda());
            const Tensor dyd = dy.to(dtype).to(Device::cuda());
            Tensor y = nan_tensor(out_shape, dtype, Device::cuda());
            kernels::upsample_nearest_forward(g, dtype, xd.raw_data(), y.raw_data(), current_stream(0));
            EXPECT_LT(relative_error(y, ref_y), tolerance_for(dtype)) << "forward";
            Tensor dx = nan_tensor(c.input, dtype, Device::cuda());
            kernels::upsample_nearest_backward(g, dtype, dyd.raw_data(), dx.raw_data(), current_stream(0));
            EXPECT_LT(relative_error(dx, ref_dx), tolerance_for(dtype)) << "backward";
        }
        // The public ops on CUDA tensors, forward and backward, equal the host bit for bit in float64.
        Tensor leaf = x.to(Device::cuda()).detach().set_requires_grad();
        const Tensor y =
            upsample_nearest_to_size(leaf, std::vector<std::int64_t>(out_dims.begin() + 2, out_dims.end()));
        y.backward(dy.to(Device::cuda()));
        EXPECT_TRUE(exactly_equal(y, ref_y));
        EXPECT_LT(relative_error(leaf.grad(), ref_dx), kFloat64Tolerance);
    }
}

// ---- batch normalization -----------------------------------------------------------------

struct NormCase {
    Shape shape;
    double mean_offset = 0;  // added to every value: a large mean tests the variance's precision
    // false: channels-last only, for a shape whose contiguous run adds nothing but emulated time
    // (a block a channel in the contiguous reductions)
    bool contiguous_too = true;
};

class CudaBatchNorm : public WithCuda<> {};

detail::BatchNormGeometry geometry_of(const Shape& shape) {
    detail::BatchNormGeometry g{shape[0], shape[1], 1};
    for (int d = 2; d < shape.rank(); ++d) g.spatial *= shape[d];
    return g;
}

const std::vector<NormCase>& norm_cases() {
    static const std::vector<NormCase> cases = {
        {Shape{7, 5}},
        {Shape{3, 5, 17}},
        {Shape{2, 7, 33, 31}},
        {Shape{2, 3, 5, 9, 11}},
        {Shape{5, 1000}},                              // many channels, few values each
        {Shape{2, gpu_or_emulated(70000, 700)}},       // more channels than blocks in the grid
        {Shape{4, 2, 128, gpu_or_emulated(129, 33)}},  // many values per channel (many chunks each)
        {Shape{8, 3, 50}, 1e4},                        // a large mean
        {Shape{3, 4, 37, 41}, -3e3},
    };
    return cases;
}

// Every launcher of the family into NaN-filled buffers against the host backend, both dtypes.
TEST_F(CudaBatchNorm, KernelsMatchTheHostBackendIntoPoisonedBuffers) {
    CONVKIT_SEEDED_RNG(rng);
    for (const NormCase& c : norm_cases()) {
        SCOPED_TRACE(c.shape.to_string() + " + " + std::to_string(c.mean_offset));
        const detail::BatchNormGeometry g = geometry_of(c.shape);
        const Shape channels{g.channels};
        // Values rounded to float32 so that both dtypes see the same numbers.
        const Tensor x = (Tensor::uniform(c.shape, -2, 2, rng(), DType::Float64) +
                          Tensor::full(Shape{}, c.mean_offset, DType::Float64))
                             .to(DType::Float32)
                             .to(DType::Float64);
        const Tensor w = Tensor::uniform(channels, 0.5, 2, rng(), DType::Float32).to(DType::Float64);
        const Tensor b = Tensor::uniform(channels, -1, 1, rng(), DType::Float32).to(DType::Float64);
        const Tensor dy = Tensor::uniform(c.shape, -1, 1, rng(), DType::Float32).to(DType::Float64);
        const Tensor rm = Tensor::uniform(channels, -1, 1, rng(), DType::Float32).to(DType::Float64);
        const Tensor rv = Tensor::uniform(channels, 0.5, 2, rng(), DType::Float32).to(DType::Float64);
        const double eps = 1e-5;
        const double momentum = 0.1;

        // The host backend in float64: the oracle.
        Tensor mean = Tensor::empty(channels, DType::Float64);
        Tensor var = Tensor::empty(channels, DType::Float64);
        Tensor new_rm = Tensor::empty(channels, DType::Float64);
        Tensor new_rv = Tensor::empty(channels, DType::Float64);
        detail::batch_norm_statistics_host(
            g, DType::Float64, x.raw_data(), mean.data<double>(), var.data<double>(),
            {rm.raw_data(), rv.raw_data(), new_rm.raw_data(), new_rv.raw_data(), momentum});
        Tensor y = Tensor::empty(c.shape, DType::Float64);
        detail::batch_norm_forward_host(g, DType::Float64, x.raw_data(), mean.data<double>(), var.data<double>(),
                                        w.raw_data(), b.raw_data(), eps, y.raw_data());
        Tensor sum_dy = Tensor::empty(channels, DType::Float64);
        Tensor sum_dy_x_hat = Tensor::empty(channels, DType::Float64);
        detail::batch_norm_backward_reduce_host(g, DType::Float64, dy.raw_data(), x.raw_data(), mean.data<double>(),
                                                var.data<double>(), eps, sum_dy.data<double>(),
                                                sum_dy_x_hat.data<double>());
        Tensor dx_train = Tensor::empty(c.shape, DType::Float64);
        Tensor dx_eval = Tensor::empty(c.shape, DType::Float64);
        for (bool batch_statistics : {true, false}) {
            detail::batch_norm_backward_input_host(g, DType::Float64, dy.raw_data(), x.raw_data(), mean.data<double>(),
                                                   var.data<double>(), w.raw_data(), sum_dy.data<double>(),
                                                   sum_dy_x_hat.data<double>(), eps, batch_statistics,
                                                   (batch_statistics ? dx_train : dx_eval).raw_data());
        }

        for (DType dtype : {DType::Float64, DType::Float32}) {
            SCOPED_TRACE(dtype_name(dtype));
            const Device gpu = Device::cuda();
            const Stream s = current_stream(0);
            const Tensor xd = x.to(dtype).to(gpu), wd = w.to(dtype).to(gpu), bd = b.to(dtype).to(gpu);
            const Tensor dyd = dy.to(dtype).to(gpu), rmd = rm.to(dtype).to(gpu), rvd = rv.to(dtype).to(gpu);
            Tensor gmean = nan_tensor(channels, DType::Float64, gpu);
            Tensor gvar = nan_tensor(channels, DType::Float64, gpu);
            Tensor grm = nan_tensor(channels, dtype, gpu);
            Tensor grv = nan_tensor(channels, dtype, gpu);
            kernels::batch_norm_statistics(g, dtype, xd.raw_data(), gmean.data<double>(), gvar.data<double>(),
                                           {rmd.raw_data(), rvd.raw_data(), grm.raw_data(), grv.raw_data(), momentum},
                                           s);
            // Statistics accumulate in double from the same values: only the summation order differs.
            EXPECT_LT(relative_error(gmean, mean), kFloat64Tolerance) << "mean";
            EXPECT_LT(relative_error(gvar, var), testing::kCudaFloat64ReductionTolerance)
                << "variance";  // two-pass: no cancellation at large means
            EXPECT_LT(relative_error(grm, new_rm), tolerance_for(dtype)) << "running mean";
            EXPECT_LT(relative_error(grv, new_rv), tolerance_for(dtype)) << "running var";

            // The rest from the host's statistics, so each kernel is checked on its own.
            const Tensor hmean = mean.to(gpu);
            const Tensor hvar = var.to(gpu);
            Tensor gy = nan_tensor(c.shape, dtype, gpu);
            kernels::batch_norm_forward(g, dtype, xd.raw_data(), hmean.data<double>(), hvar.data<double>(),
                                        wd.raw_data(), bd.raw_data(), eps, gy.raw_data(), s);
            EXPECT_LT(relative_error(gy, y), tolerance_for(dtype)) << "forward";
            Tensor gsum_dy = nan_tensor(channels, DType::Float64, gpu);
            Tensor gsum_dy_x_hat = nan_tensor(channels, DType::Float64, gpu);
            kernels::batch_norm_backward_reduce(g, dtype, dyd.raw_data(), xd.raw_data(), hmean.data<double>(),
                                                hvar.data<double>(), eps, gsum_dy.data<double>(),
                                                gsum_dy_x_hat.data<double>(), s);
            EXPECT_LT(relative_error(gsum_dy, sum_dy), testing::kCudaFloat64ReductionTolerance) << "sum dy";
            EXPECT_LT(relative_error(gsum_dy_x_hat, sum_dy_x_hat), testing::kCudaFloat64ReductionTolerance)
                << "sum dy x_hat";
            const Tensor hsum_dy = sum_dy.to(gpu);
            const Tensor hsum_dy_x_hat = sum_dy_x_hat.to(gpu);
            for (bool batch_statistics : {true, false}) {
                SCOPED_TRACE(batch_statistics ? "batch statistics" : "running statistics");
                Tensor gdx = nan_tensor(c.shape, dtype, gpu);
                kernels::batch_norm_backward_input(
                    g, dtype, dyd.raw_data(), xd.raw_data(), hmean.data<double>(), hvar.data<double>(), wd.raw_data(),
                    hsum_dy.data<double>(), hsum_dy_x_hat.data<double>(), eps, batch_statistics, gdx.raw_data(), s);
                EXPECT_LT(relative_error(gdx, batch_statistics ? dx_train : dx_eval), tolerance_for(dtype)) << "dx";
            }
        }
    }
}

// The public op on CUDA tensors: outputs, running statistics and every gradient equal the host's.
TEST_F(CudaBatchNorm, TheOpAndItsGradientsMatchTheHostInTrainingAndEvaluation) {
    CONVKIT_SEEDED_RNG(rng);
    for (const Shape& shape : {Shape{6, 4}, Shape{3, 5, 19}, Shape{2, 3, 9, 7}, Shape{2, 2, 3, 5, 4}}) {
        for (bool training : {true, false}) {
            SCOPED_TRACE(shape.to_string() + (training ? " training" : " eval"));
            const Shape channels{shape[1]};
            const Tensor x = random_tensor(shape, rng), dy = random_tensor(shape, rng);
            const Tensor w = random_tensor(channels, rng), b = random_tensor(channels, rng);
            const Tensor rm = random_tensor(channels, rng);
            const Tensor rv = Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64);
            for (DType dtype : {DType::Float64, DType::Float32}) {
                SCOPED_TRACE(dtype_name(dtype));
                auto run = [&](Device device) {
                    Tensor lx = x.to(dtype).to(device).detach().set_requires_grad();
                    Tensor lw = w.to(dtype).to(device).detach().set_requires_grad();
                    Tensor lb = b.to(dtype).to(device).detach().set_requires_grad();
                    Tensor lrm = rm.to(dtype).to(device).clone();
                    Tensor lrv = rv.to(dtype).to(device).clone();
                    const Tensor y = batch_norm(lx, lw, lb, lrm, lrv, training, 0.2);
                    y.backward(dy.to(dtype).to(device));
                    return std::vector<Tensor>{y, lrm, lrv, lx.grad(), lw.grad(), lb.grad()};
                };
                // The host computes in double and rounds once: the float64 reference for both.
                const std::vector<Tensor> host = run(Device::host());
                const std::vector<Tensor> gpu = run(Device::cuda());
                const char* names[] = {"y", "running_mean", "running_var", "dx", "dweight", "dbias"};
                for (std::size_t i = 0; i < host.size(); ++i) {
                    EXPECT_LT(relative_error(gpu[i], host[i]), tolerance_for(dtype)) << names[i];
                }
            }
        }
    }
}

// Every float dtype in both memory formats runs natively on CUDA: no layout conversion, no
// float32 copies, the result in the input's format and dtype. Against the host in float64 on the
// same rounded values; the 70-channel shape has several channel tiles (channels-last) and several
// chunks per channel in both layouts, the offset one a mean far from zero.
TEST_F(CudaBatchNorm, EveryDtypeRunsNativelyInBothLayoutsAgainstTheFloat64Host) {
    CONVKIT_SEEDED_RNG(rng);
    // {2, 70, 9, 31}: three channel tiles channels-last, two chunks per channel in both layouts.
    // {2, 16, 8, 6}: channels and positions multiples of 8, so the per-element passes move 16-byte
    // packs in both layouts and every dtype, and the channels-last reductions read packs; the
    // others run element by element (or in packs in one layout only). {3, 264, 3, 5}: 33 packs
    // of 8 channels, so the packed channels-last reductions run two tiles of 256 channels, the
    // second holding one pack, and the per-element passes' pack columns leave threads over (7 rows
    // of 33 columns in 256 threads). {2, 24, 4, 4} with a mean of 300: packed tiles narrower than
    // the channels (16 of 24), the last one partly empty, and the shifted sums of a large mean.
    // {2, 64, 16, 15}: the per-element passes' threads take several rows of their pack column,
    // two at a time, and an odd one last. {1, 2056, 1, 2}: a row of more packs than the grid has
    // threads (257 of 8 bfloat16 in 256), so the channels-last passes take each pack's channels'
    // constants in the grid-stride loop instead.
    const NormCase cases[] = {{Shape{3, 5, 19}},         {Shape{2, 3, 3, 5, 4}}, {Shape{2, 70, 9, 31}},
                              {Shape{2, 9, 41}, 300},    {Shape{2, 16, 8, 6}},   {Shape{3, 264, 3, 5}},
                              {Shape{2, 24, 4, 4}, 300}, {Shape{2, 64, 16, 15}}, {Shape{1, 2056, 1, 2}, 0, false}};
    for (const NormCase& c : cases) {
        const Shape channels{c.shape[1]};
        for (DType dtype : {DType::Float32, DType::BFloat16, DType::Float16}) {
            // Rounded to the dtype first: the host's float64 run sees the values the GPU sees.
            auto rounded = [&](const Tensor& t) { return t.to(dtype).to(DType::Float64); };
            const Tensor x =
                rounded(random_tensor(c.shape, rng) + Tensor::full(Shape{}, c.mean_offset, DType::Float64));
            const Tensor dy = rounded(random_tensor(c.shape, rng));
            const Tensor w = rounded(Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64));
            const Tensor b = rounded(random_tensor(channels, rng));
            const Tensor rm = rounded(random_tensor(channels, rng));
            const Tensor rv = rounded(Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64));
            for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
                if (format == MemoryFormat::Contiguous && !c.contiguous_too) continue;
                for (bool training : {true, false}) {
                    SCOPED_TRACE(c.shape.to_string() + " " + dtype_name(dtype) + " " + memory_format_name(format) +
                                 (training ? " training" : " eval"));
                    auto run = [&](DType run_dtype, Device device, MemoryFormat run_format) {
                        Tensor lx = x.to(run_dtype).to(device).to(run_format).detach().set_requires_grad();
                        Tensor lw = w.to(run_dtype).to(device).detach().set_requires_grad();
                        Tensor lb = b.to(run_dtype).to(device).detach().set_requires_grad();
                        Tensor lrm = rm.to(run_dtype).to(device).clone();
                        Tensor lrv = rv.to(run_dtype).to(device).clone();
                        const Tensor y = batch_norm(lx, lw, lb, lrm, lrv, training, 0.2);
                        y.backward(dy.to(run_dtype).to(device).to(run_format));
                        return std::vector<Tensor>{y, lrm, lrv, lx.grad(), lw.grad(), lb.grad()};
                    };
                    const std::vector<Tensor> host = run(DType::Float64, Device::host(), MemoryFormat::Contiguous);
                    reset_layout_conversions();
                    const std::vector<Tensor> gpu = run(dtype, Device::cuda(), format);
                    EXPECT_EQ(layout_conversions(), 0U) << "the op or its backward converted a layout";
                    EXPECT_EQ(gpu[0].memory_format(), format);
                    EXPECT_EQ(gpu[3].memory_format(), format) << "dx";
                    const char* names[] = {"y", "running_mean", "running_var", "dx", "dweight", "dbias"};
                    const double tolerance = dtype == DType::BFloat16  ? kBfloat16VsFloat64Tolerance
                                             : dtype == DType::Float16 ? kFloat16VsFloat64Tolerance
                                                                       : kCudaStrictFloat32Tolerance;
                    for (std::size_t i = 0; i < host.size(); ++i) {
                        EXPECT_EQ(gpu[i].dtype(), dtype) << names[i];
                        EXPECT_LT(relative_error(gpu[i], host[i]), tolerance) << names[i];
                    }
                }
            }
        }
    }
}

// An empty spatial dim in evaluation (training needs values): nothing to normalize, and the
// weight and bias gradients are sums over nothing, zeros; the reductions must not divide by the
// empty run (they did, a floating-point exception on the emulated device).
TEST_F(CudaBatchNorm, AnEmptySpatialDimGivesZeroParameterGradients) {
    for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
        for (DType dtype : {DType::Float32, DType::BFloat16}) {
            SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + memory_format_name(format));
            Tensor x = Tensor::zeros(Shape{2, 8, 0, 4}, dtype, Device::cuda()).to(format).set_requires_grad();
            Tensor w = Tensor::full(Shape{8}, 2.0, dtype, Device::cuda()).set_requires_grad();
            Tensor b = Tensor::full(Shape{8}, 1.0, dtype, Device::cuda()).set_requires_grad();
            Tensor rm = Tensor::zeros(Shape{8}, dtype, Device::cuda());
            Tensor rv = Tensor::full(Shape{8}, 1.0, dtype, Device::cuda());
            const Tensor y = batch_norm(x, w, b, rm, rv, /*training=*/false);
            EXPECT_EQ(y.shape(), x.shape());
            y.backward(Tensor::zeros(y.shape(), dtype, Device::cuda()).to(format));
            EXPECT_EQ(w.grad().to(Device::host()).to_vector(), std::vector<double>(8, 0.0));
            EXPECT_EQ(b.grad().to(Device::host()).to_vector(), std::vector<double>(8, 0.0));
        }
    }
}

// The per-element passes fall back to single elements where a buffer is not aligned to a
// 16-byte pack, whatever the geometry allows: here x, dy and the outputs start one element into
// their allocations, with channels and positions multiples of 8.
TEST_F(CudaBatchNorm, PerElementPassesOnBuffersOffTheirPackAlignmentMatchTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    const Shape shape{2, 8, 16};
    const detail::BatchNormGeometry g = geometry_of(shape);
    const Shape channels{g.channels};
    const Shape one_more{g.count() + 1};
    const double eps = 1e-5;
    for (DType dtype : {DType::Float32, DType::BFloat16}) {
        SCOPED_TRACE(dtype_name(dtype));
        const Tensor x = random_tensor(one_more, rng).to(dtype).to(DType::Float64);
        const Tensor dy = random_tensor(one_more, rng).to(dtype).to(DType::Float64);
        const Tensor w = Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64).to(dtype).to(DType::Float64);
        const Tensor mean = random_tensor(channels, rng);
        const Tensor var = Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64);
        const Tensor sums = random_tensor(channels, rng);
        const std::size_t element = dtype_size(dtype);
        auto shifted = [&](const Tensor& t) { return static_cast<char*>(t.raw_data()) + element; };
        auto shifted64 = [&](const Tensor& t) { return static_cast<char*>(t.raw_data()) + sizeof(double); };
        Tensor y = Tensor::empty(shape, DType::Float64);
        detail::batch_norm_forward_host(g, DType::Float64, shifted64(x), mean.data<double>(), var.data<double>(),
                                        w.raw_data(), nullptr, eps, y.raw_data());
        Tensor dx = Tensor::empty(shape, DType::Float64);
        detail::batch_norm_backward_input_host(g, DType::Float64, shifted64(dy), shifted64(x), mean.data<double>(),
                                               var.data<double>(), w.raw_data(), sums.data<double>(),
                                               sums.data<double>(), eps, true, dx.raw_data());
        const Device gpu = Device::cuda();
        const Tensor xd = x.to(dtype).to(gpu), dyd = dy.to(dtype).to(gpu), wd = w.to(dtype).to(gpu);
        const Tensor meand = mean.to(gpu), vard = var.to(gpu), sumsd = sums.to(gpu);
        Tensor gy = nan_tensor(one_more, dtype, gpu);
        kernels::batch_norm_forward(g, dtype, shifted(xd), meand.data<double>(), vard.data<double>(), wd.raw_data(),
                                    nullptr, eps, shifted(gy), current_stream(0));
        Tensor gdx = nan_tensor(one_more, dtype, gpu);
        kernels::batch_norm_backward_input(g, dtype, shifted(dyd), shifted(xd), meand.data<double>(),
                                           vard.data<double>(), wd.raw_data(), sumsd.data<double>(),
                                           sumsd.data<double>(), eps, true, shifted(gdx), current_stream(0));
        const double tolerance = dtype == DType::BFloat16 ? kBfloat16VsFloat64Tolerance : kCudaStrictFloat32Tolerance;
        EXPECT_LT(relative_error(slice(gy, 0, 1, g.count() + 1).reshape(shape), y), tolerance) << "forward";
        EXPECT_LT(relative_error(slice(gdx, 0, 1, g.count() + 1).reshape(shape), dx), tolerance) << "backward";
    }
}

// batch_norm_relu on CUDA is one fused op (one autograd node) whose results and gradients are
// the composition relu(batch_norm(...)) computed on the host in float64, for every float dtype,
// both layouts, training and evaluation; a shape whose per-element passes move packs, one that
// does not. Inputs around the mean make about half the outputs negative, so the ReLU's mask
// matters in every pass.
TEST_F(CudaBatchNorm, FusedReluEqualsTheCompositionOnTheHost) {
    CONVKIT_SEEDED_RNG(rng);
    for (const Shape& shape : {Shape{2, 16, 8, 6}, Shape{3, 5, 7, 9}, Shape{4, 6, 10}}) {
        const Shape channels{shape[1]};
        for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
            auto rounded = [&](const Tensor& t) { return t.to(dtype).to(DType::Float64); };
            const Tensor x = rounded(random_tensor(shape, rng));
            const Tensor dy = rounded(random_tensor(shape, rng));
            const Tensor w = rounded(Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64));
            const Tensor b = rounded(Tensor::uniform(channels, -0.5, 0.5, rng(), DType::Float64));
            const Tensor rm = rounded(Tensor::uniform(channels, -0.5, 0.5, rng(), DType::Float64));
            const Tensor rv = rounded(Tensor::uniform(channels, 0.5, 2, rng(), DType::Float64));
            for (MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
                for (bool training : {true, false}) {
                    SCOPED_TRACE(shape.to_string() + " " + dtype_name(dtype) + " " + memory_format_name(format) +
                                 (training ? " training" : " eval"));
                    auto run = [&](DType run_dtype, Device device, MemoryFormat run_format, bool fused) {
                        Tensor lx = x.to(run_dtype).to(device).to(run_format).detach().set_requires_grad();
                        Tensor lw = w.to(run_dtype).to(device).detach().set_requires_grad();
                        Tensor lb = b.to(run_dtype).to(device).detach().set_requires_grad();
                        Tensor lrm = rm.to(run_dtype).to(device).clone();
                        Tensor lrv = rv.to(run_dtype).to(device).clone();
                        const Tensor y = fused ? batch_norm_relu(lx, lw, lb, lrm, lrv, training, 0.2)
                                               : relu(batch_norm(lx, lw, lb, lrm, lrv, training, 0.2));
                        y.backward(dy.to(run_dtype).to(device).to(run_format));
                        return std::vector<Tensor>{y, lrm, lrv, lx.grad(), lw.grad(), lb.grad()};
                    };
                    const std::vector<Tensor> host =
                        run(DType::Float64, Device::host(), MemoryFormat::Contiguous, false);
                    const std::vector<Tensor> gpu = run(dtype, Device::cuda(), format, true);
                    EXPECT_EQ(gpu[0].grad_fn_name().find("_relu"), gpu[0].grad_fn_name().size() - 5)
                        << "one fused node, got " << gpu[0].grad_fn_name();
                    const double tolerance = dtype == DType::BFloat16  ? kBfloat16VsFloat64Tolerance
                                             : dtype == DType::Float16 ? kFloat16VsFloat64Tolerance
                                             : dtype == DType::Float32 ? kCudaStrictFloat32Tolerance
                                                                       : kCudaFloat64ReductionTolerance;
                    const char* names[] = {"y", "running_mean", "running_var", "dx", "dweight", "dbias"};
                    for (std::size_t i = 0; i < host.size(); ++i) {
                        EXPECT_LT(relative_error(gpu[i], host[i]), tolerance) << names[i];
                    }
                }
            }
        }
    }
}

// In a Sequential a BatchNorm followed by a ReLU runs as batch_norm_relu: one fused node on CUDA,
// for images and for BatchNorm1d on [N, C] features alike, with the host's values.
TEST_F(CudaBatchNorm, SequentialRunsBatchNormAndReluAsOneFusedNode) {
    const struct {
        std::shared_ptr<nn::Module> norm;
        Shape shape;
        const char* node;
    } cases[] = {{std::make_shared<nn::BatchNorm2d>(4), Shape{2, 4, 3, 3}, "batch_norm2d_relu"},
                 {std::make_shared<nn::BatchNorm1d>(6), Shape{8, 6}, "batch_norm1d_relu"}};
    for (const auto& c : cases) {
        SCOPED_TRACE(c.node);
        nn::Sequential block(std::vector<std::shared_ptr<nn::Module>>{c.norm, std::make_shared<nn::ReLU>()});
        const Tensor x = Tensor::normal(c.shape, 0.0, 1.0, 5, DType::Float32);
        const Tensor expected = block(x);  // on the host: the composition
        block.to(Device::cuda());
        const Tensor y = block(x.to(Device::cuda()).detach().set_requires_grad());
        EXPECT_EQ(y.grad_fn_name(), c.node);
        EXPECT_LT(relative_error(y.to(Device::host()), expected), kCudaStrictFloat32Tolerance);
    }
}

}  // namespace
}  // namespace convkit
