// Backend selection: names, the per-thread default, the guard, and CONVKIT_BACKEND.
#include <cstdlib>
#include <thread>

#include "test_util.h"

namespace convkit {
namespace {

TEST(Backend, NamesRoundTrip) {
    for (Backend b : {Backend::Host, Backend::Cuda, Backend::Cudnn}) EXPECT_EQ(parse_backend(backend_name(b)), b);
    for (MathMode m : {MathMode::Strict, MathMode::AllowTF32}) EXPECT_EQ(parse_math_mode(math_mode_name(m)), m);
    for (AlgorithmSearch a : {AlgorithmSearch::Heuristic, AlgorithmSearch::Timed}) {
        EXPECT_EQ(parse_algorithm_search(algorithm_search_name(a)), a);
    }
    EXPECT_THROW(parse_math_mode("fp16"), InvalidArgument);
    EXPECT_THROW(parse_algorithm_search("exhaustive"), InvalidArgument);
    try {
        parse_backend("cudnn9");
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_STREQ(e.what(), "backend: unknown backend 'cudnn9' (choose host, cuda or cudnn)");
    }
}

TEST(Backend, GuardSetsAndRestoresThisThreadsDefault) {
    const Backend before = default_backend();
    {
        BackendGuard guard(Backend::Host);
        EXPECT_EQ(default_backend(), Backend::Host);
        // Another thread is not affected.
        Backend seen = Backend::Host;
        std::thread([&] { seen = default_backend(); }).join();
        EXPECT_EQ(seen, std::getenv("CONVKIT_BACKEND") ? parse_backend(std::getenv("CONVKIT_BACKEND")) : Backend::Cuda);
    }
    EXPECT_EQ(default_backend(), before);
}

TEST(Backend, EnvironmentSetsTheDefaultOfNewThreads) {
    const char* saved = std::getenv("CONVKIT_BACKEND");
    const std::string saved_value = saved ? saved : "";
    ::setenv("CONVKIT_BACKEND", "host", 1);
    Backend seen = Backend::Cuda;
    std::thread([&] { seen = default_backend(); }).join();
    EXPECT_EQ(seen, Backend::Host);
    ::setenv("CONVKIT_BACKEND", "tpu", 1);
    bool threw = false;
    std::thread([&] {
        try {
            default_backend();
        } catch (const InvalidArgument&) {
            threw = true;
        }
    }).join();
    EXPECT_TRUE(threw);
    if (saved) {
        ::setenv("CONVKIT_BACKEND", saved_value.c_str(), 1);
    } else {
        ::unsetenv("CONVKIT_BACKEND");
    }
}

TEST(Backend, HostTensorsRunOnTheHostWhateverTheDefault) {
    BackendGuard guard(Backend::Cuda);
    const Tensor y = conv_forward(Tensor::full(Shape{1, 1, 3, 3}, 1.0), Tensor::full(Shape{1, 1, 3, 3}, 1.0),
                                  ConvParams(2));
    EXPECT_TRUE(y.device().is_host());
    EXPECT_EQ(y.item(0), 9.0);
}

}  // namespace
}  // namespace convkit
