// Host-blas batch normalization (src/backends/host/batch_norm_parallel.cpp: OpenMP over
// channels, vectorised double sums) against the reference loops, through the public op and
// autograd: output, running statistics and the gradients of input, weight and bias, in training
// (batch statistics) and evaluation, with and without affine parameters, for [N, C] and 1-3
// spatial dims. Both compute in double and differ only in the order of the sums, so float64
// agrees to 1e-12 (times 1 + the mean, for the large-mean case) and float32 to kHostBlasFloat32Tolerance. One case has a mean of 1e4 and a
// spread of 1, where taking x - mean in float32 would be off by about 1e-3 (batch_norm_math.h).
#include <cstdint>
#include <string>
#include <vector>

#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {

#ifdef CONVKIT_WITH_OPENBLAS

struct BatchNormCase {
    std::string name;
    Shape input;
    double offset;  // added to every input: a large mean
};

struct BatchNormResult {
    Tensor y, dx, dweight, dbias, running_mean, running_var;
};

BatchNormResult run(Backend backend, const BatchNormCase& c, DType dtype, bool affine, bool training) {
    BackendGuard guard(backend);
    const std::int64_t channels = c.input[1];
    Tensor x = (Tensor::uniform(c.input, -1.0, 1.0, 11, DType::Float64) + c.offset).to(dtype).set_requires_grad();
    Tensor w = Tensor::uniform(Shape{channels}, 0.5, 1.5, 12, dtype).set_requires_grad();
    Tensor b = Tensor::uniform(Shape{channels}, -0.5, 0.5, 13, dtype).set_requires_grad();
    Tensor running_mean = Tensor::uniform(Shape{channels}, -0.1, 0.1, 14, dtype);
    Tensor running_var = Tensor::uniform(Shape{channels}, 0.5, 2.0, 15, dtype);
    const Tensor y = batch_norm(x, affine ? w : Tensor(), affine ? b : Tensor(), running_mean, running_var, training,
                                0.1, 1e-5);
    y.backward(Tensor::uniform(c.input, -1.0, 1.0, 16, dtype));
    return {y.detach(), x.grad(), affine ? w.grad() : Tensor(), affine ? b.grad() : Tensor(), running_mean,
            running_var};
}

class BatchNormParallel : public ::testing::TestWithParam<BatchNormCase> {};

TEST_P(BatchNormParallel, MatchesTheReference) {
    const BatchNormCase& c = GetParam();
    for (DType dtype : {DType::Float64, DType::Float32}) {
        // In float64 the sums' rounding is relative to |x| (1 + offset), the results to the spread (1).
        const double tolerance = dtype == DType::Float64 ? 1e-12 * (1 + c.offset) : testing::kHostBlasFloat32Tolerance;
        for (bool affine : {true, false}) {
            for (bool training : {true, false}) {
                SCOPED_TRACE(std::string(dtype_name(dtype)) + (affine ? " affine" : " plain") +
                             (training ? " training" : " eval"));
                const BatchNormResult fast = run(Backend::HostBlas, c, dtype, affine, training);
                const BatchNormResult expected = run(Backend::Host, c, dtype, affine, training);
                EXPECT_LT(testing::relative_error(fast.y, expected.y), tolerance);
                EXPECT_LT(testing::relative_error(fast.dx, expected.dx), tolerance);
                EXPECT_LT(testing::relative_error(fast.running_mean, expected.running_mean), tolerance);
                EXPECT_LT(testing::relative_error(fast.running_var, expected.running_var), tolerance);
                if (affine) {
                    EXPECT_LT(testing::relative_error(fast.dweight, expected.dweight), tolerance);
                    EXPECT_LT(testing::relative_error(fast.dbias, expected.dbias), tolerance);
                }
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormParallel,
                         ::testing::Values(BatchNormCase{"NC", Shape{9, 5}, 0.0},
                                           BatchNormCase{"NCL", Shape{3, 4, 7}, 0.0},
                                           BatchNormCase{"NCHW", Shape{4, 3, 5, 6}, 0.0},
                                           BatchNormCase{"NCDHW", Shape{2, 2, 2, 3, 4}, 0.0},
                                           BatchNormCase{"NCHW_mean_1e4", Shape{4, 3, 8, 8}, 1e4}),
                         [](const ::testing::TestParamInfo<BatchNormCase>& info) { return info.param.name; });

#endif

}  // namespace
}  // namespace convkit
