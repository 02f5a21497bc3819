// The optimizers' state: state_dict round trips (identical subsequent steps), the documented
// keys, dtype conversion and load errors that name the key and change nothing; 16-bit
// parameters with float32 master weights (the float32 trajectory rounded once, bit-identical
// resumption). tests/test_optim.cpp has the trajectories, schedules and rules of step.

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "backend_api/multi_tensor.h"
#include "convkit/convkit.h"
#include "optim_scenario.h"
#include "optim_test_support.h"
#include "temp_dir.h"
#include "test_util.h"

namespace convkit {
namespace {
using namespace convkit::testing;

// ---- state_dict ---------------------------------------------------------------------------------

std::vector<std::pair<std::string, MakeOptimizer>> optimizers_with_state() {
    return {
        {"sgd_nesterov",
         [](const std::vector<Tensor>& p) {
             return std::make_unique<optim::SGD>(p, optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
         }},
        {"adam_amsgrad",
         [](const std::vector<Tensor>& p) {
             return std::make_unique<optim::Adam>(p,
                                                  optim::AdamOptions{.lr = 0.05, .weight_decay = 0.1, .amsgrad = true});
         }},
        {"adamw",
         [](const std::vector<Tensor>& p) {
             return std::make_unique<optim::AdamW>(p, optim::AdamWOptions{.lr = 0.05, .beta1 = 0.8});
         }},
    };
}

std::map<std::string, Tensor> snapshot(const std::map<std::string, Tensor>& state) {
    std::map<std::string, Tensor> copy;
    for (const auto& [key, value] : state) copy.emplace(key, value.clone());
    return copy;
}

// A run and its resumed copy: the same parameters and the same state, bit for bit.
void expect_identical_runs(const std::vector<Tensor>& a, const optim::Optimizer& original, const std::vector<Tensor>& b,
                           const optim::Optimizer& resumed) {
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(exactly_equal(a[i], b[i])) << "parameter " << i;
    const auto final_a = original.state_dict();
    const auto final_b = resumed.state_dict();
    ASSERT_EQ(final_a.size(), final_b.size());
    for (const auto& [key, value] : final_a) EXPECT_TRUE(exactly_equal(value, final_b.at(key))) << key;
}

TEST(OptimizerStateDict, RoundTripGivesIdenticalSubsequentSteps) {
    for (const auto& [name, make] : optimizers_with_state()) {
        SCOPED_TRACE(name);
        CONVKIT_SEEDED_RNG(rng);
        const std::vector<Shape> shapes = {Shape{3}, Shape{2, 5}, Shape{1}};
        std::vector<Tensor> a;
        for (const Shape& s : shapes) a.push_back(parameter(s, rng()));
        auto original = make(a);
        std::vector<std::vector<std::uint64_t>> gradient_seeds(7);
        for (auto& seeds : gradient_seeds) {
            for (std::size_t i = 0; i < shapes.size(); ++i) seeds.push_back(rng());
        }
        const auto set_grads = [&](std::vector<Tensor>& params, const std::vector<std::uint64_t>& seeds) {
            for (std::size_t i = 0; i < params.size(); ++i) {
                // Parameter 2 misses a step, so the Adam steps counts differ between parameters.
                if (i == 2 && seeds == gradient_seeds[1]) {
                    params[i].clear_grad();
                } else {
                    params[i].set_grad(Tensor::uniform(params[i].shape(), -1, 1, seeds[i], DType::Float64));
                }
            }
        };
        for (int step = 0; step < 4; ++step) {
            set_grads(a, gradient_seeds[static_cast<std::size_t>(step)]);
            original->step();
        }
        const auto saved = snapshot(original->state_dict());
        // A new optimizer over copies of the parameters, with other hyperparameters: loading
        // restores them all.
        std::vector<Tensor> b;
        for (const Tensor& p : a) b.push_back(p.detach().clone().set_requires_grad());
        auto resumed = make(b);
        resumed->set_learning_rate(123);
        resumed->load_state_dict(saved);
        EXPECT_EQ(resumed->learning_rate(), original->learning_rate());
        for (int step = 4; step < 7; ++step) {
            set_grads(a, gradient_seeds[static_cast<std::size_t>(step)]);
            set_grads(b, gradient_seeds[static_cast<std::size_t>(step)]);
            original->step();
            resumed->step();
        }
        expect_identical_runs(a, *original, b, *resumed);
    }
}

// ---- 16-bit parameters: float32 master weights ----

// Every optimizer with state, plus plain SGD (whose only state is then the master weights).
std::vector<std::pair<std::string, MakeOptimizer>> optimizers_for_master_weights() {
    auto makers = optimizers_with_state();
    makers.emplace_back("sgd_plain", [](const std::vector<Tensor>& p) {
        return std::make_unique<optim::SGD>(p, optim::SGDOptions{.lr = 0.05});
    });
    return makers;
}

// Parameters of `dtype` holding values exactly representable in bfloat16 and float16, so a
// float32 copy starts from the same values.
std::vector<Tensor> sixteen_bit_exact_parameters(DType dtype, std::uint64_t seed) {
    std::vector<Tensor> params;
    for (const Shape& s : {Shape{3}, Shape{2, 5}}) {
        params.push_back(
            Tensor::uniform(s, -1, 1, seed++, DType::Float32).to(DType::BFloat16).to(dtype).set_requires_grad());
    }
    return params;
}

void set_sixteen_bit_grads(std::vector<Tensor>& params, std::uint64_t seed) {
    for (Tensor& p : params) {
        // Gradients rounded to bfloat16 first: the float32 run gets the very same values.
        p.set_grad(Tensor::uniform(p.shape(), -1, 1, seed++, DType::Float32).to(DType::BFloat16).to(p.dtype()));
    }
}

// A 16-bit parameter's optimizer runs the float32 trajectory on its master weights: after every
// step the parameter is the float32 run's parameter rounded once, bit for bit, and the master
// weights are the float32 parameter itself. Updating the 16-bit values directly would lose the
// steps smaller than half an ulp (most of them, at lr 0.05 on values near 1) and fail this.
TEST(OptimizerMasterWeights, SixteenBitParametersFollowTheFloat32TrajectoryRoundedOnce) {
    for (DType d : {DType::BFloat16, DType::Float16}) {
        for (const auto& [name, make] : optimizers_for_master_weights()) {
            SCOPED_TRACE(name + " " + dtype_name(d));
            std::vector<Tensor> half = sixteen_bit_exact_parameters(d, 11);
            std::vector<Tensor> single = sixteen_bit_exact_parameters(DType::Float32, 11);
            auto half_opt = make(half);
            auto single_opt = make(single);
            for (std::uint64_t step = 0; step < 6; ++step) {
                set_sixteen_bit_grads(half, 100 + 10 * step);
                set_sixteen_bit_grads(single, 100 + 10 * step);
                half_opt->step();
                single_opt->step();
                for (std::size_t i = 0; i < half.size(); ++i) {
                    ASSERT_EQ(half[i].dtype(), d);
                    ASSERT_TRUE(exactly_equal(half[i], single[i].to(d))) << "step " << step << " parameter " << i;
                }
            }
            const auto state = half_opt->state_dict();
            const auto single_state = single_opt->state_dict();
            for (std::size_t i = 0; i < half.size(); ++i) {
                const Tensor& master = state.at("state." + std::to_string(i) + ".master_weights");
                EXPECT_EQ(master.dtype(), DType::Float32);
                EXPECT_TRUE(exactly_equal(master, single[i])) << "parameter " << i;
                // The 16-bit parameter is not where the update happened: they differ somewhere.
                EXPECT_FALSE(exactly_equal(master, half[i].to(DType::Float32))) << "parameter " << i;
            }
            for (const auto& [key, value] : single_state) {
                if (key.rfind("state.", 0) != 0) continue;
                if (!key.ends_with(".step")) {
                    EXPECT_EQ(value.dtype(), DType::Float32) << key;  // moments too
                }
                EXPECT_TRUE(exactly_equal(state.at(key), value)) << key;
            }
            EXPECT_EQ(state.size(), single_state.size() + half.size());
        }
    }
}

// A checkpoint of a 16-bit run (the model's 16-bit parameters and the optimizer's state_dict)
// resumes bit-identically: the master weights are in the state, so the low bits the parameters
// lost to rounding are not lost.
TEST(OptimizerMasterWeights, CheckpointResumesBitIdentically) {
    for (DType d : {DType::BFloat16, DType::Float16}) {
        for (const auto& [name, make] : optimizers_for_master_weights()) {
            SCOPED_TRACE(name + " " + dtype_name(d));
            std::vector<Tensor> a = sixteen_bit_exact_parameters(d, 21);
            auto original = make(a);
            for (std::uint64_t step = 0; step < 3; ++step) {
                set_sixteen_bit_grads(a, 200 + 10 * step);
                original->step();
            }
            const auto saved = snapshot(original->state_dict());
            const auto copies = [&] {
                std::vector<Tensor> params;
                for (const Tensor& p : a) params.push_back(p.detach().clone().set_requires_grad());
                return params;
            };
            std::vector<Tensor> b = copies();
            std::vector<Tensor> without_masters = copies();
            auto resumed = make(b);
            resumed->load_state_dict(saved);
            // The same state less the master weights, where the state still loads (plain SGD's
            // parameters then count as never stepped): that run restarts its masters from the
            // rounded parameters and must drift, or this test could not tell.
            auto missing = saved;
            for (std::size_t i = 0; i < a.size(); ++i) missing.erase("state." + std::to_string(i) + ".master_weights");
            auto restarted = make(without_masters);
            const bool loads_without_masters = name == "sgd_plain";
            if (loads_without_masters) {
                restarted->load_state_dict(missing);
            } else {
                const std::string message = message_of<InvalidArgument>([&] { restarted->load_state_dict(missing); });
                EXPECT_NE(message.find("missing key 'state.0.master_weights'"), std::string::npos) << message;
            }
            for (std::uint64_t step = 3; step < 6; ++step) {
                set_sixteen_bit_grads(a, 200 + 10 * step);
                set_sixteen_bit_grads(b, 200 + 10 * step);
                set_sixteen_bit_grads(without_masters, 200 + 10 * step);
                original->step();
                resumed->step();
                restarted->step();
            }
            expect_identical_runs(a, *original, b, *resumed);
            if (loads_without_masters) {
                EXPECT_FALSE(exactly_equal(a[1], without_masters[1]));
            }
        }
    }
}

// A 16-bit parameter stepped without momentum has state (master weights) but no momentum
// buffer: a dict that turns momentum on loads, and the next step makes the buffer.
TEST(OptimizerMasterWeights, SgdStateWithMastersButNoMomentumBufferLoadsWithMomentum) {
    Tensor p = Tensor::full(Shape{3}, 0.5, DType::BFloat16).set_requires_grad();
    optim::SGD plain({p}, {.lr = 0.1});
    p.set_grad(Tensor::full(Shape{3}, 1.0, DType::BFloat16));
    plain.step();
    auto state = snapshot(plain.state_dict());
    state["param_groups.0.momentum"] = Tensor::full(Shape{}, 0.9, DType::Float64);
    optim::SGD with_momentum({p}, {.lr = 0.1});
    with_momentum.load_state_dict(state);
    EXPECT_EQ(with_momentum.options().momentum, 0.9);
    with_momentum.step();
    EXPECT_EQ(with_momentum.state_dict().at("state.0.momentum_buffer").dtype(), DType::Float32);
    EXPECT_EQ(with_momentum.state_dict().at("state.0.master_weights").item(0), 0.5f - 0.1f - 0.1f);
}

TEST(OptimizerStateDict, KeysAreNamedAsDocumented) {
    Tensor p = parameter(Shape{2}, 3);
    optim::Adam adam({p, parameter(Shape{1}, 4)}, {.amsgrad = true});
    p.set_grad(Tensor::full(Shape{2}, 1.0, DType::Float64));
    adam.step();
    adam.step();
    std::vector<std::string> keys;
    for (const auto& [key, value] : adam.state_dict()) {
        keys.push_back(key);
        if (key.rfind("param_groups.", 0) == 0 || key.ends_with(".step")) {
            EXPECT_EQ(value.rank(), 0) << key;
            EXPECT_EQ(value.dtype(), DType::Float64) << key;
        }
    }
    EXPECT_EQ(keys, (std::vector<std::string>{"param_groups.0.amsgrad", "param_groups.0.beta1", "param_groups.0.beta2",
                                              "param_groups.0.eps", "param_groups.0.lr", "param_groups.0.maximize",
                                              "param_groups.0.weight_decay", "state.0.exp_avg", "state.0.exp_avg_sq",
                                              "state.0.max_exp_avg_sq", "state.0.step"}));
    EXPECT_EQ(adam.state_dict().at("state.0.step").item(0), 2);
    optim::SGD sgd({p}, {.lr = 0.1, .momentum = 0.5});
    sgd.step();
    std::vector<std::string> sgd_keys;
    for (const auto& [key, value] : sgd.state_dict()) sgd_keys.push_back(key);
    EXPECT_EQ(sgd_keys,
              (std::vector<std::string>{"param_groups.0.dampening", "param_groups.0.lr", "param_groups.0.maximize",
                                        "param_groups.0.momentum", "param_groups.0.nesterov",
                                        "param_groups.0.weight_decay", "state.0.momentum_buffer"}));
}

TEST(OptimizerStateDict, LoadConvertsDtypeAndNeverAliases) {
    Tensor p = parameter(Shape{3}, 5);
    optim::SGD opt({p}, {.lr = 0.1, .momentum = 0.9});
    auto state = opt.state_dict();
    Tensor buffer32 = Tensor::full(Shape{3}, 0.5, DType::Float32);
    state["state.0.momentum_buffer"] = buffer32;
    opt.load_state_dict(state);
    const Tensor loaded = opt.state_dict().at("state.0.momentum_buffer");
    EXPECT_EQ(loaded.dtype(), DType::Float64);
    EXPECT_EQ(loaded.to_vector(), (std::vector<double>{0.5, 0.5, 0.5}));
    buffer32.fill_(7);  // the caller's tensor stays the caller's
    EXPECT_EQ(opt.state_dict().at("state.0.momentum_buffer").item(0), 0.5);
}

TEST(OptimizerStateDict, LoadErrorsNameTheKeyAndChangeNothing) {
    Tensor p = parameter(Shape{3}, 5);
    Tensor q = parameter(Shape{2}, 6);
    optim::Adam adam({p, q}, {.lr = 0.01, .amsgrad = true});
    p.set_grad(Tensor::full(Shape{3}, 1.0, DType::Float64));
    adam.step();
    const auto good = snapshot(adam.state_dict());
    const auto before = snapshot(adam.state_dict());

    const auto expect_error = [&](const std::function<void(std::map<std::string, Tensor>&)>& edit,
                                  const std::string& message) {
        auto state = snapshot(good);
        edit(state);
        try {
            adam.load_state_dict(state);
            ADD_FAILURE() << "expected InvalidArgument containing: " << message;
        } catch (const InvalidArgument& e) {
            EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
        }
        // Nothing changed.
        const auto now = adam.state_dict();
        ASSERT_EQ(now.size(), before.size());
        for (const auto& [key, value] : before) EXPECT_TRUE(exactly_equal(now.at(key), value)) << key;
    };
    expect_error([](auto& s) { s.erase("param_groups.0.lr"); },
                 "Adam::load_state_dict: missing key 'param_groups.0.lr'");
    expect_error([](auto& s) { s.erase("state.0.exp_avg_sq"); }, "missing key 'state.0.exp_avg_sq'");
    expect_error([](auto& s) { s["state.0.momentum_buffer"] = Tensor::zeros(Shape{3}); },
                 "unexpected key 'state.0.momentum_buffer'");
    expect_error([](auto& s) { s["state.2.exp_avg"] = Tensor::zeros(Shape{3}); }, "unexpected key 'state.2.exp_avg'");
    expect_error([](auto& s) { s["state.0.exp_avg"] = Tensor::zeros(Shape{4}, DType::Float64); },
                 "key 'state.0.exp_avg' has shape [4] but parameter 0 has shape [3]");
    expect_error([](auto& s) { s["param_groups.0.lr"] = Tensor::zeros(Shape{1}, DType::Float64); },
                 "key 'param_groups.0.lr' must be a scalar (shape []), got shape [1]");
    expect_error([](auto& s) { s["param_groups.0.amsgrad"] = Tensor::full(Shape{}, 2.0, DType::Float64); },
                 "key 'param_groups.0.amsgrad' must be 0 or 1, got 2");
    expect_error([](auto& s) { s["state.0.step"] = Tensor::full(Shape{}, 1.5, DType::Float64); },
                 "key 'state.0.step' must be a non-negative integer, got 1.5");
    expect_error([](auto& s) { s["param_groups.0.beta1"] = Tensor::full(Shape{}, 1.0, DType::Float64); },
                 "invalid beta1 1");
    // Hyperparameters and counts are float64 scalars, as state_dict writes them: a float32 lr would
    // have lost its value already (0.01 is not a float32), a bfloat16 step count 257.
    expect_error([](auto& s) { s["param_groups.0.lr"] = Tensor::full(Shape{}, 0.01, DType::Float32); },
                 "key 'param_groups.0.lr' must be a float64 scalar, got float32");
    expect_error([](auto& s) { s["state.0.step"] = Tensor::full(Shape{}, 256.0, DType::BFloat16); },
                 "key 'state.0.step' must be a float64 scalar, got bfloat16");
    // Without amsgrad, the max_exp_avg_sq buffer is one key too many.
    expect_error([](auto& s) { s["param_groups.0.amsgrad"] = Tensor::full(Shape{}, 0.0, DType::Float64); },
                 "unexpected key 'state.0.max_exp_avg_sq'");
    // An SGD state dict is not an Adam one.
    optim::SGD sgd({p, q}, {.lr = 0.1});
    expect_error([&](auto& s) { s = sgd.state_dict(); }, "missing key 'param_groups.0.beta1'");
}

}  // namespace
}  // namespace convkit
