// optim::GradScaler: dynamic loss scaling for float16 (label host). Gradients that underflow in
// float16 survive scaling and the update equals the float32 one; an overflowed step is skipped
// with the scale lowered; the scale grows after its interval; disabled, it passes through.
// Its state: the state_dict keys, a float16 run resumed from a training checkpoint continuing bit
// for bit, and every refusal of load_state_dict naming its key and changing nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "temp_dir.h"
#include "test_util.h"

namespace convkit {
namespace {

// loss = factor x sum(w * x), the sum in w's dtype and the loss in float32 (as a training step
// computes it from widened logits): its gradient is factor x x.
Tensor weighted_loss(const Tensor& w, const std::vector<double>& x, double factor) {
    const Tensor xs = Tensor::from_vector(Shape{static_cast<std::int64_t>(x.size())}, x).to(w.dtype());
    return sum(w * xs).to(DType::Float32) * factor;
}

TEST(GradScaler, GradientsThatUnderflowInFloat16SurviveAndTheUpdateIsTheFloat32One) {
    const std::vector<double> x{1.0, -2.0, 3.0, 0.5};
    constexpr double kFactor = 1e-8;  // gradients 5e-9 to 3e-8: below float16's smallest subnormal (6e-8) or near it
    const auto train = [&](bool scaled) {
        Tensor w = Tensor::from_vector(Shape{4}, std::vector<double>{0.25, 0.5, -0.75, 1.0}).to(DType::Float16).set_requires_grad();
        optim::SGD sgd({w}, {.lr = 1e6});
        optim::GradScaler scaler({.enabled = scaled});
        scaler.scale(weighted_loss(w, x, kFactor)).backward();
        EXPECT_TRUE(scaler.step(sgd));
        return sgd.state_dict().at("state.0.master_weights").to_vector();
    };
    const std::vector<double> with_scaling = train(true);
    const std::vector<double> without = train(false);
    const std::vector<double> start{0.25, 0.5, -0.75, 1.0};
    for (std::size_t i = 0; i < x.size(); ++i) {
        // w - lr * factor * x = w - 0.01 x, in float32 (the master weights).
        const double expected = start[i] - 1e6 * kFactor * x[i];
        EXPECT_NEAR(with_scaling[i], expected, 1e-3 * std::abs(1e6 * kFactor * x[i])) << i;
    }
    // Unscaled, the float16 gradients lost most of their value: the control that makes the
    // comparison above mean something.
    double lost = 0;
    for (std::size_t i = 0; i < x.size(); ++i) lost += std::abs(without[i] - with_scaling[i]);
    EXPECT_GT(lost, 1e-3);
}

TEST(GradScaler, AnOverflowedStepIsSkippedAndTheScaleBacksOff) {
    Tensor w = Tensor::from_vector(Shape{2}, std::vector<double>{1.0, 2.0}).to(DType::Float16).set_requires_grad();
    optim::Adam adam({w}, {.lr = 0.1});
    // 2^20 x a gradient of 100 overflows float16 (largest 65504).
    optim::GradScaler scaler({.init_scale = 1 << 20});
    scaler.scale(weighted_loss(w, {100.0, 100.0}, 1.0)).backward();
    EXPECT_FALSE(scaler.step(adam));
    EXPECT_EQ(scaler.current_scale(), 1 << 19);
    EXPECT_EQ(scaler.skipped_steps(), 1);
    EXPECT_EQ(w.to_vector(), (std::vector<double>{1.0, 2.0})) << "a skipped step changes nothing";
    EXPECT_EQ(adam.state_dict().count("state.0.exp_avg"), 0U) << "nor the optimizer's state";
    // Lowered until it fits: 2^19 x 100 still overflows, 2^9 x 100 does not.
    int skipped = 1;
    while (true) {
        adam.zero_grad();
        scaler.scale(weighted_loss(w, {100.0, 100.0}, 1.0)).backward();
        if (scaler.step(adam)) break;
        ++skipped;
        ASSERT_LT(skipped, 30);
    }
    EXPECT_LE(scaler.current_scale() * 100, 65504);
    EXPECT_NE(w.to_vector(), (std::vector<double>{1.0, 2.0}));
}

// The optimizer reads each gradient divided by the scale in float32: finite scaled gradients that
// a small scale would blow past float32's range skip the step (they would write inf into the
// weights). A run of non-finite steps lowers the scale to float32's smallest normal number and no
// further (halving would reach 0 after about a thousand, from which no growth returns), and it
// grows back from there.
TEST(GradScaler, AScaleTooSmallForTheGradientsSkipsAndTheScaleNeverReachesZero) {
    Tensor w = Tensor::from_vector(Shape{1}, std::vector<double>{1.0}).to(DType::Float32).set_requires_grad();
    optim::SGD sgd({w}, {.lr = 1.0});
    optim::GradScaler scaler({.init_scale = 1e-30, .growth_interval = 1});
    // d(1e30 x w x 1e10 x 1e-30)/dw = 1e10 scaled, 1e40 unscaled: past float32's 3.4e38.
    scaler.scale(weighted_loss(w, {1e10}, 1e30)).backward();
    EXPECT_FALSE(scaler.step(sgd));
    EXPECT_EQ(w.to_vector(), (std::vector<double>{1.0}));
    EXPECT_EQ(scaler.current_scale(), 0.5e-30);
    for (int step = 0; step < 200; ++step) {
        sgd.zero_grad();
        scaler.scale(weighted_loss(w, {std::numeric_limits<double>::quiet_NaN()}, 1.0)).backward();
        ASSERT_FALSE(scaler.step(sgd)) << step;
    }
    EXPECT_EQ(scaler.current_scale(), static_cast<double>(std::numeric_limits<float>::min()));
    EXPECT_EQ(scaler.skipped_steps(), 201);
    EXPECT_EQ(w.to_vector(), (std::vector<double>{1.0}));
    // A good step at the floor: gradient 1 (scaled 2^-126, exact), w = 1 - 1; the scale doubles.
    sgd.zero_grad();
    scaler.scale(weighted_loss(w, {1.0}, 1.0)).backward();
    EXPECT_TRUE(scaler.step(sgd));
    EXPECT_EQ(w.to_vector(), (std::vector<double>{0.0}));
    EXPECT_EQ(scaler.current_scale(), 2.0 * std::numeric_limits<float>::min());
}

TEST(GradScaler, TheScaleGrowsAfterItsIntervalAndBadOptionsAreRefused) {
    Tensor w = Tensor::from_vector(Shape{1}, std::vector<double>{1.0}).set_requires_grad();
    optim::SGD sgd({w}, {.lr = 0.1});
    optim::GradScaler scaler({.init_scale = 4, .growth_interval = 3});
    for (int step = 1; step <= 6; ++step) {
        sgd.zero_grad();
        scaler.scale(weighted_loss(w, {1.0}, 1.0)).backward();
        ASSERT_TRUE(scaler.step(sgd));
        EXPECT_EQ(scaler.current_scale(), step < 3 ? 4 : step < 6 ? 8 : 16) << "after step " << step;
    }
    // float32 parameter: unscaled exactly, so six steps of lr 0.1 x gradient 1.
    EXPECT_NEAR(w.item(0), 1.0 - 0.6, 1e-6);
    EXPECT_THROW(optim::GradScaler({.init_scale = 0}), InvalidArgument);
    EXPECT_THROW(optim::GradScaler({.growth_factor = 1}), InvalidArgument);
    EXPECT_THROW(optim::GradScaler({.backoff_factor = 1}), InvalidArgument);
    EXPECT_THROW(optim::GradScaler({.growth_interval = 0}), InvalidArgument);
    EXPECT_THROW(sgd.step_with_gradients_divided_by(0), InvalidArgument);
}

// ---- State ----------------------------------------------------------------------------------

using State = std::map<std::string, Tensor>;
using testing::exactly_equal;
using testing::message_of;
using testing::TempDir;

// The dict's values, for comparing two scalers' states and printing a mismatch.
std::map<std::string, double> values_of(const State& state) {
    std::map<std::string, double> values;
    for (const auto& [key, t] : state) values[key] = t.item(0);
    return values;
}

State scalar_state(const std::map<std::string, double>& values) {
    State state;
    for (const auto& [key, v] : values) state[key] = Tensor::full(Shape{}, v, DType::Float64);
    return state;
}

// A scaler moved away from its defaults: one overflow (scale 2^15 -> 2^14, one skipped step),
// then one good step of an interval of 3 (growth tracker 1). (The float16 sum's own gradient is
// the scale, so it must stay below 65504.)
optim::GradScaler stepped_scaler() {
    Tensor w = Tensor::from_vector(Shape{2}, std::vector<double>{1.0, 2.0}).to(DType::Float16).set_requires_grad();
    optim::SGD sgd({w}, {.lr = 0.1});
    optim::GradScaler scaler({.init_scale = 1 << 15, .growth_interval = 3});
    for (const double gradient : {100.0, 1e-3}) {  // 2^15 x 100 overflows float16; 2^14 x 1e-3 does not
        sgd.zero_grad();
        scaler.scale(weighted_loss(w, {gradient, gradient}, 1.0)).backward();
        scaler.step(sgd);
    }
    return scaler;
}

TEST(GradScalerState, KeysValuesAndDtypesAreAsDocumented) {
    const optim::GradScaler scaler = stepped_scaler();
    const State state = scaler.state_dict();
    std::vector<std::string> keys;
    for (const auto& [key, t] : state) {
        keys.push_back(key);
        EXPECT_EQ(t.rank(), 0) << key;
        EXPECT_EQ(t.dtype(), DType::Float64) << key;
        EXPECT_TRUE(t.device().is_host()) << key;
    }
    EXPECT_EQ(keys, (std::vector<std::string>{"_growth_tracker", "backoff_factor", "growth_factor", "growth_interval",
                                              "scale", "skipped_steps"}));
    EXPECT_EQ(values_of(state), (std::map<std::string, double>{{"_growth_tracker", 1},
                                                               {"backoff_factor", 0.5},
                                                               {"growth_factor", 2},
                                                               {"growth_interval", 3},
                                                               {"scale", 1 << 14},
                                                               {"skipped_steps", 1}}));
}

// A dict loads into a scaler built with other options: the scale, counts and hyperparameters are
// the dict's (PyTorch's rule), init_scale and enabled the constructor's, and the next steps use
// the loaded backoff_factor, growth_interval and growth tracker.
TEST(GradScalerState, LoadReplacesScaleCountsAndHyperparameters) {
    optim::GradScaler scaler({.init_scale = 8, .growth_factor = 3, .backoff_factor = 0.75, .growth_interval = 100});
    scaler.load_state_dict(scalar_state({{"_growth_tracker", 3},
                                         {"backoff_factor", 0.25},
                                         {"growth_factor", 4},
                                         {"growth_interval", 5},
                                         {"scale", 1024},
                                         {"skipped_steps", 7}}));
    EXPECT_EQ(scaler.current_scale(), 1024);
    EXPECT_EQ(scaler.skipped_steps(), 7);
    const optim::GradScalerOptions o = scaler.options();
    EXPECT_EQ(o.growth_factor, 4);
    EXPECT_EQ(o.backoff_factor, 0.25);
    EXPECT_EQ(o.growth_interval, 5);
    EXPECT_EQ(o.init_scale, 8);
    EXPECT_TRUE(o.enabled);

    Tensor w = Tensor::from_vector(Shape{1}, std::vector<double>{1.0}).set_requires_grad();
    optim::SGD sgd({w}, {.lr = 0.1});
    const auto step = [&] {
        sgd.zero_grad();
        scaler.scale(weighted_loss(w, {1.0}, 1.0)).backward();
        return scaler.step(sgd);
    };
    // Two good steps complete the loaded interval (3 + 2 = 5): the scale grows by the loaded factor.
    EXPECT_TRUE(step());
    EXPECT_EQ(scaler.current_scale(), 1024);
    EXPECT_TRUE(step());
    EXPECT_EQ(scaler.current_scale(), 4096);
    // An overflow (a NaN gradient) backs off by the loaded factor and counts on from 7.
    sgd.zero_grad();
    scaler.scale(weighted_loss(w, {std::numeric_limits<double>::quiet_NaN()}, 1.0)).backward();
    EXPECT_FALSE(scaler.step(sgd));
    EXPECT_EQ(scaler.current_scale(), 1024);
    EXPECT_EQ(scaler.skipped_steps(), 8);
}

// Unlike PyTorch's (an empty dict, and a load that does nothing), a disabled scaler's dict has
// every key and loads: a checkpoint's layout does not depend on the precision. Loading never
// enables or disables a scaler.
TEST(GradScalerState, ADisabledScalerRoundTripsAndStaysDisabled) {
    const optim::GradScaler enabled = stepped_scaler();
    optim::GradScaler disabled({.init_scale = 32, .enabled = false});
    EXPECT_EQ(values_of(disabled.state_dict()), (std::map<std::string, double>{{"_growth_tracker", 0},
                                                                               {"backoff_factor", 0.5},
                                                                               {"growth_factor", 2},
                                                                               {"growth_interval", 2000},
                                                                               {"scale", 32},
                                                                               {"skipped_steps", 0}}));
    disabled.load_state_dict(enabled.state_dict());
    EXPECT_EQ(values_of(disabled.state_dict()), values_of(enabled.state_dict()));
    EXPECT_FALSE(disabled.options().enabled);
    const Tensor loss = Tensor::full(Shape{}, 3.0);
    EXPECT_EQ(disabled.scale(loss).item(0), 3.0) << "still a pass-through";

    optim::GradScaler other({.enabled = false});
    other.load_state_dict(disabled.state_dict());
    EXPECT_EQ(values_of(other.state_dict()), values_of(enabled.state_dict()));
    optim::GradScaler fresh;  // enabled, 2^16
    fresh.load_state_dict(optim::GradScaler({.init_scale = 32, .enabled = false}).state_dict());
    EXPECT_EQ(fresh.current_scale(), 32);
    EXPECT_TRUE(fresh.options().enabled);
    EXPECT_EQ(fresh.scale(loss).item(0), 96.0);
}

TEST(GradScalerState, LoadRefusesABadDictNamingTheKeyAndValueAndChangesNothing) {
    optim::GradScaler scaler = stepped_scaler();
    const std::map<std::string, double> before = values_of(scaler.state_dict());
    // Loadable, and different from `before` in every value: a load that assigned some of it
    // before refusing would show.
    const std::map<std::string, double> good{{"_growth_tracker", 2}, {"backoff_factor", 0.25}, {"growth_factor", 4},
                                             {"growth_interval", 5}, {"scale", 1024},          {"skipped_steps", 7}};
    const auto expect_refused = [&](const std::function<void(State&)>& edit, const std::string& message) {
        SCOPED_TRACE(message);
        State state = scalar_state(good);
        edit(state);
        const std::string what = message_of<InvalidArgument>([&] { scaler.load_state_dict(state); });
        EXPECT_NE(what.find("GradScaler::load_state_dict: " + message), std::string::npos) << what;
        EXPECT_EQ(values_of(scaler.state_dict()), before);
        EXPECT_EQ(scaler.options().growth_factor, 2);
        EXPECT_EQ(scaler.options().backoff_factor, 0.5);
        EXPECT_EQ(scaler.options().growth_interval, 3);
    };
    const auto set = [](const std::string& key, double value) {
        return [key, value](State& s) { s[key] = Tensor::full(Shape{}, value, DType::Float64); };
    };
    const double inf = std::numeric_limits<double>::infinity();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (const auto& [key, value] : good) {
        expect_refused([key = key](State& s) { s.erase(key); }, "missing key '" + key + "'");
    }
    expect_refused([](State& s) { s["enabled"] = Tensor::full(Shape{}, 1.0, DType::Float64); },
                   "unexpected key 'enabled'");
    expect_refused([](State& s) { s["scale"] = Tensor(); }, "key 'scale' holds an undefined tensor");
    expect_refused([](State& s) { s["scale"] = Tensor::full(Shape{1}, 1024.0, DType::Float64); },
                   "key 'scale' must be a scalar (shape []), got shape [1]");
    expect_refused([](State& s) { s["scale"] = Tensor::full(Shape{}, 1024.0, DType::Float32); },
                   "key 'scale' must be a float64 scalar, got float32");
    expect_refused([](State& s) { s["_growth_tracker"] = Tensor::full(Shape{}, 2.0, DType::Int64); },
                   "key '_growth_tracker' must be a float64 scalar, got int64");
    expect_refused([](State& s) { s["growth_factor"] = Tensor::full(Shape{}, 4.0, DType::Float16); },
                   "key 'growth_factor' must be a float64 scalar, got float16");
    expect_refused(set("scale", inf), "key 'scale' must be positive and finite, got inf");
    expect_refused(set("scale", nan), "key 'scale' must be positive and finite, got nan");
    expect_refused(set("scale", 0), "key 'scale' must be positive and finite, got 0");
    expect_refused(set("scale", -4), "key 'scale' must be positive and finite, got -4");
    expect_refused(set("growth_factor", 1), "key 'growth_factor' must be finite and above 1, got 1");
    expect_refused(set("growth_factor", inf), "key 'growth_factor' must be finite and above 1, got inf");
    expect_refused(set("growth_factor", nan), "key 'growth_factor' must be finite and above 1, got nan");
    expect_refused(set("backoff_factor", 1), "key 'backoff_factor' must be in (0, 1), got 1");
    expect_refused(set("backoff_factor", 0), "key 'backoff_factor' must be in (0, 1), got 0");
    expect_refused(set("backoff_factor", nan), "key 'backoff_factor' must be in (0, 1), got nan");
    expect_refused(set("growth_interval", 0), "key 'growth_interval' must be at least 1, got 0");
    expect_refused(set("growth_interval", -1), "key 'growth_interval' must be a non-negative integer, got -1");
    expect_refused(set("growth_interval", 2.5), "key 'growth_interval' must be a non-negative integer, got 2.5");
    expect_refused(set("_growth_tracker", -1), "key '_growth_tracker' must be a non-negative integer, got -1");
    expect_refused(set("_growth_tracker", 5), "key '_growth_tracker' must be below 'growth_interval' (5), got 5");
    expect_refused(set("skipped_steps", -1), "key 'skipped_steps' must be a non-negative integer, got -1");
    expect_refused(set("skipped_steps", 0.5), "key 'skipped_steps' must be a non-negative integer, got 0.5");
    expect_refused(set("skipped_steps", nan), "key 'skipped_steps' must be a non-negative integer, got nan");
    // An optimizer's dict is not a scaler's.
    Tensor w = Tensor::full(Shape{1}, 1.0).set_requires_grad();
    optim::SGD sgd({w}, {.lr = 0.1});
    expect_refused([&](State& s) { s = sgd.state_dict(); }, "missing key 'scale'");
    // The control: the good dict itself loads.
    scaler.load_state_dict(scalar_state(good));
    EXPECT_EQ(values_of(scaler.state_dict()), good);
}

// ---- Training checkpoints -----------------------------------------------------------------

// A small float16 CNN, its Adam and StepLR and a scaler that starts too high (the first steps
// overflow) and grows every 2 good steps, so the scale moves both ways within a few steps.
struct Float16Run {
    std::shared_ptr<nn::Sequential> model;
    std::unique_ptr<optim::Adam> adam;
    std::unique_ptr<optim::StepLR> schedule;
    std::unique_ptr<optim::GradScaler> scaler;
    std::vector<bool> stepped;  // step()'s results

    Float16Run(std::uint64_t seed, optim::GradScalerOptions scaler_options) {
        nn::init::manual_seed(seed);
        model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Conv2d>(1, 4, 3, ConvParams(2).set_padding(1)), std::make_shared<nn::ReLU>(),
            std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4 * 4 * 4, 3)});
        model->to(DType::Float16);
        adam = std::make_unique<optim::Adam>(model->parameters(), optim::AdamOptions{.lr = 1e-2});
        schedule = std::make_unique<optim::StepLR>(*adam, 4, 0.5);
        scaler = std::make_unique<optim::GradScaler>(scaler_options);
    }

    // Steps [first, last): the batches depend on the step's number only.
    void train(int first, int last) {
        for (int step = first; step < last; ++step) {
            const auto n = static_cast<std::uint64_t>(step);
            const Tensor x = Tensor::uniform(Shape{2, 1, 4, 4}, -1, 1, 3000 + n, DType::Float16);
            const Tensor target = Tensor::uniform(Shape{2, 3}, -1, 1, 4000 + n);
            adam->zero_grad();
            scaler->scale(mse_loss((*model)(x).to(DType::Float32), target)).backward();
            stepped.push_back(scaler->step(*adam));
            schedule->step();
        }
    }
};

constexpr optim::GradScalerOptions kOverflowingScaler{.init_scale = 1 << 22, .growth_interval = 2};

TEST(GradScalerCheckpoint, AFloat16RunResumesBitIdentically) {
    TempDir dir;
    const std::string path = dir.file("train.safetensors");
    constexpr int kSaveAt = 7;
    constexpr int kSteps = 16;
    Float16Run original(5, kOverflowingScaler);
    original.train(0, kSaveAt);
    // What makes the comparison below mean something: at the checkpoint the scale has left its
    // initial value, steps were skipped and the growth tracker is mid-interval.
    const std::map<std::string, double> saved = values_of(original.scaler->state_dict());
    ASSERT_NE(saved.at("scale"), kOverflowingScaler.init_scale);
    ASSERT_GT(saved.at("skipped_steps"), 0);
    ASSERT_EQ(saved.at("_growth_tracker"), 1);
    nn::save_training_checkpoint(path, *original.model, *original.adam, original.schedule.get(), *original.scaler,
                                 {{"step", std::to_string(kSaveAt)}});
    original.train(kSaveAt, kSteps);

    // Fresh objects, another seed and the default scaler options: all are overwritten.
    Float16Run resumed(6, {});
    std::map<std::string, std::string> metadata;
    nn::load_training_checkpoint(path, *resumed.model, *resumed.adam, resumed.schedule.get(), *resumed.scaler,
                                 &metadata);
    EXPECT_EQ(metadata.at("step"), std::to_string(kSaveAt));
    EXPECT_EQ(values_of(resumed.scaler->state_dict()), saved);
    resumed.train(kSaveAt, kSteps);

    // The continuation both grew the scale (the restored tracker and interval decide when) and
    // skipped a step after it (the restored count goes on).
    const std::vector<bool> tail(original.stepped.begin() + kSaveAt, original.stepped.end());
    EXPECT_EQ(resumed.stepped, tail);
    ASSERT_NE(std::count(tail.begin(), tail.end(), false), 0) << "no overflow after the checkpoint";
    EXPECT_EQ(resumed.scaler->current_scale(), original.scaler->current_scale());
    EXPECT_EQ(resumed.scaler->skipped_steps(), original.scaler->skipped_steps());
    EXPECT_EQ(values_of(resumed.scaler->state_dict()), values_of(original.scaler->state_dict()));
    for (const auto& [name, t] : original.model->state_dict()) {
        EXPECT_TRUE(exactly_equal(t, resumed.model->state_dict().at(name))) << name;
    }
    const State adam_state = original.adam->state_dict();
    for (const auto& [key, t] : resumed.adam->state_dict()) EXPECT_TRUE(exactly_equal(t, adam_state.at(key))) << key;
}

// Either overload refuses the other's file, and a failed load restores what it had loaded.
TEST(GradScalerCheckpoint, AMismatchedCheckpointIsRefusedAndChangesNothing) {
    TempDir dir;
    Float16Run run(5, kOverflowingScaler);
    run.train(0, 3);
    const std::string with_scaler = dir.file("with_scaler.safetensors");
    const std::string without_scaler = dir.file("without_scaler.safetensors");
    const std::string scaler_without_schedule = dir.file("scaler_without_schedule.safetensors");
    nn::save_training_checkpoint(with_scaler, *run.model, *run.adam, run.schedule.get(), *run.scaler);
    nn::save_training_checkpoint(without_scaler, *run.model, *run.adam, run.schedule.get());
    nn::save_training_checkpoint(scaler_without_schedule, *run.model, *run.adam, nullptr, *run.scaler);

    Float16Run other(6, {.init_scale = 256, .growth_interval = 7});
    other.train(0, 1);
    const State model_before = other.model->state_dict();
    std::map<std::string, Tensor> model_copy;
    for (const auto& [name, t] : model_before) model_copy[name] = t.clone();
    const std::map<std::string, double> scaler_before = values_of(other.scaler->state_dict());
    const double lr_before = other.adam->learning_rate();
    const std::map<std::string, double> schedule_before = values_of(other.schedule->state_dict());
    const auto expect_unchanged = [&] {
        for (const auto& [name, t] : other.model->state_dict())
            EXPECT_TRUE(exactly_equal(t, model_copy.at(name))) << name;
        EXPECT_EQ(values_of(other.scaler->state_dict()), scaler_before);
        EXPECT_EQ(other.adam->learning_rate(), lr_before);
        EXPECT_EQ(values_of(other.schedule->state_dict()), schedule_before);
    };

    EXPECT_NE(message_of<InvalidArgument>([&] {
                  nn::load_training_checkpoint(with_scaler, *other.model, *other.adam, other.schedule.get());
              }).find("unexpected tensor 'scaler._growth_tracker'"),
              std::string::npos);
    expect_unchanged();
    const std::string missing = message_of<InvalidArgument>([&] {
        nn::load_training_checkpoint(without_scaler, *other.model, *other.adam, other.schedule.get(), *other.scaler);
    });
    EXPECT_NE(missing.find("GradScaler::load_state_dict: missing key 'scale'"), std::string::npos) << missing;
    expect_unchanged();
    // The scaler loads, then the schedule finds nothing: the scaler is restored too.
    const std::string no_schedule = message_of<InvalidArgument>([&] {
        nn::load_training_checkpoint(scaler_without_schedule, *other.model, *other.adam, other.schedule.get(),
                                     *other.scaler);
    });
    EXPECT_NE(no_schedule.find("missing key 'last_epoch'"), std::string::npos) << no_schedule;
    expect_unchanged();
    // The control: the matching file loads.
    nn::load_training_checkpoint(with_scaler, *other.model, *other.adam, other.schedule.get(), *other.scaler);
    EXPECT_EQ(values_of(other.scaler->state_dict()), values_of(run.scaler->state_dict()));
}

}  // namespace
}  // namespace convkit
