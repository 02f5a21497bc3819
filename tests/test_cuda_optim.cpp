// The fused CUDA optimizer step (one multi-tensor launch per dtype) against the host loop
// (label gpu): SGD, Adam and AdamW in their variants over 130 parameters of odd sizes, one of
// them past 2^16 elements and one empty, for several steps in which some parameters have no
// gradient. Each step changes every element of every stepped parameter, so an element the
// kernel missed keeps its old value and fails the comparison.
//
// Tolerance: the kernel runs the host's per-element code (optim/optimizer_math.h) in the same
// order and is built without multiply-add contraction (--fmad=false), with IEEE division and
// square root, so it should agree bit for bit; the tests allow float64 1e-12 and float32 1e-6
// relative (norm-wise, per tensor) rather than depend on that.
#include <functional>
#include <memory>

#include "convkit/convkit.h"
#include "kernels/optimizer.h"
#include "test_util.h"
#include "tolerances.h"

namespace convkit {
namespace {
using namespace convkit::testing;


using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(const std::vector<Tensor>&)>;

struct Config {
    std::string name;
    MakeOptimizer make;
};

std::vector<Config> configs() {
    using optim::AdamOptions;
    using optim::AdamWOptions;
    using optim::SGDOptions;
    return {
        {"sgd", [](const auto& p) { return std::make_unique<optim::SGD>(p, SGDOptions{.lr = 0.1}); }},
        {"sgd_momentum_dampening_decay",
         [](const auto& p) {
             return std::make_unique<optim::SGD>(
                 p, SGDOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.01});
         }},
        {"sgd_nesterov_maximize",
         [](const auto& p) {
             return std::make_unique<optim::SGD>(
                 p, SGDOptions{.lr = 0.05, .momentum = 0.8, .nesterov = true, .maximize = true});
         }},
        {"adam_l2_amsgrad",
         [](const auto& p) {
             return std::make_unique<optim::Adam>(
                 p, AdamOptions{.lr = 0.01, .beta2 = 0.5, .weight_decay = 0.1, .amsgrad = true});
         }},
        {"adamw_maximize",
         [](const auto& p) {
             return std::make_unique<optim::AdamW>(p, AdamWOptions{.lr = 0.01, .weight_decay = 0.05, .maximize = true});
         }},
    };
}

// 130 shapes: random ranks and odd sizes, plus one past 2^16 elements, one empty, one scalar.
std::vector<Shape> many_odd_shapes(std::mt19937_64& rng) {
    std::vector<Shape> shapes = {Shape{(1 << 16) + 37}, Shape{0}, Shape{}, Shape{3, 5, 7, 9}};
    while (shapes.size() < 130) {
        const int rank = static_cast<int>(pick(rng, 1, 4));
        std::vector<std::int64_t> dims;
        for (int d = 0; d < rank; ++d) dims.push_back(2 * pick(rng, 0, rank == 1 ? 1500 : 6) + 1);
        shapes.push_back(Shape(dims));
    }
    return shapes;
}

class CudaOptim : public WithCuda<> {};

TEST_F(CudaOptim, FusedStepMatchesTheHostLoop) {
    CONVKIT_SEEDED_RNG(rng);
    const std::vector<Shape> shapes = many_odd_shapes(rng);
    for (const DType dtype : {DType::Float32, DType::Float64}) {
        for (const Config& config : configs()) {
            SCOPED_TRACE(config.name + " " + dtype_name(dtype));
            std::vector<Tensor> host;
            std::vector<Tensor> cuda;
            for (const Shape& shape : shapes) {
                const Tensor p = Tensor::uniform(shape, -1, 1, rng(), dtype);
                host.push_back(p.clone().set_requires_grad());
                cuda.push_back(p.to(Device::cuda()).set_requires_grad());
            }
            const auto host_opt = config.make(host);
            const auto cuda_opt = config.make(cuda);
            const std::uint64_t launches = kernels::multi_tensor_update_launches();
            for (int step = 0; step < 4; ++step) {
                for (std::size_t i = 0; i < shapes.size(); ++i) {
                    if ((i + static_cast<std::size_t>(step)) % 5 == 0) {  // skipped this step
                        host[i].clear_grad();
                        cuda[i].clear_grad();
                        continue;
                    }
                    const Tensor g = Tensor::uniform(shapes[i], -1, 1, rng(), dtype);
                    host[i].set_grad(g);
                    cuda[i].set_grad(g.to(Device::cuda()));
                }
                host_opt->step();
                cuda_opt->step();
            }
            // One launch per step for all 130 parameters of the dtype.
            EXPECT_EQ(kernels::multi_tensor_update_launches() - launches, 4u);
            const double tolerance = dtype == DType::Float64 ? testing::kFloat64Tolerance : testing::kFloat32VsFloat64Tolerance;
            for (std::size_t i = 0; i < shapes.size(); ++i) {
                EXPECT_LT(relative_error(cuda[i], host[i]), tolerance)
                    << "parameter " << i << " " << shapes[i].to_string();
            }
            const auto host_state = host_opt->state_dict();
            const auto cuda_state = cuda_opt->state_dict();
            ASSERT_EQ(host_state.size(), cuda_state.size());
            for (const auto& [key, value] : host_state) {
                EXPECT_LT(relative_error(cuda_state.at(key), value), tolerance) << key;
            }
        }
    }
}

TEST_F(CudaOptim, MixedDtypesTakeOneLaunchEach) {
    CONVKIT_SEEDED_RNG(rng);
    std::vector<Tensor> host;
    std::vector<Tensor> cuda;
    for (int i = 0; i < 101; ++i) {
        const DType dtype = i % 2 == 0 ? DType::Float32 : DType::Float64;
        const Tensor p = Tensor::uniform(Shape{2 * pick(rng, 1, 400) + 1}, -1, 1, rng(), dtype);
        host.push_back(p.clone().set_requires_grad());
        cuda.push_back(p.to(Device::cuda()).set_requires_grad());
        const Tensor g = Tensor::uniform(p.shape(), -1, 1, rng(), dtype);
        host.back().set_grad(g);
        cuda.back().set_grad(g.to(Device::cuda()));
    }
    optim::Adam host_opt(host, {.lr = 0.01});
    optim::Adam cuda_opt(cuda, {.lr = 0.01});
    const std::uint64_t launches = kernels::multi_tensor_update_launches();
    host_opt.step();
    cuda_opt.step();
    EXPECT_EQ(kernels::multi_tensor_update_launches() - launches, 2u);
    for (std::size_t i = 0; i < host.size(); ++i) {
        const double tolerance = host[i].dtype() == DType::Float64 ? testing::kFloat64Tolerance : testing::kFloat32VsFloat64Tolerance;
        EXPECT_LT(relative_error(cuda[i], host[i]), tolerance) << "parameter " << i;
    }
}

// bfloat16/float16 parameters on the device: their float32 master weights join the float32
// parameters' table, so a step is still one launch; the masters follow the host's, and each
// parameter is its master rounded once.
TEST_F(CudaOptim, SixteenBitParametersJoinTheFloat32LaunchThroughMasterWeights) {
    CONVKIT_SEEDED_RNG(rng);
    std::vector<Tensor> host;
    std::vector<Tensor> cuda;
    const DType dtypes[] = {DType::Float32, DType::BFloat16, DType::Float16};
    for (int i = 0; i < 30; ++i) {
        const DType dtype = dtypes[i % 3];
        const Tensor p = Tensor::uniform(Shape{2 * pick(rng, 1, 400) + 1}, -1, 1, rng(), dtype);
        host.push_back(p.clone().set_requires_grad());
        cuda.push_back(p.to(Device::cuda()).set_requires_grad());
    }
    optim::Adam host_opt(host, {.lr = 0.01});
    optim::Adam cuda_opt(cuda, {.lr = 0.01});
    for (int step = 0; step < 3; ++step) {
        for (std::size_t i = 0; i < host.size(); ++i) {
            const Tensor g = Tensor::uniform(host[i].shape(), -1, 1, rng(), host[i].dtype());
            host[i].set_grad(g);
            cuda[i].set_grad(g.to(Device::cuda()));
        }
        const std::uint64_t launches = kernels::multi_tensor_update_launches();
        host_opt.step();
        cuda_opt.step();
        EXPECT_EQ(kernels::multi_tensor_update_launches() - launches, 1u);
    }
    const auto host_state = host_opt.state_dict();
    const auto cuda_state = cuda_opt.state_dict();
    for (std::size_t i = 0; i < host.size(); ++i) {
        SCOPED_TRACE("parameter " + std::to_string(i) + " " + dtype_name(host[i].dtype()));
        ASSERT_EQ(cuda[i].dtype(), host[i].dtype());
        if (host[i].dtype() == DType::Float32) {
            EXPECT_LT(relative_error(cuda[i], host[i]), testing::kFloat32VsFloat64Tolerance);
            continue;
        }
        const std::string key = "state." + std::to_string(i) + ".master_weights";
        const Tensor& master = cuda_state.at(key);
        EXPECT_TRUE(master.device().is_cuda());
        EXPECT_EQ(master.dtype(), DType::Float32);
        EXPECT_LT(relative_error(master, host_state.at(key)), testing::kFloat32VsFloat64Tolerance);
        EXPECT_TRUE(exactly_equal(cuda[i], master.to(cuda[i].dtype())));
    }
}

TEST_F(CudaOptim, StateDictMovesBetweenDevices) {
    Tensor host_p = Tensor::full(Shape{7}, 0.5, DType::Float64).set_requires_grad();
    Tensor cuda_p = host_p.detach().to(Device::cuda()).set_requires_grad();
    optim::SGD host_opt({host_p}, {.lr = 0.1, .momentum = 0.9});
    optim::SGD cuda_opt({cuda_p}, {.lr = 0.3, .momentum = 0.5});
    host_p.set_grad(Tensor::full(Shape{7}, 1.0, DType::Float64));
    host_opt.step();
    cuda_opt.load_state_dict(host_opt.state_dict());  // host buffers land on the GPU
    EXPECT_TRUE(cuda_opt.state_dict().at("state.0.momentum_buffer").device().is_cuda());
    {
        NoGradGuard no_grad;
        cuda_p.copy_(host_p.detach());
    }
    cuda_p.set_grad(Tensor::full(Shape{7}, 1.0, DType::Float64, Device::cuda()));
    host_opt.step();
    cuda_opt.step();
    EXPECT_LT(relative_error(cuda_p, host_p), testing::kFloat64Tolerance);
}

TEST_F(CudaOptim, ParametersOnTwoDevicesAreRejected) {
    const Tensor host_p = Tensor::zeros(Shape{3}).set_requires_grad();
    const Tensor cuda_p = Tensor::zeros(Shape{3}, DType::Float32, Device::cuda()).set_requires_grad();
    try {
        optim::SGD({host_p, cuda_p}, {.lr = 0.1});
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find("SGD: parameter 1 is on cuda:0 but parameter 0 is on host"),
                  std::string::npos)
            << e.what();
    }
}

}  // namespace
}  // namespace convkit
