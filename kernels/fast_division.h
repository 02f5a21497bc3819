#pragma once
// Division by a divisor fixed when a kernel is launched, as one widening multiplication and a
// shift (Granlund and Montgomery; CUTLASS's FastDivmod): the launcher computes the multiplier on
// the host, the kernel divides without the ~20-instruction integer division sequence. Plain
// constexpr C++, so device code (--expt-relaxed-constexpr), the emulator and host tests use the
// same code.
//
// Exact for dividends in [0, 2^31) and divisors in [1, 2^31): with l = ceil(log2 d),
// p = 31 + l and m = ceil(2^p / d) = (2^p + e) / d, e < d, n·m / 2^p = n / d + n·e / (d·2^p),
// and the second term is below 2^31 / 2^p = 2^-l <= 1 / d, too small to carry n / d past the
// next integer. m < 2^32 (it is 2^31 for a power of two), so n·m is one 32 x 32 -> 64 product.
#include <cstdint>

#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

class FastDivisor {
public:
    constexpr FastDivisor() = default;
    // `divisor` < 1 (an extent of zero, never divided by) is stored as 1.
    explicit constexpr FastDivisor(int divisor) : divisor_(divisor < 1 ? 1 : divisor) {
        int log2 = 0;
        while ((std::int64_t{1} << log2) < divisor_) ++log2;
        shift_ = 31 + log2;
        const std::uint64_t power = std::uint64_t{1} << shift_;
        multiplier_ = static_cast<std::uint32_t>((power + static_cast<std::uint64_t>(divisor_) - 1) /
                                                 static_cast<std::uint64_t>(divisor_));
    }
    constexpr int divisor() const { return divisor_; }
    // n / divisor for 0 <= n < 2^31.
    constexpr int divide(int n) const {
        return static_cast<int>((static_cast<std::uint64_t>(static_cast<std::uint32_t>(n)) * multiplier_) >> shift_);
    }

private:
    int divisor_ = 1;
    int shift_ = 31;
    std::uint32_t multiplier_ = 0x80000000U;
};

CONVKIT_KERNELS_END
