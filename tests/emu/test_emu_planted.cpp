// Proof that the emulator catches bugs (issue #12, item 5): the bf16 tensor-core GEMM against a
// plain loop, then five deliberately broken kernels (planted_kernels.cu, gemm_bf16_mma.cu),
// each run under every schedule. The correct variant must pass under all of them; the broken
// one must fail (a KernelFault or a wrong result) under the schedules listed, which
// docs/testing.md records.
#include <cmath>
#include <functional>
#include <vector>

#include "emu/emulator.h"
#include "emu_test_support.h"
#include "gemm_problem.h"
#include "kernels/wgmma_descriptor.h"
#include "test_kernels.h"

namespace convkit {
namespace {

namespace probes = kernels::emu_tests;
using emu::Schedule;

const std::vector<Schedule> kAllSchedules = {Schedule::Forward, Schedule::Reverse, Schedule::RunToBlock,
                                             Schedule::Random};

// Restores the environment's schedule when a test ends, whatever it set.
struct ScheduleScope {
    explicit ScheduleScope(Schedule s) { emu::set_schedule_override(s); }
    ~ScheduleScope() { emu::set_schedule_override(std::nullopt); }
};

enum class Outcome { Correct, WrongResult, Fault };

const char* outcome_name(Outcome o) {
    switch (o) {
        case Outcome::Correct:
            return "correct";
        case Outcome::WrongResult:
            return "wrong result";
        case Outcome::Fault:
            return "KernelFault";
    }
    return "?";
}

// Runs `run` (which returns whether its output is right) under schedule s.
Outcome outcome_under(Schedule s, const std::function<bool()>& run, std::string* fault = nullptr) {
    const ScheduleScope scope(s);
    try {
        return run() ? Outcome::Correct : Outcome::WrongResult;
    } catch (const emu::KernelFault& e) {
        if (fault != nullptr) *fault = e.what();
        return Outcome::Fault;
    }
}

// The correct kernel passes under every schedule; the planted one gives `expected` under each.
void expect_caught(const std::function<bool(bool planted)>& run, const std::vector<Outcome>& expected) {
    for (std::size_t i = 0; i < kAllSchedules.size(); ++i) {
        const Schedule s = kAllSchedules[i];
        SCOPED_TRACE(emu::schedule_name(s));
        std::string fault;
        EXPECT_EQ(outcome_under(
                      s, [&] { return run(false); }, &fault),
                  Outcome::Correct)
            << fault;
        const Outcome planted = outcome_under(
            s, [&] { return run(true); }, &fault);
        EXPECT_EQ(outcome_name(planted), std::string(outcome_name(expected[i]))) << fault;
    }
}

// ---- the bf16 GEMM ------------------------------------------------------------------------

using testing::gemm_error;
using testing::gemm_problem;
using testing::GemmProblem;

std::vector<float> run_gemm(const GemmProblem& p, probes::GemmPlant plant) {
    std::vector<float> c(p.m * p.n, std::nanf(""));
    probes::gemm_bf16_mma(p.m, p.n, p.k, p.a.data(), p.b.data(), c.data(), plant);
    return c;
}

TEST(EmuGemm, SmallIntegersExactlyAsAPlainLoop) {
    CONVKIT_SEEDED_RNG(rng);
    const GemmProblem p = gemm_problem(64, 32, 96, rng, true);
    EXPECT_EQ(gemm_error(p, run_gemm(p, probes::GemmPlant::None)), 0.0);
}

TEST(EmuGemm, RandomValuesWithinFloatRounding) {
    CONVKIT_SEEDED_RNG(rng);
    const GemmProblem p = gemm_problem(32, 64, 64, rng, false);
    EXPECT_LT(gemm_error(p, run_gemm(p, probes::GemmPlant::None)), 1e-6);
}

TEST(EmuGemm, ShapesOffTheTileAreRefused) {
    EXPECT_THROW(probes::gemm_bf16_mma(33, 32, 32, nullptr, nullptr, nullptr), InvalidArgument);
}

// ---- the five planted bugs ------------------------------------------------------------------

std::vector<float> ramp(int count) {
    std::vector<float> v(count);
    for (int i = 0; i < count; ++i) v[i] = static_cast<float>(i % 251) + 0.5f;
    return v;
}

TEST(EmuPlanted, MissingSyncthreadsIsCaught) {
    const std::vector<float> in = ramp(512);
    expect_caught(
        [&](bool planted) {
            std::vector<float> out(in.size(), std::nanf(""));
            probes::reverse_blocks(in.data(), out.data(), 512,
                                   planted ? probes::Planted::MissingSyncthreads : probes::Planted::None);
            for (int i = 0; i < 512; ++i)
                if (out[i] != in[i / 256 * 256 + 255 - i % 256]) return false;
            return true;
        },
        {Outcome::WrongResult, Outcome::WrongResult, Outcome::WrongResult, Outcome::WrongResult});
}

TEST(EmuPlanted, MissingSyncwarpBeforeAShuffleIsCaught) {
    const std::vector<float> in = ramp(32);
    expect_caught(
        [&](bool planted) {
            std::vector<float> out(32, std::nanf(""));
            probes::warp_pair_sums(in.data(), out.data(),
                                   planted ? probes::Planted::MissingSyncwarp : probes::Planted::None);
            for (int l = 0; l < 32; ++l)
                if (out[l] != in[l ^ 1] + in[(l ^ 2) ^ 1]) return false;
            return true;
        },
        {Outcome::WrongResult, Outcome::WrongResult, Outcome::WrongResult, Outcome::WrongResult});
}

TEST(EmuPlanted, WrongMmaAccumulatorFragmentIsCaught) {
    CONVKIT_SEEDED_RNG(rng);
    const GemmProblem p = gemm_problem(32, 32, 32, rng, true);
    expect_caught(
        [&](bool planted) {
            return gemm_error(p, run_gemm(p, planted ? probes::GemmPlant::WrongAccumulatorFragment
                                                     : probes::GemmPlant::None)) == 0.0;
        },
        {Outcome::WrongResult, Outcome::WrongResult, Outcome::WrongResult, Outcome::WrongResult});
}

TEST(EmuPlanted, OffByOneBoundIsCaught) {
    const std::vector<float> in = ramp(300);
    expect_caught(
        [&](bool planted) {
            std::vector<float> out(in.size(), std::nanf(""));
            probes::double_elements(in.data(), out.data(), 300,
                                    planted ? probes::Planted::OffByOneBound : probes::Planted::None);
            for (std::size_t i = 0; i < in.size(); ++i)
                if (out[i] != 2 * in[i]) return false;
            return true;
        },
        {Outcome::WrongResult, Outcome::WrongResult, Outcome::WrongResult, Outcome::WrongResult});
}

TEST(EmuPlanted, CpAsyncReadBeforeItsWaitIsCaught) {
    CONVKIT_SEEDED_RNG(rng);
    const GemmProblem p = gemm_problem(32, 32, 64, rng, true);
    expect_caught(
        [&](bool planted) {
            return gemm_error(p, run_gemm(p, planted ? probes::GemmPlant::ReadBeforeWait : probes::GemmPlant::None)) ==
                   0.0;
        },
        {Outcome::Fault, Outcome::Fault, Outcome::Fault, Outcome::Fault});
}

// ---- the warpgroup MMA (wgmma_gemm.cu) ------------------------------------------------------
// Each correct run is itself a check of the emulated wgmma against a float64 product (the
// shapes, swizzles and scale-d cases of test_cuda_wgmma.cpp, which runs them on a GPU).

constexpr auto kBf16 = probes::WgmmaOperand::BFloat16;
constexpr auto kF16 = probes::WgmmaOperand::Float16;
constexpr auto kTf32 = probes::WgmmaOperand::TensorFloat32;

bool wgmma_correct(const testing::WgmmaProblem& p, probes::WgmmaPlant plant) {
    std::vector<float> d(p.expected.size(), std::nanf(""));
    probes::wgmma_gemm(p.operand, p.n, p.k, p.swizzle128, p.a.data(), p.b_transposed.data(),
                       p.accumulate ? p.c.data() : nullptr, d.data(), plant);
    return testing::product_error(p.expected, d) == 0.0;
}

void expect_wgmma_plant_caught(const testing::WgmmaProblem& p, probes::WgmmaPlant plant, Outcome outcome) {
    expect_caught([&](bool planted) { return wgmma_correct(p, planted ? plant : probes::WgmmaPlant::None); },
                  {outcome, outcome, outcome, outcome});
}

TEST(EmuPlanted, WgmmaTileStoredWithoutItsSwizzleIsCaught) {
    CONVKIT_SEEDED_RNG(rng);
    expect_wgmma_plant_caught(testing::wgmma_problem(kBf16, 64, 128, true, false, rng, true),
                              probes::WgmmaPlant::UnswizzledStaging, Outcome::WrongResult);
}

TEST(EmuPlanted, WgmmaTransposedAccumulatorFragmentIsCaught) {
    CONVKIT_SEEDED_RNG(rng);
    expect_wgmma_plant_caught(testing::wgmma_problem(kF16, 64, 64, false, true, rng, true),
                              probes::WgmmaPlant::TransposedFragment, Outcome::WrongResult);
}

TEST(EmuPlanted, WgmmaWithoutFenceIsCaught) {
    CONVKIT_SEEDED_RNG(rng);
    expect_wgmma_plant_caught(testing::wgmma_problem(kBf16, 128, 64, true, true, rng, true),
                              probes::WgmmaPlant::MissingFence, Outcome::Fault);
}

// The accumulators read before wgmma.wait_group are NaN in the emulator (undefined on a GPU).
TEST(EmuPlanted, WgmmaAccumulatorsReadBeforeTheWaitAreCaught) {
    CONVKIT_SEEDED_RNG(rng);
    expect_wgmma_plant_caught(testing::wgmma_problem(kBf16, 64, 64, false, false, rng, true),
                              probes::WgmmaPlant::ReadBeforeWait, Outcome::WrongResult);
}

TEST(EmuPlanted, WgmmaOperandOverwrittenBeforeTheWaitIsCaught) {
    CONVKIT_SEEDED_RNG(rng);
    expect_wgmma_plant_caught(testing::wgmma_problem(kF16, 64, 128, true, true, rng, true),
                              probes::WgmmaPlant::OverwriteBeforeWait, Outcome::Fault);
}

// A landed cp.async is a generic-proxy write: wgmma may read it only after the writing thread's
// fence.proxy.async (emu/async_copy.h). Written after the fence: a fault under every schedule.
TEST(EmuPlanted, WgmmaReadOfAnUnfencedCopyIsCaught) {
    CONVKIT_SEEDED_RNG(rng);
    expect_wgmma_plant_caught(testing::wgmma_problem(kBf16, 64, 64, true, false, rng, true),
                              probes::WgmmaPlant::UnfencedCopy, Outcome::Fault);
}

TEST(EmuWgmma, RandomValuesWithinFloatRounding) {
    CONVKIT_SEEDED_RNG(rng);
    const testing::WgmmaProblem p = testing::wgmma_problem(kBf16, 128, 64, true, true, rng, false);
    std::vector<float> d(p.expected.size(), std::nanf(""));
    probes::wgmma_gemm(kBf16, p.n, p.k, true, p.a.data(), p.b_transposed.data(), p.c.data(), d.data());
    EXPECT_LT(testing::product_error(p.expected, d), 1e-5);
}

// tf32 operands: the tensor cores (and the emulator) read 19 bits of each word; values exact in
// tf32 multiply exactly, and the low bits of an operand are ignored, not rounded.
TEST(EmuWgmma, Tf32ReadsOnlyTheTopNineteenBits) {
    CONVKIT_SEEDED_RNG(rng);
    testing::WgmmaProblem p = testing::wgmma_problem(kTf32, 64, 64, true, false, rng, false);
    std::vector<float> d(p.expected.size(), std::nanf(""));
    probes::wgmma_gemm(kTf32, p.n, p.k, true, p.a.data(), p.b_transposed.data(), nullptr, d.data());
    EXPECT_LT(testing::product_error(p.expected, d), 1e-6);
    for (std::size_t i = 0; i < p.a.size(); i += 4) p.a[i] |= 0xff;  // low mantissa bits set: ignored
    std::vector<float> again(p.expected.size(), std::nanf(""));
    probes::wgmma_gemm(kTf32, p.n, p.k, true, p.a.data(), p.b_transposed.data(), nullptr, again.data());
    EXPECT_EQ(again, d);
}

// The bit positions of the PTX ISA's "Matrix Descriptor Format", worked by hand: start 0x1230 >> 4
// in bits 0-13, LBO 0x40 >> 4 in 16-29, SBO 0x400 >> 4 in 32-45, 128-byte swizzle (1) in 62-63.
TEST(EmuWgmma, DescriptorBitsFollowThePtxIsa) {
    constexpr std::uint64_t d = wgmma::make_descriptor(0x1230, 0x40, 0x400, wgmma::Swizzle::Bytes128);
    static_assert(d == 0x4000004000040123ull);
    static_assert(wgmma::make_descriptor(0x3fff0, 0, 0, wgmma::Swizzle::Bytes32) == (0x3ull << 62 | 0x3fffu));
    static_assert(wgmma::advance_descriptor(d, 32) == d + 2);
    constexpr wgmma::Descriptor back = wgmma::decode_descriptor(d);
    static_assert(back.start_address == 0x1230 && back.leading_byte_offset == 0x40 &&
                  back.stride_byte_offset == 0x400 && back.base_offset == 0 &&
                  back.swizzle == wgmma::Swizzle::Bytes128);
    // 128-byte swizzle: 16-byte chunk 2 of row 3 of an atom at 1024 lands in chunk 2 ^ 3 = 1;
    // 64-byte: the chunk XORed with address bits 7-8 only; none: unchanged.
    EXPECT_EQ(wgmma::swizzled_address(1024 + 3 * 128 + 2 * 16 + 6, wgmma::Swizzle::Bytes128), 1024u + 3 * 128 + 16 + 6);
    EXPECT_EQ(wgmma::swizzled_address(1024 + 7 * 128, wgmma::Swizzle::Bytes64), 1024u + 7 * 128 + 3 * 16);
    EXPECT_EQ(wgmma::swizzled_address(1024 + 7 * 128 + 48, wgmma::Swizzle::None), 1024u + 7 * 128 + 48);
}

// MN-major operands (the transpose flags, 16-bit): the same products from tiles staged with M/N
// contiguous (tests/emu/wgmma_gemm.cu staged_offset_mn), bit for bit on small integers (N 64 and
// 128, where B spans two 128-byte blocks LBO apart; one and two commit groups), within float
// rounding on random values; staged without the swizzle, wrong.
TEST(EmuWgmma, MnMajorOperandsMatchTheProduct) {
    CONVKIT_SEEDED_RNG(rng);
    struct Shape {
        probes::WgmmaOperand operand;
        int n, k;
        bool accumulate, small_integers;
    };
    for (const Shape& s : {Shape{kBf16, 64, 64, false, true}, Shape{kBf16, 128, 64, true, true},
                           Shape{kF16, 64, 128, true, true}, Shape{kBf16, 64, 128, true, false},
                           Shape{kF16, 64, 64, false, false}}) {
        const testing::WgmmaProblem p =
            testing::wgmma_problem(s.operand, s.n, s.k, true, s.accumulate, rng, s.small_integers);
        for (const bool planted : {false, true}) {
            std::vector<float> d(p.expected.size(), std::nanf(""));
            probes::wgmma_gemm(s.operand, p.n, p.k, true, p.a.data(), p.b_transposed.data(),
                               s.accumulate ? p.c.data() : nullptr, d.data(),
                               planted ? probes::WgmmaPlant::UnswizzledStaging : probes::WgmmaPlant::None, true);
            const double error = testing::product_error(p.expected, d);
            const std::string label = "n " + std::to_string(s.n) + " k " + std::to_string(s.k);
            if (planted) {
                EXPECT_GT(error, 1e-3) << label << ": staged without the swizzle";
            } else if (s.small_integers) {
                EXPECT_EQ(error, 0.0) << label;
            } else {
                EXPECT_LT(error, 1e-5) << label;
            }
        }
    }
    // tf32 and unswizzled MN-major tiles are not offered.
    EXPECT_THROW(probes::wgmma_gemm(kTf32, 64, 32, true, nullptr, nullptr, nullptr, nullptr, probes::WgmmaPlant::None,
                                    true),
                 InvalidArgument);
    EXPECT_THROW(probes::wgmma_gemm(kBf16, 64, 64, false, nullptr, nullptr, nullptr, nullptr, probes::WgmmaPlant::None,
                                    true),
                 InvalidArgument);
}

// The MN-major element addresses of kernels/wgmma_descriptor.h against worked values: 128-byte
// swizzle, LBO 8192 (the next 64 16-bit values of M/N), SBO 1024 (the next 8 k-rows); no swizzle,
// LBO the next 8 k-rows, SBO the next 8 values of M/N.
TEST(EmuWgmma, MnMajorAddressesFollowCutlassCanonicalLayouts) {
    const wgmma::Descriptor swizzled{0, 8192, 1024, 0, wgmma::Swizzle::Bytes128};
    // (mn 0, k 0) at 0; (mn 8, k 0): chunk 1 of k-row 0, unswizzled (row 0): 16.
    EXPECT_EQ(wgmma::mn_major_element_address(swizzled, 0, 0, 2), 0u);
    EXPECT_EQ(wgmma::mn_major_element_address(swizzled, 8, 0, 2), 16u);
    // (mn 9, k 3): k-row 3 at 384, chunk 1 ^ 3 = 2, element 1 of it: 384 + 32 + 2.
    EXPECT_EQ(wgmma::mn_major_element_address(swizzled, 9, 3, 2), 418u);
    // (mn 70, k 11): block 1 (8192), k group 1 (1024), k-row 3 (384), byte 12 of the block's
    // row: chunk 0 ^ 3 = 3 (48), + 12.
    EXPECT_EQ(wgmma::mn_major_element_address(swizzled, 70, 11, 2), 8192u + 1024 + 384 + 48 + 12);
    const wgmma::Descriptor plain{0, 256, 128, 0, wgmma::Swizzle::None};
    // (mn 9, k 3): core matrix 1 along M/N (SBO 128), byte 2 of its k-row 3 (48).
    EXPECT_EQ(wgmma::mn_major_element_address(plain, 9, 3, 2), 128u + 48 + 2);
    // (mn 1, k 10): k group 1 (LBO 256), k-row 2 (32), byte 2.
    EXPECT_EQ(wgmma::mn_major_element_address(plain, 1, 10, 2), 256u + 32 + 2);
}

TEST(EmuWgmma, ShapesWithoutDeviceCodeAreRefused) {
    EXPECT_THROW(probes::wgmma_gemm(kBf16, 96, 64, true, nullptr, nullptr, nullptr, nullptr), InvalidArgument);
    EXPECT_THROW(probes::wgmma_gemm(kBf16, 64, 48, true, nullptr, nullptr, nullptr, nullptr), InvalidArgument);
    EXPECT_THROW(probes::wgmma_gemm(kTf32, 128, 32, true, nullptr, nullptr, nullptr, nullptr), InvalidArgument);
}

}  // namespace
}  // namespace convkit
