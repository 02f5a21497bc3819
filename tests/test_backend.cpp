// Backend selection: names, the two per-thread slots (host tensors, CUDA tensors), the guard,
// and CONVKIT_HOST_BACKEND / CONVKIT_BACKEND.
#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <thread>

#include "test_util.h"

namespace convkit {
namespace {

#ifdef CONVKIT_WITH_OPENBLAS
constexpr Backend kBuildDefaultHostBackend = Backend::HostBlas;
#else
constexpr Backend kBuildDefaultHostBackend = Backend::Host;
#endif

// Sets an environment variable for a scope (unset when value is null) and restores it after.
class ScopedEnvironment {
public:
    ScopedEnvironment(const char* name, const char* value) : name_(name) {
        if (const char* saved = std::getenv(name)) saved_ = saved;
        set(value);
    }
    ~ScopedEnvironment() { set(saved_ ? saved_->c_str() : nullptr); }
    ScopedEnvironment(const ScopedEnvironment&) = delete;
    ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

private:
    void set(const char* value) {
        if (value != nullptr) {
            ::setenv(name_, value, 1);
        } else {
            ::unsetenv(name_);
        }
    }
    const char* name_;
    std::optional<std::string> saved_;
};

// What a new thread, which reads the environment afresh, sees; nullopt when it threw InvalidArgument.
std::optional<Backend> seen_by_new_thread(Backend (*query)()) {
    std::optional<Backend> seen;
    std::thread([&] {
        try {
            seen = query();
        } catch (const InvalidArgument&) {
            seen.reset();
        }
    }).join();
    return seen;
}

TEST(Backend, NamesRoundTrip) {
    for (Backend b : {Backend::Host, Backend::HostBlas, Backend::Cuda, Backend::Cudnn}) {
        EXPECT_EQ(parse_backend(backend_name(b)), b);
    }
    EXPECT_STREQ(backend_name(Backend::HostBlas), "host-blas");
    EXPECT_TRUE(is_host_backend(Backend::Host));
    EXPECT_TRUE(is_host_backend(Backend::HostBlas));
    EXPECT_FALSE(is_host_backend(Backend::Cuda));
    EXPECT_FALSE(is_host_backend(Backend::Cudnn));
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
        EXPECT_STREQ(e.what(), "backend: unknown backend 'cudnn9' (choose host, host-blas, cuda or cudnn)");
    }
}

// Each kind of backend has its own slot: setting one leaves the other alone.
TEST(Backend, HostAndGpuSlotsAreSeparate) {
    const Backend host_before = default_host_backend();
    const Backend gpu_before = default_backend();
    set_default_backend(Backend::Host);
    EXPECT_EQ(default_host_backend(), Backend::Host);
    EXPECT_EQ(default_backend(), gpu_before);
    set_default_backend(Backend::Cudnn);
    EXPECT_EQ(default_backend(), Backend::Cudnn);
    EXPECT_EQ(default_host_backend(), Backend::Host);
    set_default_host_backend(Backend::HostBlas);
    EXPECT_EQ(default_host_backend(), Backend::HostBlas);
    EXPECT_EQ(default_backend(), Backend::Cudnn);
    try {
        set_default_host_backend(Backend::Cuda);
        FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
        EXPECT_STREQ(e.what(), "set_default_host_backend: cuda is not a host backend (choose host or host-blas)");
    }
    set_default_backend(host_before);
    set_default_backend(gpu_before);
    EXPECT_EQ(default_host_backend(), host_before);
    EXPECT_EQ(default_backend(), gpu_before);
}

TEST(Backend, GuardSetsAndRestoresTheSlotOfItsKind) {
    const Backend host_before = default_host_backend();
    const Backend gpu_before = default_backend();
    {
        BackendGuard guard(Backend::Host);
        EXPECT_EQ(default_host_backend(), Backend::Host);
        EXPECT_EQ(default_backend(), gpu_before);
        {
            BackendGuard inner(Backend::Cudnn);
            EXPECT_EQ(default_backend(), Backend::Cudnn);
            EXPECT_EQ(default_host_backend(), Backend::Host);
        }
        EXPECT_EQ(default_backend(), gpu_before);
        // Another thread is not affected.
        const char* env = std::getenv("CONVKIT_HOST_BACKEND");
        EXPECT_EQ(seen_by_new_thread(default_host_backend), env ? parse_backend(env) : kBuildDefaultHostBackend);
    }
    EXPECT_EQ(default_host_backend(), host_before);
    EXPECT_EQ(default_backend(), gpu_before);
}

TEST(Backend, EnvironmentSetsTheHostSlotOfNewThreads) {
    {
        ScopedEnvironment env("CONVKIT_HOST_BACKEND", nullptr);
        EXPECT_EQ(seen_by_new_thread(default_host_backend), kBuildDefaultHostBackend);
    }
    {
        ScopedEnvironment env("CONVKIT_HOST_BACKEND", "host");
        EXPECT_EQ(seen_by_new_thread(default_host_backend), Backend::Host);
    }
    {
        ScopedEnvironment env("CONVKIT_HOST_BACKEND", "host-blas");
        EXPECT_EQ(seen_by_new_thread(default_host_backend), Backend::HostBlas);
    }
    for (const char* wrong : {"cuda", "tpu"}) {
        ScopedEnvironment env("CONVKIT_HOST_BACKEND", wrong);
        EXPECT_EQ(seen_by_new_thread(default_host_backend), std::nullopt) << wrong;
    }
}

TEST(Backend, EnvironmentSetsTheGpuSlotOfNewThreads) {
    {
        ScopedEnvironment env("CONVKIT_BACKEND", nullptr);
        EXPECT_EQ(seen_by_new_thread(default_backend), Backend::Cuda);
    }
    {
        ScopedEnvironment env("CONVKIT_BACKEND", "cudnn");
        EXPECT_EQ(seen_by_new_thread(default_backend), Backend::Cudnn);
    }
    // A host backend names the other slot: CONVKIT_BACKEND refuses it rather than guess.
    for (const char* wrong : {"host", "host-blas", "tpu"}) {
        ScopedEnvironment env("CONVKIT_BACKEND", wrong);
        EXPECT_EQ(seen_by_new_thread(default_backend), std::nullopt) << wrong;
    }
    ScopedEnvironment env("CONVKIT_BACKEND", "host");
    std::thread([] {
        try {
            default_backend();
            ADD_FAILURE() << "expected InvalidArgument";
        } catch (const InvalidArgument& e) {
            EXPECT_STREQ(e.what(),
                         "CONVKIT_BACKEND: 'host' is not a GPU backend (choose cuda or cudnn; CONVKIT_HOST_BACKEND "
                         "chooses the host backend)");
        }
    }).join();
}

TEST(Backend, HostTensorsRunOnTheHostWhateverTheGpuBackend) {
    BackendGuard guard(Backend::Cudnn);
    const Tensor y = conv_forward(Tensor::full(Shape{1, 1, 3, 3}, 1.0), Tensor::full(Shape{1, 1, 3, 3}, 1.0),
                                  ConvParams(2));
    EXPECT_TRUE(y.device().is_host());
    EXPECT_EQ(y.item(0), 9.0);
}

// Which host backend ran is visible in float32: the reference sums in double and rounds once,
// so every element is the float64 result correctly rounded; OpenBLAS sums in float32, which
// over 512-term sums misses the correct rounding somewhere among 1,600 outputs.
TEST(Backend, TheHostSlotChoosesTheImplementation) {
    CONVKIT_SEEDED_RNG(rng);
    const Tensor x = testing::random_tensor(Shape{4, 512, 20, 20}, rng).to(DType::Float32);
    const Tensor w = testing::random_tensor(Shape{1, 512, 1, 1}, rng).to(DType::Float32);
    const Tensor exact = [&] {
        BackendGuard reference(Backend::Host);  // the same double sums as the float32 reference
        return conv_forward(x.to(DType::Float64), w.to(DType::Float64), ConvParams(2));
    }();
    const auto count_correctly_rounded = [&](Backend backend) {
        BackendGuard guard(backend);
        const std::vector<double> y = conv_forward(x, w, ConvParams(2)).to_vector();
        const std::vector<double> e = exact.to_vector();
        std::size_t count = 0;
        for (std::size_t i = 0; i < y.size(); ++i) count += y[i] == static_cast<double>(static_cast<float>(e[i]));
        return count;
    };
    const auto outputs = static_cast<std::size_t>(exact.numel());
    ASSERT_EQ(count_correctly_rounded(Backend::Host), outputs);
#ifdef CONVKIT_WITH_OPENBLAS
    EXPECT_LT(count_correctly_rounded(Backend::HostBlas), outputs);
#else
    BackendGuard guard(Backend::HostBlas);
    EXPECT_THROW(conv_forward(x, w, ConvParams(2)), NotSupported);
#endif
}

}  // namespace
}  // namespace convkit
