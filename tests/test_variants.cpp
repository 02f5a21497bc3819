// The variant registry and its selection policy, through a toy variant registered by the test
// executable itself (tests/toy_variant.cpp): listed, chosen when named (API and environment),
// refused with its reason, measured among the supporters, cached in memory and in a file; and
// autograd running the backward with the variants chosen at forward time.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "backend_api/selection.h"
#include "backend_api/workspace_pieces.h"
#include "convkit/convkit.h"
#include "temp_dir.h"
#include "test_util.h"
#include "tolerances.h"
#include "toy_variant.h"

namespace convkit {
namespace {

using testing::toy_variant_delay_ms;
using testing::toy_variant_runs;

const ConvParams kPointwise = ConvParams(2);                       // 1x1: the toy runs it
const ConvParams kPadded = ConvParams(2).set_padding(1);           // 3x3 padded: the toy refuses
const Shape kInput{2, 3, 5, 4};
const Shape kPointwiseWeight{4, 3, 1, 1};
const Shape kPaddedWeight{4, 3, 3, 3};

// Every test starts from the default policy and leaves it so.
class Variants : public ::testing::Test {
protected:
    void SetUp() override {
        clear_measured_variants();
        toy_variant_delay_ms = 0;
    }
    void TearDown() override {
        toy_variant_delay_ms = 0;
        set_variant_cache_file("");
        clear_measured_variants();
    }
    VariantGuard guard_;
};

Tensor reference_conv(const Tensor& x, const Tensor& w, const Tensor& b, const ConvParams& p) {
    BackendGuard reference(Backend::Host);
    VariantGuard none;
    set_conv_variant("");
    return conv_forward(x, w, b, p);
}

TEST_F(Variants, EveryBackendAndTheToyAreListedPerPass) {
    const std::vector<VariantInfo> list = registered_variants();
    const auto listed = [&](const char* family, const char* pass, const char* name) {
        for (const VariantInfo& v : list) {
            if (v.family == family && v.pass == pass && v.name == name) return true;
        }
        return false;
    };
    for (const char* pass : {"forward", "backward_data", "backward_filter", "backward_bias"}) {
        EXPECT_TRUE(listed("conv", pass, "host.reference")) << pass;
        EXPECT_TRUE(listed("conv", pass, "cuda.direct")) << pass;
    }
    for (const char* pass : {"forward", "backward"}) {
        EXPECT_TRUE(listed("pool", pass, "host.reference")) << pass;
        EXPECT_TRUE(listed("pool", pass, "cuda.direct")) << pass;
    }
    EXPECT_TRUE(listed("conv", "forward", "test.toy"));
    EXPECT_FALSE(listed("conv", "backward_data", "test.toy")) << "the toy implements the forward only";
}

TEST_F(Variants, NamedThroughTheApiTheToyRunsAndAgreesWithTheReference) {
    const Tensor x = testing::small_integer_tensor(kInput, 1, 3, DType::Float32);
    const Tensor w = testing::small_integer_tensor(kPointwiseWeight, 2, 3, DType::Float32);
    const Tensor b = testing::small_integer_tensor(Shape{4}, 3, 3, DType::Float32);
    const Tensor expected = reference_conv(x, w, b, kPointwise);
    set_conv_variant(ConvPass::Forward, "test.toy");
    EXPECT_EQ(conv_variant(ConvPass::Forward, DeviceType::Host), "test.toy");
    EXPECT_EQ(conv_variant(ConvPass::Forward, DeviceType::CUDA), "") << "a host variant names the host slot only";
    const int before = toy_variant_runs;
    const Tensor y = conv_forward(x, w, b, kPointwise);
    EXPECT_EQ(toy_variant_runs - before, 1);
    EXPECT_TRUE(testing::exactly_equal(y, expected));
}

TEST_F(Variants, NamedThroughTheEnvironmentTheToyRuns) {
    const Tensor x = testing::small_integer_tensor(kInput, 4, 3, DType::Float64);
    const Tensor w = testing::small_integer_tensor(kPointwiseWeight, 5, 3, DType::Float64);
    ASSERT_EQ(setenv("CONVKIT_CONV_FORWARD_VARIANT", "test.toy", 1), 0);
    // The environment is read when a thread first asks: a new thread.
    int runs = -1;
    std::string named;
    std::thread([&] {
        named = conv_variant(ConvPass::Forward, DeviceType::Host);
        const int before = toy_variant_runs;
        conv_forward(x, w, Tensor(), kPointwise);
        runs = toy_variant_runs - before;
    }).join();
    unsetenv("CONVKIT_CONV_FORWARD_VARIANT");
    EXPECT_EQ(named, "test.toy");
    EXPECT_EQ(runs, 1);
}

// last_conv_variant / last_pool_variant name what ran the thread's most recent pass of the family:
// the named toy, then host.reference named for the next pass; another thread has its own; pooling
// apart.
TEST_F(Variants, TheLastVariantIsTheOneThatRanTheThreadsMostRecentPass) {
    const Tensor x = testing::small_integer_tensor(kInput, 11, 3, DType::Float32);
    const Tensor w = testing::small_integer_tensor(kPointwiseWeight, 12, 3, DType::Float32);
    set_conv_variant(ConvPass::Forward, "test.toy");
    conv_forward(x, w, Tensor(), kPointwise);
    EXPECT_EQ(last_conv_variant(), "test.toy");
    set_conv_variant(ConvPass::BackwardData, "host.reference");
    conv_backward_data(conv_forward(x, w, Tensor(), kPointwise), w, kInput, kPointwise);
    EXPECT_EQ(last_conv_variant(), "host.reference");
    std::string other = "unset";
    std::thread([&] { other = last_conv_variant(); }).join();
    EXPECT_EQ(other, "");
    set_pool_variant("host.reference");
    max_pool_forward(x, PoolParams(2, 2));
    EXPECT_EQ(last_pool_variant(), "host.reference");
    EXPECT_EQ(last_conv_variant(), "host.reference");
}

TEST_F(Variants, AnUnknownNameIsAnInvalidArgumentListingTheRegisteredOnes) {
    try {
        set_conv_variant("no.such.variant");
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("no.such.variant"), std::string::npos) << what;
        EXPECT_NE(what.find("test.toy"), std::string::npos) << what;
    }
}

TEST_F(Variants, ANamedVariantThatCannotRunTheProblemIsNotSupportedWithItsReason) {
    const Tensor x = testing::small_integer_tensor(kInput, 6, 3, DType::Float32);
    const Tensor w = testing::small_integer_tensor(kPaddedWeight, 7, 3, DType::Float32);
    set_conv_variant("test.toy");
    const int before = toy_variant_runs;
    try {
        conv_forward(x, w, Tensor(), kPadded);
        FAIL() << "expected NotSupported";
    } catch (const NotSupported& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("conv2d"), std::string::npos) << what;
        EXPECT_NE(what.find("test.toy"), std::string::npos) << what;
        EXPECT_NE(what.find("runs 1x1 convolutions only"), std::string::npos) << what;
    }
    // A pass it does not implement is refused too, never run elsewhere.
    const Tensor dy = testing::small_integer_tensor(Shape{2, 4, 5, 4}, 8, 3, DType::Float32);
    const Tensor w1 = testing::small_integer_tensor(kPointwiseWeight, 9, 3, DType::Float32);
    EXPECT_THROW(conv_backward_data(dy, w1, kInput, kPointwise), NotSupported);
    EXPECT_EQ(toy_variant_runs, before);
}

TEST_F(Variants, MeasuredSelectionPicksAFastSupporterAndCachesIt) {
    set_variant_selection(VariantSelection::Measured);
    const Tensor x = testing::small_integer_tensor(kInput, 10, 3, DType::Float64);
    const Tensor w3 = testing::small_integer_tensor(kPaddedWeight, 11, 3, DType::Float64);
    const Tensor w1 = testing::small_integer_tensor(kPointwiseWeight, 12, 3, DType::Float64);

    // The toy does not support the padded problem: it is never timed there.
    int before = toy_variant_runs;
    const Tensor y3 = conv_forward(x, w3, Tensor(), kPadded);
    EXPECT_EQ(toy_variant_runs, before);
    EXPECT_TRUE(testing::exactly_equal(y3, reference_conv(x, w3, Tensor(), kPadded)));

    // On the pointwise problem the toy is timed (a warm-up run and three timed runs, the median
    // counting) and, 50 ms slower per run than a 2x3x5x4 convolution needs, loses.
    toy_variant_delay_ms = 50;
    before = toy_variant_runs;
    const Tensor y1 = conv_forward(x, w1, Tensor(), kPointwise);
    EXPECT_EQ(toy_variant_runs - before, 4);
    EXPECT_TRUE(testing::exactly_equal(y1, reference_conv(x, w1, Tensor(), kPointwise)));

    // Measured once per problem: later calls run the winner without timing anyone.
    before = toy_variant_runs;
    conv_forward(x, w1, Tensor(), kPointwise);
    EXPECT_EQ(toy_variant_runs, before);
}

TEST_F(Variants, MeasuredWinnersAreKeptInTheCacheFile) {
    testing::TempDir dir;
    const std::string file = dir.path() + "/variants.txt";
    set_variant_cache_file(file);
    EXPECT_EQ(variant_cache_file(), file);
    set_variant_selection(VariantSelection::Measured);
    const Tensor x = testing::small_integer_tensor(kInput, 13, 3, DType::Float32);
    const Tensor w = testing::small_integer_tensor(kPointwiseWeight, 14, 3, DType::Float32);
    conv_forward(x, w, Tensor(), kPointwise);

    std::ifstream in(file);
    std::string line;
    ASSERT_TRUE(std::getline(in, line)) << "no entry written";
    const std::string winner = line.substr(line.rfind(' ') + 1);
    EXPECT_TRUE(winner == "host.reference" || winner == "host.blas" || winner == "test.toy") << line;

    // A new process (here: memory cleared, file read again) runs the file's winner without
    // measuring: the toy runs once if it won, else not at all.
    clear_measured_variants();
    set_variant_cache_file(file);
    const int before = toy_variant_runs;
    conv_forward(x, w, Tensor(), kPointwise);
    EXPECT_EQ(toy_variant_runs - before, winner == "test.toy" ? 1 : 0);
}

TEST_F(Variants, BackwardRunsTheVariantsChosenAtForwardTime) {
    const Tensor x = testing::small_integer_tensor(kInput, 15, 3, DType::Float64).set_requires_grad(true);
    const Tensor w = testing::small_integer_tensor(kPointwiseWeight, 16, 3, DType::Float64).set_requires_grad(true);
    set_conv_variant("host.reference");
    const Tensor y = conv_forward(x, w, Tensor(), kPointwise);
    // Naming the toy for every pass now would refuse the backward passes (it implements none);
    // the backward must not look again.
    set_conv_variant("test.toy");
    EXPECT_NO_THROW(sum(y).backward());
    ASSERT_TRUE(x.grad().defined());
    ASSERT_TRUE(w.grad().defined());
    set_conv_variant("");
    const Tensor ones_dy = Tensor::full(y.shape(), 1.0, DType::Float64);
    EXPECT_TRUE(testing::exactly_equal(x.grad(), conv_backward_data(ones_dy, w.detach(), kInput, kPointwise)));
}

TEST_F(Variants, TheDefaultFollowsTheThreadsBackend) {
    const detail::ConvProblem problem =
        detail::conv_problem(detail::conv_geometry("conv2d", kInput, kPaddedWeight, kPadded), DType::Float32,
                             Device::host());
    {
        BackendGuard g(Backend::Host);
        EXPECT_STREQ(detail::choose_variant("conv2d", problem, ConvPass::Forward).variant->name(),
                     "host.reference");
    }
#ifdef CONVKIT_WITH_OPENBLAS
    {
        BackendGuard g(Backend::HostBlas);
        EXPECT_STREQ(detail::choose_variant("conv2d", problem, ConvPass::Forward).variant->name(), "host.blas");
    }
#endif
    EXPECT_EQ(problem.math, default_math_mode());
    EXPECT_EQ(problem.deterministic, deterministic_mode());
}

// A variant's run() takes its workspace in pieces, rounded to 256 bytes as workspace() adds them
// up; a piece that would end past the workspace given is an Error, not an overrun.
TEST(WorkspacePieces, TakesRoundedPiecesAndRefusesOnePastTheEnd) {
    alignas(256) static char buffer[532];
    detail::WorkspacePieces pieces(detail::WorkspaceView{buffer, sizeof(buffer)});
    EXPECT_EQ(pieces.take(0), nullptr);
    EXPECT_EQ(pieces.take(1), buffer);
    EXPECT_EQ(pieces.take(256), buffer + 256);
    EXPECT_THROW(pieces.take(21), Error);      // would end at 533
    EXPECT_EQ(pieces.take(20), buffer + 512);  // the last piece need not fill its rounding
    EXPECT_THROW(pieces.take(1), Error);
}

}  // namespace
}  // namespace convkit
