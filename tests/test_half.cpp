// bfloat16 and float16: the conversions of convkit/half.h (every bit pattern, every tie, the
// edges of the ranges, no double rounding from float64) and the tensors that hold them
// (names, factories, item(), printing, to(dtype) between every pair of floating dtypes).
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "convkit/half.h"
#include "convkit/tensor.h"
#include "temp_dir.h"
#include "test_util.h"

namespace convkit {
namespace {

static_assert(bfloat16(1.0F).bits == 0x3F80 && float16(1.0F).bits == 0x3C00);
static_assert(static_cast<float>(bfloat16::from_bits(0xC000)) == -2.0F);
static_assert(static_cast<float>(float16::from_bits(0x7BFF)) == 65504.0F);
static_assert(dtype_of<bfloat16> == DType::BFloat16 && dtype_of<float16> == DType::Float16);
// Constant-evaluated from NaN and infinity too (clang refuses a constant expression whose float
// arithmetic produces a NaN, even in a discarded branch of the branch-free conversion).
static_assert(float16(std::numeric_limits<float>::quiet_NaN()).bits == 0x7E00);
static_assert(float16(-std::numeric_limits<float>::infinity()).bits == 0xFC00);
static_assert(bfloat16(std::numeric_limits<float>::quiet_NaN()).bits == 0x7FC0);

template <typename T>
bool is_nan_bits(std::uint16_t bits) {
    if constexpr (std::is_same_v<T, bfloat16>) return (bits & 0x7F80U) == 0x7F80U && (bits & 0x7FU) != 0;
    return (bits & 0x7C00U) == 0x7C00U && (bits & 0x3FFU) != 0;
}

template <typename T>
void expect_every_pattern_round_trips() {
    for (std::uint32_t b = 0; b < 0x10000U; ++b) {
        const auto bits = static_cast<std::uint16_t>(b);
        const float value = static_cast<float>(T::from_bits(bits));
        if (is_nan_bits<T>(bits)) {
            ASSERT_TRUE(std::isnan(value)) << b;
            ASSERT_TRUE(is_nan_bits<T>(T(value).bits)) << b;
            ASSERT_TRUE(is_nan_bits<T>(T(static_cast<double>(value)).bits)) << b;
            continue;
        }
        ASSERT_EQ(T(value).bits, bits) << "pattern " << b << " value " << value;
        ASSERT_EQ(T(static_cast<double>(value)).bits, bits) << "pattern " << b;
    }
}

// Between two neighbours a < b (positive, finite): the midpoint goes to the even one, anything
// above it to b, anything below it to a.
template <typename T>
void expect_ties_to_even(std::uint16_t last_finite) {
    for (std::uint16_t a = 0; a < last_finite; ++a) {
        const auto b = static_cast<std::uint16_t>(a + 1);
        const double low = static_cast<float>(T::from_bits(a));
        const double high = static_cast<float>(T::from_bits(b));
        const double mid = (low + high) / 2;  // exact in double and in float
        const std::uint16_t even = (a % 2 == 0) ? a : b;
        ASSERT_EQ(T(static_cast<float>(mid)).bits, even) << "float tie after " << a;
        ASSERT_EQ(T(mid).bits, even) << "double tie after " << a;
        ASSERT_EQ(T(std::nextafter(static_cast<float>(mid), std::numeric_limits<float>::infinity())).bits, b) << a;
        ASSERT_EQ(T(std::nextafter(static_cast<float>(mid), 0.0F)).bits, a) << a;
        // Just above the tie by less than float resolution: float64 must not round twice.
        const double above = mid + (high - low) * 0x1p-30;
        ASSERT_EQ(T(above).bits, b) << "double just above the tie after " << a;
        ASSERT_EQ(T(-above).bits, b | 0x8000) << a;
    }
}

TEST(Half, EveryBitPatternRoundTripsThroughFloatAndDouble) {
    expect_every_pattern_round_trips<bfloat16>();
    expect_every_pattern_round_trips<float16>();
}

// Widening on its own, against each pattern's fields (the round trip above would pass a widening
// and a narrowing wrong in matching ways).
TEST(Half, Float16WidensToTheValueOfItsFieldsForEveryPattern) {
    for (std::uint32_t b = 0; b < 0x10000U; ++b) {
        const int exponent = static_cast<int>((b >> 10) & 0x1FU);
        const int fraction = static_cast<int>(b & 0x3FFU);
        const float value = static_cast<float>(float16::from_bits(static_cast<std::uint16_t>(b)));
        ASSERT_EQ(std::signbit(value), (b & 0x8000U) != 0) << b;
        if (exponent == 0x1F) {
            ASSERT_EQ(std::isnan(value), fraction != 0) << b;
            ASSERT_EQ(std::isinf(value), fraction == 0) << b;
            continue;
        }
        const double expected = exponent == 0 ? std::ldexp(fraction, -24) : std::ldexp(1024 + fraction, exponent - 25);
        ASSERT_EQ(std::fabs(static_cast<double>(value)), expected) << b;
    }
}

TEST(Half, RoundsToNearestEvenWithoutDoubleRounding) {
    expect_ties_to_even<bfloat16>(0x7F7F);
    expect_ties_to_even<float16>(0x7BFF);
    // 1 + 2^-8 + 2^-40: float64 -> float32 would drop 2^-40 and leave a tie that goes down.
    EXPECT_EQ(bfloat16(1.0 + 0x1p-8 + 0x1p-40).bits, 0x3F81);
    EXPECT_EQ(float16(1.0 + 0x1p-11 + 0x1p-40).bits, 0x3C01);
}

TEST(Half, RangeEdgesInfinityNanAndSubnormals) {
    const float inf = std::numeric_limits<float>::infinity();
    // float16 overflows to inf from 65520 (the tie above 65504) on; bfloat16 only past float's range.
    EXPECT_EQ(float16(65519.0F).bits, 0x7BFF);
    EXPECT_EQ(float16(65520.0F).bits, 0x7C00);
    EXPECT_EQ(float16(std::nextafter(65536.0F, 0.0F)).bits, 0x7C00);
    EXPECT_EQ(float16(65536.0F).bits, 0x7C00);
    EXPECT_EQ(float16(-std::numeric_limits<float>::max()).bits, 0xFC00);
    EXPECT_EQ(float16(-1e10).bits, 0xFC00);
    EXPECT_EQ(float16(inf).bits, 0x7C00);
    EXPECT_EQ(bfloat16(std::numeric_limits<float>::max()).bits, 0x7F80);
    EXPECT_EQ(bfloat16(1e300).bits, 0x7F80);
    EXPECT_EQ(bfloat16(-inf).bits, 0xFF80);
    // Subnormals: float16's smallest is 2^-24; 2^-25 is a tie that goes to zero.
    EXPECT_EQ(float16(0x1p-24F).bits, 0x0001);
    EXPECT_EQ(float16(0x1p-25F).bits, 0x0000);
    EXPECT_EQ(float16(std::nextafter(0x1p-25F, 1.0F)).bits, 0x0001);
    EXPECT_EQ(float16(3 * 0x1p-25F).bits, 0x0002);
    EXPECT_EQ(float16(-0x1p-24).bits, 0x8001);
    EXPECT_EQ(float16(0x1p-14F - 0x1p-25F).bits, 0x0400);  // rounds up into the smallest normal
    EXPECT_EQ(float16(std::nextafter(0x1p-14F, 0.0F)).bits, 0x0400);
    EXPECT_EQ(float16(0x1p-14F - 0x1p-24F).bits, 0x03FF);
    EXPECT_EQ(float16(std::numeric_limits<float>::denorm_min()).bits, 0x0000);  // a float subnormal
    EXPECT_EQ(float16(-1e-40F).bits, 0x8000);
    EXPECT_EQ(bfloat16(0x1p-133F).bits, 0x0001);
    EXPECT_EQ(bfloat16(0x1p-149).bits, 0x0000);
    EXPECT_EQ(bfloat16(1e-300).bits, 0x0000);
    EXPECT_EQ(bfloat16(-0.0).bits, 0x8000);
    EXPECT_EQ(float16(-0.0F).bits, 0x8000);
    // NaN stays NaN, from float and from double.
    EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(std::nanf("")))));
    EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(std::nan("")))));
    EXPECT_TRUE(std::isnan(static_cast<float>(float16(std::nanf("")))));
    EXPECT_TRUE(std::isnan(static_cast<float>(float16(std::nan("")))));
    EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16::from_bits(0x7F81))));  // a signalling payload
}

TEST(HalfTensor, NamesSizesAndParsing) {
    EXPECT_STREQ(dtype_name(DType::BFloat16), "bfloat16");
    EXPECT_STREQ(dtype_name(DType::Float16), "float16");
    EXPECT_EQ(dtype_size(DType::BFloat16), 2u);
    EXPECT_EQ(dtype_size(DType::Float16), 2u);
    EXPECT_TRUE(is_floating_point(DType::BFloat16) && is_reduced_precision(DType::Float16));
    EXPECT_FALSE(is_reduced_precision(DType::Float32));
    for (DType d : {DType::Float32, DType::Float64, DType::Int64, DType::BFloat16, DType::Float16})
        EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
    EXPECT_EQ(dtype_from_name("bf16"), DType::BFloat16);
    EXPECT_EQ(dtype_from_name("half"), DType::Float16);
    const std::string message = testing::message_of<InvalidArgument>([] { dtype_from_name("float8"); });
    EXPECT_NE(message.find("dtype_from_name: unknown dtype 'float8'"), std::string::npos) << message;
}

TEST(HalfTensor, FactoriesProduceTheDtypeAndItemReadsIt) {
    for (DType d : {DType::BFloat16, DType::Float16}) {
        SCOPED_TRACE(dtype_name(d));
        const Tensor z = Tensor::zeros(Shape{2, 3}, d);
        EXPECT_EQ(z.dtype(), d);
        EXPECT_EQ(z.nbytes(), 12u);
        EXPECT_EQ(z.to_vector(), std::vector<double>(6, 0.0));
        const Tensor f = Tensor::full(Shape{4}, 1.0 / 3.0, d);
        const double rounded = d == DType::BFloat16 ? static_cast<double>(bfloat16(1.0 / 3.0))
                                                    : static_cast<double>(float16(1.0 / 3.0));
        EXPECT_EQ(f.item(3), rounded);
        const Tensor u = Tensor::uniform(Shape{4096}, -1.0, 1.0, 7, d);
        EXPECT_EQ(u.dtype(), d);
        for (double v : u.to_vector()) {
            ASSERT_GE(v, -1.0);
            ASSERT_LT(v, 1.0);  // half-open, after rounding too
        }
        // The same values as the float64 fill, rounded once.
        const std::vector<double> wide = Tensor::uniform(Shape{4096}, -1.0, 1.0, 7, DType::Float64).to_vector();
        const std::vector<double> narrow = u.to_vector();
        for (std::size_t i = 0; i < wide.size(); ++i) {
            const double want = d == DType::BFloat16 ? static_cast<double>(bfloat16(wide[i]))
                                                     : static_cast<double>(float16(wide[i]));
            if (want < 1.0) {
                ASSERT_EQ(narrow[i], want) << i;
            }
        }
        EXPECT_EQ(Tensor::normal(Shape{8}, 0.0, 1.0, 3, d).dtype(), d);
    }
}

TEST(HalfTensor, ConvertsBetweenEveryPairOfFloatingDtypes) {
    const std::vector<double> values{0.0, -0.0, 1.0, -2.5, 1.0 / 3.0, 1e-6, 65504.0, 70000.0, 3e38, -1e-40};
    const Tensor source = Tensor::from_vector(Shape{static_cast<std::int64_t>(values.size())}, values);
    const std::vector<DType> dtypes{DType::Float32, DType::Float64, DType::BFloat16, DType::Float16};
    auto round = [](double v, DType d) {
        switch (d) {
            case DType::Float32: return static_cast<double>(static_cast<float>(v));
            case DType::BFloat16: return static_cast<double>(bfloat16(v));
            case DType::Float16: return static_cast<double>(float16(v));
            default: return v;
        }
    };
    for (DType from : dtypes) {
        const Tensor a = source.to(from);
        EXPECT_EQ(a.dtype(), from);
        for (DType to : dtypes) {
            SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
            const std::vector<double> got = a.to(to).to_vector();
            for (std::size_t i = 0; i < values.size(); ++i) {
                const double want = round(round(values[i], from), to);
                ASSERT_TRUE(got[i] == want || (std::isnan(got[i]) && std::isnan(want))) << i << ": " << got[i];
                ASSERT_EQ(std::signbit(got[i]), std::signbit(want)) << i;
            }
        }
    }
    // float16 overflows to inf; bfloat16 holds 3e38.
    EXPECT_TRUE(std::isinf(source.to(DType::Float16).item(7)));
    EXPECT_FALSE(std::isinf(source.to(DType::BFloat16).item(8)));
    // int64 converts too.
    EXPECT_EQ(Tensor::full(Shape{1}, 257.0, DType::Int64).to(DType::BFloat16).item(0), 256.0);
    EXPECT_EQ(Tensor::full(Shape{1}, 2.75, DType::BFloat16).to(DType::Int64).item(0), 2.0);
}

TEST(HalfTensor, PrintsItsValuesAndDtype) {
    const std::string text = Tensor::full(Shape{2}, 0.5, DType::BFloat16).to_string();
    EXPECT_NE(text.find("dtype=bfloat16"), std::string::npos) << text;
    EXPECT_NE(text.find("0.5000"), std::string::npos) << text;
    const std::string half = Tensor::full(Shape{1}, -3.0, DType::Float16).to_string();
    EXPECT_NE(half.find("dtype=float16"), std::string::npos) << half;
    EXPECT_NE(half.find("-3.0000"), std::string::npos) << half;
}

}  // namespace
}  // namespace convkit
