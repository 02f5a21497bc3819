// Tensors on the host: factories, fills, element access, copies, conversions, errors.
#include <dlfcn.h>

#include <cmath>
#include <numeric>

#include "test_util.h"

namespace convkit {
namespace {

TEST(Tensor, EmptyHasShapeDtypeAndDevice) {
    const Tensor t = Tensor::empty(Shape{2, 3, 4, 5}, DType::Float64);
    EXPECT_TRUE(t.defined());
    EXPECT_EQ(t.shape(), (Shape{2, 3, 4, 5}));
    EXPECT_EQ(t.rank(), 4);
    EXPECT_EQ(t.numel(), 120);
    EXPECT_EQ(t.size(-1), 5);
    EXPECT_EQ(t.nbytes(), 120u * 8u);
    EXPECT_EQ(t.dtype(), DType::Float64);
    EXPECT_TRUE(t.device().is_host());
}

TEST(Tensor, RankZeroToFiveAccepted) {
    const Tensor scalar = Tensor::full(Shape{}, 4.0);
    EXPECT_EQ(scalar.rank(), 0);
    EXPECT_EQ(scalar.numel(), 1);
    EXPECT_EQ(scalar.item(0), 4.0);
    for (int rank = 1; rank <= 5; ++rank) {
        const Tensor t = Tensor::zeros(Shape(std::vector<std::int64_t>(static_cast<std::size_t>(rank), 2)));
        EXPECT_EQ(t.rank(), rank);
        EXPECT_EQ(t.numel(), std::int64_t{1} << rank);
    }
    EXPECT_THROW(Tensor::zeros(Shape(std::vector<std::int64_t>(6, 2))), InvalidArgument);
    EXPECT_THROW(Tensor::zeros(Shape{2, -1}), InvalidArgument);
}

TEST(Tensor, Int64HoldsExactIndicesAndConvertsToFloat) {
    const std::int64_t big = (std::int64_t{1} << 53) + 1;  // not representable in a double
    const Tensor labels = Tensor::from_vector(Shape{3}, std::vector<std::int64_t>{0, 9, big});
    EXPECT_EQ(labels.dtype(), DType::Int64);
    EXPECT_EQ(labels.data<std::int64_t>()[2], big);
    EXPECT_EQ(labels.to(DType::Float32).item(1), 9.0);
    EXPECT_EQ(Tensor::full(Shape{2}, 7, DType::Int64).data<std::int64_t>()[1], 7);
    EXPECT_THROW(Tensor::uniform(Shape{2}, 0, 1, 1, DType::Int64), InvalidArgument);
}

TEST(Tensor, FullAndFillSetEveryElement) {
    Tensor t = Tensor::full(Shape{3, 7}, 2.5);
    for (std::int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.item(i), 2.5);
    t.fill_(-1.0);
    for (std::int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.item(i), -1.0);
}

TEST(Tensor, ElementAccessIsRowMajor) {
    Tensor t = Tensor::zeros(Shape{2, 3, 4});
    t.at<float>({1, 2, 3}) = 7.0f;
    EXPECT_EQ(t.data<float>()[1 * 12 + 2 * 4 + 3], 7.0f);
    EXPECT_EQ(t.item(23), 7.0);
}

TEST(Tensor, ElementAccessIsChecked) {
    Tensor t = Tensor::zeros(Shape{2, 3});
    EXPECT_THROW(t.at<float>({2, 0}), InvalidArgument);
    EXPECT_THROW(t.at<float>({0}), InvalidArgument);
    EXPECT_THROW(t.at<double>({0, 0}), InvalidArgument);  // dtype mismatch
    EXPECT_THROW(t.data<double>(), InvalidArgument);
    EXPECT_THROW(t.item(6), InvalidArgument);
    EXPECT_THROW(Tensor().raw_data(), InvalidArgument);
}

TEST(Tensor, FromVectorRoundTrips) {
    std::vector<double> values(24);
    std::iota(values.begin(), values.end(), -5.0);
    const Tensor t = Tensor::from_vector(Shape{2, 3, 4}, values);
    EXPECT_EQ(t.dtype(), DType::Float64);
    EXPECT_EQ(t.to_vector(), values);
    EXPECT_THROW(Tensor::from_vector(Shape{5}, values), InvalidArgument);
}

TEST(Tensor, SameSeedSameValuesOtherSeedOtherValues) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Tensor a = Tensor::uniform(Shape{4, 64}, -2.0, 3.0, seed);
    const Tensor b = Tensor::uniform(Shape{4, 64}, -2.0, 3.0, seed);
    const Tensor c = Tensor::uniform(Shape{4, 64}, -2.0, 3.0, seed + 1);
    EXPECT_TRUE(testing::exactly_equal(a, b));
    EXPECT_FALSE(testing::exactly_equal(a, c));
}

TEST(Tensor, UniformStaysInRangeWithTheRightMean) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Tensor t = Tensor::uniform(Shape{100000}, -2.0, 3.0, seed, DType::Float64);
    double sum = 0.0;
    for (double v : t.to_vector()) {
        ASSERT_GE(v, -2.0);
        ASSERT_LT(v, 3.0);
        sum += v;
    }
    // Mean 0.5, standard error 5 / sqrt(12 * 1e5) ~ 0.0046: six standard errors.
    EXPECT_NEAR(sum / 1e5, 0.5, 0.03);
}

TEST(Tensor, NormalHasTheRightMoments) {
    const std::uint64_t seed = testing::fresh_seed();
    CONVKIT_SEED_TRACE(seed);
    const Tensor t = Tensor::normal(Shape{200000}, 1.5, 2.0, seed, DType::Float64);
    double sum = 0.0;
    double squares = 0.0;
    for (double v : t.to_vector()) {
        ASSERT_TRUE(std::isfinite(v));
        sum += v;
        squares += v * v;
    }
    const double mean = sum / 2e5;
    const double variance = squares / 2e5 - mean * mean;
    EXPECT_NEAR(mean, 1.5, 0.03);     // standard error 2 / sqrt(2e5) ~ 0.0045
    EXPECT_NEAR(variance, 4.0, 0.1);  // standard error ~ 4 * sqrt(2 / 2e5) = 0.0126
}

TEST(Tensor, FillIsTheSameForBothDtypes) {
    // float32 values are the float64 values rounded: the generator does not depend on dtype.
    const Tensor f = Tensor::normal(Shape{257}, 0.0, 1.0, 99, DType::Float32);
    const Tensor d = Tensor::normal(Shape{257}, 0.0, 1.0, 99, DType::Float64);
    for (std::int64_t i = 0; i < f.numel(); ++i) EXPECT_EQ(f.item(i), static_cast<float>(d.item(i)));
}

TEST(Tensor, CopySharesCloneDoesNot) {
    Tensor a = Tensor::zeros(Shape{4});
    Tensor shared = a;
    Tensor cloned = a.clone();
    a.fill_(3.0);
    EXPECT_EQ(shared.item(0), 3.0);
    EXPECT_EQ(cloned.item(0), 0.0);
}

TEST(Tensor, ReshapeIsAViewWithTheSameElementCount) {
    Tensor a = Tensor::zeros(Shape{2, 6});
    Tensor b = a.reshape(Shape{3, 4});
    b.at<float>({2, 3}) = 5.0f;
    EXPECT_EQ(a.at<float>({1, 5}), 5.0f);
    EXPECT_THROW(a.reshape(Shape{5, 2}), InvalidArgument);
}

TEST(Tensor, CopyChecksShapeAndDtype) {
    Tensor a = Tensor::zeros(Shape{2, 3});
    EXPECT_THROW(a.copy_(Tensor::zeros(Shape{3, 2})), InvalidArgument);
    EXPECT_THROW(a.copy_(Tensor::zeros(Shape{2, 3}, DType::Float64)), InvalidArgument);
    a.copy_(Tensor::full(Shape{2, 3}, 4.0));
    EXPECT_EQ(a.item(5), 4.0);
}

TEST(Tensor, DtypeConversionRoundsToFloat) {
    const Tensor d = Tensor::from_vector(Shape{3}, std::vector<double>{0.1, -1e-40, 1e300});
    const Tensor f = d.to(DType::Float32);
    EXPECT_EQ(f.dtype(), DType::Float32);
    EXPECT_EQ(f.item(0), static_cast<double>(0.1f));
    EXPECT_TRUE(std::isinf(f.item(2)));
    EXPECT_EQ(f.to(DType::Float64).item(0), static_cast<double>(0.1f));
}

TEST(Tensor, ToSameDeviceSharesStorage) {
    Tensor a = Tensor::zeros(Shape{3});
    Tensor b = a.to(Device::host());
    b.fill_(1.0);
    EXPECT_EQ(a.item(0), 1.0);
}

TEST(Tensor, PrintsShapeDtypeDeviceAndValues) {
    const Tensor t = Tensor::from_vector(Shape{2, 2}, std::vector<float>{1, 2, 3, 4});
    const std::string s = t.to_string();
    EXPECT_NE(s.find("shape=[2, 2]"), std::string::npos) << s;
    EXPECT_NE(s.find("float32"), std::string::npos) << s;
    EXPECT_NE(s.find("host"), std::string::npos) << s;
    EXPECT_NE(s.find("4.0000"), std::string::npos) << s;
    const std::string cut = Tensor::zeros(Shape{100}).to_string(10);
    EXPECT_NE(cut.find("..."), std::string::npos) << cut;
}

TEST(Tensor, CudaRequestsWithoutAGpuSayThatNoneIsPresent) {
    if (cuda_is_available()) GTEST_SKIP() << "a CUDA device is present; this test is for machines without one";
    try {
        Tensor::zeros(Shape{4}, DType::Float32, Device::cuda());
        FAIL() << "expected an error";
    } catch (const NotSupported& e) {
        EXPECT_NE(std::string(e.what()).find("no CUDA device is present"), std::string::npos) << e.what();
        // The runtime is linked statically and opens the driver itself; without one the message
        // must say so rather than pass on the runtime's "insufficient driver".
        void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (driver == nullptr) {
            EXPECT_NE(std::string(e.what()).find("no NVIDIA driver was found"), std::string::npos) << e.what();
        } else {
            dlclose(driver);
        }
    }
    EXPECT_THROW(Tensor::zeros(Shape{4}).to(Device::cuda()), NotSupported);
    EXPECT_FALSE(cuda_unavailable_reason().empty());
}

TEST(Tensor, ShapesTooLargeToAddressAreErrorsNotSmallBuffers) {
    // 2^62 elements count in 64 bits but their bytes do not; 2^80 does not even count.
    EXPECT_THROW(Tensor::empty(Shape{std::int64_t{1} << 31, std::int64_t{1} << 31}), InvalidArgument);
    EXPECT_THROW(Tensor::zeros(Shape{std::int64_t{1} << 40, std::int64_t{1} << 40}), InvalidArgument);
    EXPECT_THROW((Shape{std::int64_t{1} << 40, std::int64_t{1} << 40}.numel()), InvalidArgument);
}

TEST(Tensor, UndefinedTensorHasNoElementsAndNoViews) {
    const Tensor t;
    EXPECT_FALSE(t.defined());
    EXPECT_EQ(t.numel(), 0);
    EXPECT_EQ(t.nbytes(), 0u);
    EXPECT_THROW(t.reshape(Shape{1}), InvalidArgument);
    EXPECT_THROW(t.device(), InvalidArgument);
}

TEST(Tensor, FromValuesTakesABracedList) {
    const Tensor f = Tensor::from_values(Shape{2, 2}, {1, 2, 3.5, 4});
    EXPECT_EQ(f.dtype(), DType::Float32);
    EXPECT_EQ(f.to_vector(), (std::vector<double>{1, 2, 3.5, 4}));
    const Tensor d = Tensor::from_values(Shape{3}, {0.1, 0.2, 0.3}, DType::Float64);
    EXPECT_EQ(d.item(0), 0.1);
    EXPECT_THROW(Tensor::from_values(Shape{3}, {1, 2}), InvalidArgument);
}

TEST(Tensor, Float32UniformStaysBelowHigh) {
    // One float32 step wide: half of the doubles drawn in [1, 1 + 2^-23) round up to the top.
    const double high = 1.0 + 0x1.0p-23;
    const Tensor t = Tensor::uniform(Shape{10000}, 1.0, high, testing::fresh_seed(), DType::Float32);
    for (double v : t.to_vector()) ASSERT_LT(v, high);
}

TEST(Version, StringAndBuildInfo) {
    EXPECT_EQ(version_string(), "0.1.0");
    const std::string info = build_info();
    EXPECT_NE(info.find("convkit 0.1.0"), std::string::npos) << info;
    EXPECT_NE(info.find("CUDA runtime"), std::string::npos) << info;
    EXPECT_NE(info.find("cuDNN"), std::string::npos) << info;
}

}  // namespace
}  // namespace convkit
