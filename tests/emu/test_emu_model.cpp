// The emulator's model of CUDA (src/emu/), through kernels written for it (probe_kernels.cu):
// warp and block operations give CUDA's answers, shared memory is per block and poisoned,
// ldmatrix and mma.sync follow the PTX fragment layouts, and every misuse is a KernelFault
// naming the kernel, the block and the thread. Launch-shape errors are InvalidArgument.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend_api/geometry.h"
#include "bulk_copy_problem.h"
#include "convkit/half.h"
#include "emu/emulator.h"
#include "emu/ptx_emulation.h"
#include "emu_test_support.h"
#include "kernels/tensor_map.h"
#include "test_kernels.h"

namespace convkit {
namespace {

namespace probes = kernels::emu_tests;

// Clears the emulator's schedule override when it goes out of scope, so that a test that fails
// midway leaves none behind.
struct ClearScheduleOverride {
    ~ClearScheduleOverride() { emu::set_schedule_override(std::nullopt); }
};

// Calls body() once under each of the emulator's four schedules, traced by name (the override
// is left set: a ClearScheduleOverride in the test clears it).
template <class Body>
void under_every_schedule(Body&& body) {
    for (emu::Schedule s :
         {emu::Schedule::Forward, emu::Schedule::Reverse, emu::Schedule::RunToBlock, emu::Schedule::Random}) {
        SCOPED_TRACE(emu::schedule_name(s));
        emu::set_schedule_override(s);
        body();
    }
}
using emu::KernelFault;

TEST(EmuModel, WarpOperationsGiveCudasAnswers) {
    std::vector<int> out(32 * probes::kWarpProbeOperations, -1);
    probes::warp_operations_probe(out.data());
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
    for (int l = 0; l < 32; ++l) {
        SCOPED_TRACE(::testing::Message() << "lane " << l);
        EXPECT_EQ(out[0 * 32 + l], (l + 3) % 32 * 10);
        EXPECT_EQ(out[1 * 32 + l], l == 0 ? 0 : (l - 1) * 10);                // lane 0 keeps its own
        EXPECT_EQ(out[2 * 32 + l], l % 16 + 2 < 16 ? (l + 2) * 10 : l * 10);  // within 16-lane segments
        EXPECT_EQ(out[3 * 32 + l], (l ^ 5) * 10);                             // xor stays in 8-lane segments
        EXPECT_EQ(static_cast<unsigned>(out[4 * 32 + l]), ballot);
        EXPECT_EQ(out[5 * 32 + l], 1);
        EXPECT_EQ(out[6 * 32 + l], 1);
        // __activemask promises only the calling lane (the emulator: the lanes not yet returned).
        EXPECT_TRUE((static_cast<unsigned>(out[7 * 32 + l]) >> l) & 1u);
    }
}

TEST(EmuModel, CountingBarriersAndAtomics) {
    for (int threads : {32, 100, 256, 1024}) {
        SCOPED_TRACE(std::to_string(threads) + " threads");
        int out[4] = {-1, -1, -1, 0};
        probes::block_operations_probe(threads, out);
        EXPECT_EQ(out[0], (threads + 3) / 4);  // __syncthreads_count
        EXPECT_EQ(out[1], 0);                  // __syncthreads_and
        EXPECT_EQ(out[2], 1);                  // __syncthreads_or
        EXPECT_EQ(out[3], threads);            // atomicAdd from every thread
    }
}

TEST(EmuModel, DynamicSharedMemoryIsTheLaunchsSize) {
    const int threads = 96;
    std::vector<int> out(threads, -1);
    probes::dynamic_shared_probe(threads, out.data(), threads * sizeof(int));
    for (int t = 0; t < threads; ++t) EXPECT_EQ(out[t], (t + 1) % threads + 100) << t;
}

TEST(EmuModel, SharedMemoryIsPoisonedAtTheStartOfEveryBlock) {
    std::vector<float> out(3, 0.0f);
    probes::unwritten_shared_probe(3, out.data());
    for (float v : out) EXPECT_TRUE(std::isnan(v)) << v;  // block 0's 42 never reaches block 1
}

// A GPU promises no order among a grid's blocks, and the schedules vary it: ascending under
// forward and run-to-block, descending under reverse, a seeded permutation under random (every
// block once, not in either order), so that a block's stray write that a later block happens to
// cover shows under one of them.
TEST(EmuModel, TheScheduleOrdersTheGridsBlocks) {
    const ClearScheduleOverride clear;
    const unsigned x = 5, y = 3, z = 2, count = x * y * z;
    std::vector<unsigned> ascending(count);
    for (unsigned i = 0; i < count; ++i) ascending[i] = i;
    const std::vector<unsigned> descending(ascending.rbegin(), ascending.rend());
    under_every_schedule([&] {
        std::vector<unsigned> order(count, 0xFFFFFFFFu);
        probes::block_order_probe(x, y, z, order.data());
        switch (emu::current_schedule()) {
            case emu::Schedule::Forward:
            case emu::Schedule::RunToBlock:
                EXPECT_EQ(order, ascending);
                break;
            case emu::Schedule::Reverse:
                EXPECT_EQ(order, descending);
                break;
            case emu::Schedule::Random: {
                EXPECT_NE(order, ascending);
                EXPECT_NE(order, descending);
                std::vector<unsigned> sorted = order;
                std::sort(sorted.begin(), sorted.end());
                EXPECT_EQ(sorted, ascending);  // each block once
                break;
            }
        }
    });
}

// ldmatrix against the PTX ISA's statement of who gets what: register i of lane l holds row
// l / 4, columns 2 (l % 4) and +1 of matrix i (transposed: rows 2 (l % 4), +1 of column l / 4).
TEST(EmuModel, LdmatrixFollowsThePtxLayout) {
    const int stride = 8;
    std::vector<std::uint16_t> tile(32 * stride);
    for (std::size_t i = 0; i < tile.size(); ++i) tile[i] = static_cast<std::uint16_t>(1000 + i);
    auto element = [&](int matrix, int row, int col) { return tile[(matrix * 8 + row) * stride + col]; };
    for (int matrices : {1, 2, 4}) {
        for (bool transpose : {false, true}) {
            SCOPED_TRACE(::testing::Message() << "x" << matrices << (transpose ? ".trans" : ""));
            std::vector<std::uint32_t> out(32 * 4, 0);
            probes::ldmatrix_probe(tile.data(), stride, matrices, transpose, out.data());
            for (int l = 0; l < 32; ++l) {
                for (int i = 0; i < matrices; ++i) {
                    const int pair = 2 * (l % 4), single = l / 4;
                    const std::uint32_t low = transpose ? element(i, pair, single) : element(i, single, pair);
                    const std::uint32_t high = transpose ? element(i, pair + 1, single) : element(i, single, pair + 1);
                    EXPECT_EQ(out[l * 4 + i], low | high << 16) << "lane " << l << " register " << i;
                }
            }
        }
    }
}

std::uint16_t to_bfloat16(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    return static_cast<std::uint16_t>(bits >> 16);  // exact for the small integers used here
}

std::uint16_t to_float16(int value) {  // small integers only: exact in half
    if (value == 0) return 0;
    const std::uint16_t sign = value < 0 ? 0x8000 : 0;
    int magnitude = std::abs(value), exponent = 0;
    while ((magnitude >> exponent) > 1) ++exponent;
    const int mantissa = (magnitude << (10 - exponent)) & 0x3ff;
    return static_cast<std::uint16_t>(sign | (exponent + 15) << 10 | mantissa);
}

// One m16n8k16 on small integers (every sum exact) against a plain loop, in both input types;
// the probe gathers fragments from the PTX figures, the emulator by its own formulas.
TEST(EmuModel, MmaMatchesAPlainLoop) {
    CONVKIT_SEEDED_RNG(rng);
    std::vector<int> a(16 * 16), b(16 * 8);
    std::vector<float> c(16 * 8);
    for (int& v : a) v = static_cast<int>(testing::pick(rng, -4, 4));
    for (int& v : b) v = static_cast<int>(testing::pick(rng, -4, 4));
    for (float& v : c) v = static_cast<float>(testing::pick(rng, -20, 20));
    for (bool bfloat16 : {true, false}) {
        SCOPED_TRACE(bfloat16 ? "bf16" : "f16");
        std::vector<std::uint16_t> a16(a.size()), b16(b.size());
        for (std::size_t i = 0; i < a.size(); ++i)
            a16[i] = bfloat16 ? to_bfloat16(static_cast<float>(a[i])) : to_float16(a[i]);
        for (std::size_t i = 0; i < b.size(); ++i)
            b16[i] = bfloat16 ? to_bfloat16(static_cast<float>(b[i])) : to_float16(b[i]);
        std::vector<float> d(16 * 8, std::nanf(""));
        probes::mma_probe(a16.data(), b16.data(), c.data(), bfloat16, d.data());
        for (int row = 0; row < 16; ++row) {
            for (int col = 0; col < 8; ++col) {
                float expected = c[row * 8 + col];
                for (int k = 0; k < 16; ++k) expected += static_cast<float>(a[row * 16 + k] * b[k * 8 + col]);
                EXPECT_EQ(d[row * 8 + col], expected) << "row " << row << " col " << col;
            }
        }
    }
}

// One m16n8k8 tf32 on values exact in tf32 (multiples of 1/8 up to 4: every product and sum
// exact in float) against a plain loop; the probe gathers fragments from the PTX figures, the
// emulator by its own formulas, so a transposed or misplaced register fails here.
TEST(EmuModel, Tf32MmaMatchesAPlainLoop) {
    CONVKIT_SEEDED_RNG(rng);
    std::vector<float> a(16 * 8), b(8 * 8), c(16 * 8);
    for (float& v : a) v = static_cast<float>(testing::pick(rng, -32, 32)) / 8;
    for (float& v : b) v = static_cast<float>(testing::pick(rng, -32, 32)) / 8;
    for (float& v : c) v = static_cast<float>(testing::pick(rng, -20, 20));
    for (bool round : {true, false}) {  // exact values: rounding changes nothing
        std::vector<float> d(16 * 8, std::nanf(""));
        probes::mma_tf32_probe(a.data(), b.data(), c.data(), round, d.data());
        for (int row = 0; row < 16; ++row) {
            for (int col = 0; col < 8; ++col) {
                double expected = c[row * 8 + col];
                for (int k = 0; k < 8; ++k) expected += double{a[row * 8 + k]} * b[k * 8 + col];
                EXPECT_EQ(d[row * 8 + col], static_cast<float>(expected)) << "row " << row << " col " << col;
            }
        }
    }
}

float float_of(std::uint32_t bits) {
    float v;
    std::memcpy(&v, &bits, sizeof(v));
    return v;
}

std::uint32_t bits_of(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    return bits;
}

// Worked values: every operand 1 + 2^-11 (half a tf32 unit past 1, bits 0x3f801000) times 1.
// Rounded to nearest, ties away (cvt.rna), it is 1 + 2^-10, so each dot product of 8 is
// 8 + 2^-7 on top of c; handed over unrounded, the tensor cores read its top 19 bits, 1.0,
// and the product is exactly 8.
TEST(EmuModel, Tf32MmaRoundsOrTruncatesItsOperands) {
    const float tie = float_of(0x3f801000u);
    std::vector<float> a(16 * 8, tie), b(8 * 8, 1.0f), c(16 * 8, 0.5f);
    for (bool round : {true, false}) {
        std::vector<float> d(16 * 8, std::nanf(""));
        probes::mma_tf32_probe(a.data(), b.data(), c.data(), round, d.data());
        for (float v : d) EXPECT_EQ(v, round ? 8.5f + 0x1p-7f : 8.5f) << (round ? "rounded" : "unrounded");
    }
}

// cvt.rna.tf32.f32 against values worked out from the format: 10 mantissa bits kept, to
// nearest, ties away from zero (where ties to even would differ: 1 + 2^-11 is a tie between 1
// and 1 + 2^-10, 1 even), carries into the exponent, overflow to infinity, NaN kept.
TEST(EmuModel, Tf32RoundingIsToNearestTiesAway) {
    using emu::ptx::round_to_tf32;
    EXPECT_EQ(round_to_tf32(0x3f800000u), 0x3f800000u);  // 1.0
    EXPECT_EQ(round_to_tf32(0x3f801000u), 0x3f802000u);  // 1 + 2^-11: tie, away (to even: 1.0)
    EXPECT_EQ(round_to_tf32(0xbf801000u), 0xbf802000u);  // the same, negative: away from zero
    EXPECT_EQ(round_to_tf32(0x3f800fffu), 0x3f800000u);  // just below the tie
    EXPECT_EQ(round_to_tf32(0x3f801001u), 0x3f802000u);  // just above
    EXPECT_EQ(round_to_tf32(0x3f803000u), 0x3f804000u);  // 1 + 3 * 2^-11: tie, away (even agrees)
    EXPECT_EQ(round_to_tf32(0x3f7fffffu), 0x3f800000u);  // 1 - 2^-24: carries into the exponent
    EXPECT_EQ(round_to_tf32(0x3dcccccdu), 0x3dccc000u);  // 0.1f: 0x0ccd below half a unit (0x1000)
    EXPECT_EQ(round_to_tf32(0x7f7fffffu), 0x7f800000u);  // the largest float: to infinity
    EXPECT_EQ(round_to_tf32(0xff800000u), 0xff800000u);  // -infinity kept
    EXPECT_EQ(round_to_tf32(0x00001000u), 0x00002000u);  // a subnormal tie, away
    EXPECT_EQ(round_to_tf32(0x80000000u), 0x80000000u);  // -0
    for (std::uint32_t nan : {0x7fc00000u, 0x7f800001u, 0xffffffffu}) {
        const std::uint32_t r = round_to_tf32(nan);
        EXPECT_TRUE(std::isnan(float_of(r))) << std::hex << nan << " -> " << r;
        EXPECT_EQ(r & 0x1fffu, 0u);
    }
    // Every result is a tf32 (13 low bits zero) within half a tf32 unit of the input.
    for (std::uint32_t bits = 0x00800000u; bits < 0x7f000000u; bits += 0x00012345u) {
        const std::uint32_t r = round_to_tf32(bits);
        EXPECT_EQ(r & 0x1fffu, 0u);
        const double unit = std::ldexp(1.0, static_cast<int>(bits >> 23) - 127 - 10);
        EXPECT_LE(std::abs(double{float_of(r)} - double{float_of(bits)}), unit / 2) << std::hex << bits;
    }
}

// A shared chunk rounded in place (the wgmma kernels' tf32 operands): each word as
// round_to_tf32 rounds it (ties away, carries, NaN, a subnormal tie), visible to the warp after
// a __syncwarp.
TEST(EmuModel, SharedChunksRoundToTf32InPlace) {
    alignas(16) std::array<std::uint32_t, 128> in{};
    const std::uint32_t worked[] = {0x3f801000u, 0xbf801000u, 0x3f800fffu, 0x3f7fffffu,
                                    0x3dcccccdu, 0x7f7fffffu, 0x00001000u, 0x7f800001u};
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = i < 8 ? worked[i] : 0x3f800000u + 0x0fffu * i;
    std::array<float, 128> out;
    out.fill(std::nanf(""));
    probes::round_shared_tf32_probe(reinterpret_cast<const float*>(in.data()), out.data());
    for (std::size_t lane = 0; lane < 32; ++lane) {
        for (std::size_t i = 0; i < 4; ++i) {
            const std::size_t from = (lane + 1) % 32 * 4 + i;
            EXPECT_EQ(bits_of(out[lane * 4 + i]), emu::ptx::round_to_tf32(in[from])) << "word " << from;
        }
    }
    EXPECT_EQ(bits_of(out[31 * 4]), 0x3f802000u);  // lane 31 reads lane 0's chunk: the tie, away
}

// Max pooling's pair compare (set.gt | set.nan on bf16x2 / f16x2) against the host's scan rule
// (detail::max_pool_takes: greater, ordered, or a NaN), lane by lane, over every pair of special
// values in both halves of a word: signed zeros, ±1 and 2, infinities, quiet and signalling NaNs
// of both signs, subnormals, the largest finite value. On a GPU the packed max-pooling tests
// check the instructions themselves against the per-element kernels.
TEST(EmuModel, PairCompareFollowsTheMaxPoolingRule) {
    const std::vector<std::uint16_t> bfloat16_values = {0x0000, 0x8000, 0x3F80, 0xBF80, 0x4000, 0x7F80, 0xFF80,
                                                        0x7FC0, 0xFFC1, 0x7F81, 0x0001, 0x8001, 0x7F7F};
    const std::vector<std::uint16_t> float16_values = {0x0000, 0x8000, 0x3C00, 0xBC00, 0x4000, 0x7C00, 0xFC00,
                                                       0x7E00, 0xFE01, 0x7C01, 0x0001, 0x8001, 0x7BFF};
    for (bool bf16 : {true, false}) {
        SCOPED_TRACE(bf16 ? "bf16x2" : "f16x2");
        const std::vector<std::uint16_t>& values = bf16 ? bfloat16_values : float16_values;
        const auto value_of = [&](std::uint16_t bits) {
            return bf16 ? static_cast<float>(bfloat16::from_bits(bits)) : static_cast<float>(float16::from_bits(bits));
        };
        std::vector<std::uint32_t> a, b;
        for (std::uint16_t x : values) {
            for (std::uint16_t y : values) {
                a.push_back(x | std::uint32_t{y} << 16);  // low half x against y, high half y against x
                b.push_back(y | std::uint32_t{x} << 16);
            }
        }
        std::vector<std::uint32_t> out(a.size(), 0x12345678u);
        probes::pair_takes_maximum_probe(bf16, a.data(), b.data(), static_cast<int>(a.size()), out.data());
        for (std::size_t i = 0; i < a.size(); ++i) {
            for (int half = 0; half < 2; ++half) {
                const auto x = static_cast<std::uint16_t>(a[i] >> (16 * half));
                const auto y = static_cast<std::uint16_t>(b[i] >> (16 * half));
                const bool takes = detail::max_pool_takes(false, value_of(x), value_of(y));
                EXPECT_EQ((out[i] >> (16 * half)) & 0xFFFFu, takes ? 0xFFFFu : 0u)
                    << std::hex << "a 0x" << x << " against b 0x" << y;
            }
        }
    }
}

// The fault's message must name what went wrong, the kernel, a block and a thread. The probe's two
// blocks run in the schedule's order, so a misuse both commit faults in the first to run: block 0,
// or block 1 under reverse (random runs a grid of fewer than 3 blocks ascending);
// `block_and_thread` names block 0 for those.
void expect_fault(probes::Misuse misuse, const std::string& what, std::string block_and_thread) {
    const std::string first_block = "block (0,0,0)";
    if (emu::current_schedule() == emu::Schedule::Reverse && block_and_thread.starts_with(first_block)) {
        block_and_thread.replace(0, first_block.size(), "block (1,0,0)");
    }
    try {
        probes::misuse_probe(misuse);
        ADD_FAILURE() << "no KernelFault; expected: " << what;
    } catch (const KernelFault& fault) {
        const std::string message = fault.what();
        EXPECT_NE(message.find(what), std::string::npos) << message;
        EXPECT_NE(message.find("kernel misuse_kernel"), std::string::npos) << message;
        EXPECT_NE(message.find(block_and_thread), std::string::npos) << message;
    }
}

TEST(EmuModel, MisuseIsAFaultNamingKernelBlockAndThread) {
    expect_fault(probes::Misuse::EarlyReturnBeforeBarrier,
                 "threads 0-4, 6-31 wait at __syncthreads (emu/probe_kernels.cu", "block (0,0,0), thread (0,0,0)");
    expect_fault(probes::Misuse::EarlyReturnBeforeBarrier, "deadlock: threads 5 have returned", "block (0,0,0)");
    expect_fault(probes::Misuse::DifferentWarpOperations, "at different warp operations", "block (0,0,0), thread");
    expect_fault(probes::Misuse::LaneOutsideItsMask, "which excludes the calling lane 20",
                 "block (0,0,0), thread (20,0,0)");
    expect_fault(probes::Misuse::SourceOutsideTheMask, "reads lane 20, which is outside its mask",
                 "block (0,0,0), thread (0,0,0)");
    expect_fault(probes::Misuse::MisalignedLdmatrix, "is not 16-byte aligned", "block (0,0,0), thread (3,0,0)");
    expect_fault(probes::Misuse::MisalignedPack, "misaligned address: a pack of 16 bytes",
                 "block (0,0,0), thread (6,0,0)");
    expect_fault(probes::Misuse::Trap, "__trap() at emu/probe_kernels.cu", "block (1,0,0), thread (9,0,0)");
    expect_fault(probes::Misuse::DifferentBarriers,
                 "threads wait at different barriers: thread 0 at emu/probe_kernels.cu", "block (0,0,0), thread");
    expect_fault(probes::Misuse::SyncwarpWithoutALane, "threads 7 have returned", "block (0,0,0)");
    expect_fault(probes::Misuse::SyncwarpWithoutALane, "wait at __syncwarp with mask 0xffffffff", "block (0,0,0)");
    expect_fault(probes::Misuse::MisalignedTf32Rounding, "ld.shared.v4.b32 of", "block (0,0,0), thread (2,0,0)");
    expect_fault(probes::Misuse::MisalignedTf32Rounding, "is not 16-byte aligned", "block (0,0,0), thread (2,0,0)");
    expect_fault(probes::Misuse::Tf32RoundingBeforeTheWait,
                 "the destination of a cp.async of thread 4 before that thread's cp.async.wait_group",
                 "block (0,0,0), thread (4,0,0)");
    expect_fault(probes::Misuse::MbarrierCountZero, "mbarrier.init at kernels/ptx.cuh",
                 "block (0,0,0), thread (0,0,0)");
    expect_fault(probes::Misuse::MbarrierCountZero, "count 0 (1 to 1048575)", "block (0,0,0), thread (0,0,0)");
    expect_fault(probes::Misuse::MbarrierNotInitialised, "the barrier was not initialised (mbarrier.init)",
                 "block (0,0,0), thread (3,0,0)");
    expect_fault(probes::Misuse::MbarrierInitialisedTwice, "already initialised (mbarrier.inval it first)",
                 "block (0,0,0), thread (0,0,0)");
    expect_fault(probes::Misuse::MbarrierNeverCompletes,
                 "deadlock: threads 0-31 wait at an mbarrier for its phase of parity 0", "block (0,0,0)");
}

// bar.sync id, count (kernels/ptx.cuh named_barrier_sync): the 96 threads left after warp 0 has
// returned meet at barrier 1 twice and see each other's shared writes each time (the values read
// after each barrier are the ones written before it: shared memory starts poisoned, so a barrier
// that let a thread through early would read poison), under every schedule.
TEST(EmuModel, NamedBarriersJoinTheirCountOfThreadsAndStartOver) {
    const ClearScheduleOverride clear;
    under_every_schedule([] {
        std::vector<int> out(128, -1);
        probes::named_barrier_probe(probes::NamedBarrierUse::Exchange, out.data());
        for (int t = 0; t < 32; ++t) EXPECT_EQ(out[static_cast<std::size_t>(t)], -1) << t;
        for (int me = 0; me < 96; ++me) {
            const int next = (me + 1) % 96, after_next = (me + 2) % 96;
            EXPECT_EQ(out[static_cast<std::size_t>(me + 32)], (next + 32) + 1000 * (after_next + 32)) << me;
        }
    });
}

// Its misuse: an id of 0 (__syncthreads'), a count that is not whole warps, two counts for one
// barrier, a barrier filled with part of a warp (the hardware counts warps), and a barrier that
// never fills (a deadlock naming the barrier and its count).
TEST(EmuModel, NamedBarrierMisuseIsAFault) {
    auto expect_named_fault = [](probes::NamedBarrierUse use, const std::string& what) {
        std::vector<int> out(128, -1);
        try {
            probes::named_barrier_probe(use, out.data());
            ADD_FAILURE() << "no KernelFault; expected: " << what;
        } catch (const KernelFault& fault) {
            const std::string message = fault.what();
            EXPECT_NE(message.find(what), std::string::npos) << message;
            EXPECT_NE(message.find("kernel named_barrier_kernel"), std::string::npos) << message;
        }
    };
    expect_named_fault(probes::NamedBarrierUse::IdZero, "named barriers are 1 to 15 (0 is __syncthreads')");
    expect_named_fault(probes::NamedBarrierUse::CountNotWarps, "the count must be a positive multiple of 32");
    expect_named_fault(probes::NamedBarrierUse::DifferentCounts,
                       "threads wait at named barrier 2 for different counts");
    expect_named_fault(probes::NamedBarrierUse::PartOfAWarp, "filled with part of warp");
    expect_named_fault(probes::NamedBarrierUse::NeverFills,
                       "deadlock: threads 0-31 have returned; threads 32-127 wait at named barrier 1 for 128 threads");
}

// The mbarrier ring (probe_kernels.cu): every consumer's sum equals the host's, in the same order,
// bit for bit, under every schedule: the producer refills a stage only after both consumer warps
// have arrived on its empty barrier, and they read it only after the producer's lanes have
// arrived on its full one, phase after phase (12 chunks: 4 rounds of the 3 stages, both parities
// twice). Each flaw is caught: refilling without the empty wait overwrites chunks not yet read
// under run-to-block (the producer runs ahead); waiting for the wrong parity reads a stage before
// its chunk has come (poison: NaN sums) or deadlocks. (Without the empty wait, the producer's
// lanes each arrive on a stage's full barrier once a round, so its phases run ahead of the
// consumers' parities: they wait for a phase that never completes, as they would on a GPU.)
TEST(EmuModel, MbarrierRingMatchesTheHostUnderEverySchedule) {
    constexpr int kChunks = 12;
    std::vector<float> in(kChunks * 32);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i % 97) * 0.25f - 7.0f;
    std::vector<float> expected(64);
    for (int w = 0; w < 2; ++w) {
        for (int l = 0; l < 32; ++l) {
            float sum = 0.0f;
            for (int c = 0; c < kChunks; ++c) sum += in[static_cast<std::size_t>(c * 32 + l)];
            expected[static_cast<std::size_t>(w * 32 + l)] = sum;
        }
    }
    const ClearScheduleOverride clear;
    under_every_schedule([&] {
        std::vector<float> out(64, std::nanf(""));
        probes::mbarrier_pipeline_probe(in.data(), kChunks, out.data());
        EXPECT_EQ(out, expected);
    });
    // The schedules each flaw must be caught under: the missing empty wait is a race that the
    // forward schedule's lockstep happens to win; run-to-block lets the producer run ahead.
    const std::vector<std::pair<probes::PipelineFlaw, std::vector<emu::Schedule>>> flaws = {
        {probes::PipelineFlaw::NoEmptyWait, {emu::Schedule::RunToBlock}},
        {probes::PipelineFlaw::WrongFullParity, {emu::Schedule::Forward, emu::Schedule::RunToBlock}}};
    for (const auto& [flaw, schedules] : flaws) {
        for (emu::Schedule s : schedules) {
            SCOPED_TRACE(emu::schedule_name(s));
            emu::set_schedule_override(s);
            std::vector<float> out(64, std::nanf(""));
            try {
                probes::mbarrier_pipeline_probe(in.data(), kChunks, out.data(), flaw);
                EXPECT_NE(out, expected) << "a flaw went unnoticed";
            } catch (const KernelFault& fault) {
                EXPECT_NE(std::string(fault.what()).find("mbarrier"), std::string::npos) << fault.what();
            }
        }
    }
}

// The bulk tensor copy (tests/emu/bulk_tensor_copy.cu): every box's bytes in shared memory are the
// definition's (bulk_copy_problem.h: the tensor map's strides, zeros outside the tensor, the
// 128-byte swizzle), through both stages and both parities of their barriers, under every schedule
// (the copies land at once, at random, or only once every thread waits). Each flaw is caught: an
// expect_tx short of the box never completes its phase (a deadlock at the wait); reading without
// the wait sees the poison of a copy not landed, or arrives again on a phase whose arrivals are
// all in, or leaves a copy in flight when the block ends; and a copy completing on a barrier whose
// init was not fenced for the async proxy is a fault.
// Runs `probe` into a buffer of `expected`'s size, poisoned (0xAB), under every schedule, and
// expects `expected` each time.
template <class Probe>
void expect_bytes_under_every_schedule(const std::vector<unsigned char>& expected, Probe&& probe) {
    under_every_schedule([&] {
        std::vector<unsigned char> out(expected.size(), 0xAB);
        probe(out.data());
        EXPECT_EQ(out, expected);
    });
}

TEST(EmuModel, BulkTensorCopyMatchesTheDefinitionUnderEverySchedule) {
    CONVKIT_SEEDED_RNG(rng);
    const ClearScheduleOverride clear;
    for (testing::BulkCopyProblem& p : testing::bulk_copy_problems(rng)) {
        SCOPED_TRACE(p.name);
        p.spec.global = p.tensor.data();
        const tma::TensorMap map = kernels::encode_tiled_tensor_map("test", p.spec);
        const auto box_bytes = static_cast<unsigned>(tma::box_bytes(p.spec));
        expect_bytes_under_every_schedule(p.expected, [&](unsigned char* out) {
            probes::bulk_tensor_copy_probe(map, p.spec.rank, p.coordinates.data(), p.boxes, box_bytes, out);
        });
        for (emu::Schedule s : {emu::Schedule::Forward, emu::Schedule::Reverse}) {
            SCOPED_TRACE(emu::schedule_name(s));
            emu::set_schedule_override(s);
            std::vector<unsigned char> out(p.expected.size(), 0xAB);
            try {
                probes::bulk_tensor_copy_probe(map, p.spec.rank, p.coordinates.data(), p.boxes, box_bytes, out.data(),
                                               probes::BulkCopyFlaw::ShortTransactionCount);
                ADD_FAILURE() << "a short expect_tx went unnoticed";
            } catch (const KernelFault& fault) {
                EXPECT_NE(std::string(fault.what()).find("deadlock"), std::string::npos) << fault.what();
            }
        }
        emu::set_schedule_override(emu::Schedule::Forward);
        std::vector<unsigned char> out(p.expected.size(), 0xAB);
        try {
            probes::bulk_tensor_copy_probe(map, p.spec.rank, p.coordinates.data(), p.boxes, box_bytes, out.data(),
                                           probes::BulkCopyFlaw::NoWait);
            EXPECT_NE(out, p.expected) << "reading before the wait went unnoticed";
        } catch (const KernelFault& fault) {
            // The next box's arrival on a phase still waiting for the first copy, or a copy in flight
            // at the end.
            const std::string what = fault.what();
            EXPECT_TRUE(what.find("whose arrivals are all in") != std::string::npos ||
                        what.find("still in flight") != std::string::npos)
                << what;
        }
        try {
            probes::bulk_tensor_copy_probe(map, p.spec.rank, p.coordinates.data(), p.boxes, box_bytes, out.data(),
                                           probes::BulkCopyFlaw::UnfencedInit);
            ADD_FAILURE() << "an unfenced barrier init went unnoticed";
        } catch (const KernelFault& fault) {
            EXPECT_NE(std::string(fault.what()).find("was not fenced for the async proxy"), std::string::npos)
                << fault.what();
        }
    }
}

// The im2col copy (the same probe with im2col maps): every box's rows are the definition's walk
// (bulk_copy_problem.h: the bounding box's pixels from the coordinates, stepped by the traversal
// stride, across image edges and past the last image, each read at the offsets; channels past C
// and positions outside the tensor zero), swizzled, under every schedule; 2-D, strided, a larger
// tensor, 1-D with dilation, 3-D.
TEST(EmuModel, BulkIm2colCopyMatchesTheDefinitionUnderEverySchedule) {
    CONVKIT_SEEDED_RNG(rng);
    const ClearScheduleOverride clear;
    for (testing::BulkIm2colProblem& p : testing::bulk_im2col_problems(rng)) {
        SCOPED_TRACE(p.name);
        p.spec.global = p.tensor.data();
        const tma::TensorMap map = kernels::encode_im2col_tensor_map("test", p.spec);
        expect_bytes_under_every_schedule(p.expected, [&](unsigned char* out) {
            probes::bulk_im2col_copy_probe(map, p.spec.rank, p.coordinates.data(), p.offsets.data(), p.boxes,
                                           static_cast<unsigned>(tma::box_bytes(p.spec)), out);
        });
    }
    // The driver's rules: corners past rank 5's 5 bits, a traversal stride of 9, an empty box.
    testing::BulkIm2colProblem p = testing::bulk_im2col_problems(rng).back();
    p.spec.global = p.tensor.data();
    auto refused = [&](const char* rule, auto&& change) {
        tma::Im2colTensorMapSpec bad = p.spec;
        change(bad);
        try {
            kernels::encode_im2col_tensor_map("conv_probe", bad);
            ADD_FAILURE() << rule << " was accepted";
        } catch (const InvalidArgument& e) {
            EXPECT_NE(std::string(e.what()).find("conv_probe: im2col tensor map: "), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(rule), std::string::npos) << e.what();
        }
    };
    refused("corners -17 and -1 (-16 to 15 at rank 5)", [](tma::Im2colTensorMapSpec& s) { s.lower[0] = -17; });
    refused("traversal stride 9", [](tma::Im2colTensorMapSpec& s) { s.traversal[1] = 9; });
    refused("an empty bounding box", [](tma::Im2colTensorMapSpec& s) { s.upper[2] = -8; });
    refused("pixels per column 2048", [](tma::Im2colTensorMapSpec& s) { s.pixels_per_column = 2048; });
    refused("rank 2", [](tma::Im2colTensorMapSpec& s) { s.rank = 2; });
}

// A map the driver would refuse is an InvalidArgument naming the op and the rule, before anything
// is encoded; a copy through bytes the emulator did not encode, or with the wrong number of
// coordinates, is a fault.
TEST(EmuModel, TensorMapsFollowTheDriversRules) {
    std::vector<unsigned char> tensor(4096 + 16);
    tma::TiledTensorMapSpec good;
    good.global = tensor.data() + (16 - reinterpret_cast<std::uintptr_t>(tensor.data()) % 16) % 16;
    good.type = tma::ElementType::BFloat16;
    good.rank = 2;
    good.dims = {64, 16};
    good.strides = {0, 128};
    good.box = {64, 8};
    good.swizzle = wgmma::Swizzle::Bytes128;
    EXPECT_NO_THROW(kernels::encode_tiled_tensor_map("test", good));
    auto refused = [&](const char* rule, auto&& change) {
        tma::TiledTensorMapSpec bad = good;
        change(bad);
        try {
            kernels::encode_tiled_tensor_map("conv_probe", bad);
            ADD_FAILURE() << rule << " was accepted";
        } catch (const InvalidArgument& e) {
            EXPECT_NE(std::string(e.what()).find("conv_probe: tensor map: "), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(rule), std::string::npos) << e.what();
        }
    };
    refused("rank 6", [](tma::TiledTensorMapSpec& s) { s.rank = 6; });
    refused("not 16-byte aligned",
            [](tma::TiledTensorMapSpec& s) { s.global = static_cast<const char*>(s.global) + 8; });
    refused("stride 120 bytes", [](tma::TiledTensorMapSpec& s) { s.strides[1] = 120; });
    refused("box 512", [](tma::TiledTensorMapSpec& s) { s.box[1] = 512; });
    refused("size 0", [](tma::TiledTensorMapSpec& s) { s.dims[1] = 0; });
    refused("inner 14 bytes", [](tma::TiledTensorMapSpec& s) { s.box[0] = 7; });
    refused("exceed the swizzle's 64", [](tma::TiledTensorMapSpec& s) { s.swizzle = wgmma::Swizzle::Bytes64; });

    tma::TensorMap forged{};
    std::vector<unsigned char> out(tma::box_bytes(good));
    const int three[3] = {0, 0, 0};
    EXPECT_THROW(probes::bulk_tensor_copy_probe(forged, 3, three, 1, static_cast<unsigned>(out.size()), out.data()),
                 KernelFault);
    const tma::TensorMap map = kernels::encode_tiled_tensor_map("test", good);
    EXPECT_THROW(probes::bulk_tensor_copy_probe(map, 3, three, 1, static_cast<unsigned>(out.size()), out.data()),
                 KernelFault);
}

TEST(EmuModel, TheSameFaultUnderEverySchedule) {
    const ClearScheduleOverride clear;
    under_every_schedule([] {
        EXPECT_THROW(probes::misuse_probe(probes::Misuse::EarlyReturnBeforeBarrier), KernelFault);
        EXPECT_THROW(probes::misuse_probe(probes::Misuse::Trap), KernelFault);
    });
}

// The launch helper's checks, the same InvalidArgument as on the GPU build.
TEST(EmuModel, BadLaunchShapesAreInvalidArguments) {
    auto expect_refused = [](unsigned blocks, unsigned threads, std::size_t bytes, const std::string& why) {
        try {
            probes::empty_kernel_launch(blocks, threads, bytes);
            ADD_FAILURE() << "launch accepted; expected: " << why;
        } catch (const InvalidArgument& e) {
            EXPECT_NE(std::string(e.what()).find("launch of empty_kernel: " + why), std::string::npos) << e.what();
        }
    };
    expect_refused(0, 32, 0, "empty grid");
    expect_refused(1, 0, 0, "empty block");
    expect_refused(1, 2048, 0, "2048 threads per block, more than 1024");
    expect_refused(1, 32, 64 * 1024, "65536 bytes of dynamic shared memory, more than the 49152");
    EXPECT_NO_THROW(probes::empty_kernel_launch(3, 1024, 48 * 1024));
}

TEST(EmuModel, ScheduleComesFromTheEnvironment) {
    const char* saved = std::getenv("CONVKIT_EMU_SCHEDULE");
    const std::string restore = saved != nullptr ? saved : "";
    setenv("CONVKIT_EMU_SCHEDULE", "run-to-block", 1);
    EXPECT_EQ(emu::schedule_from_environment(), emu::Schedule::RunToBlock);
    setenv("CONVKIT_EMU_SCHEDULE", "sideways", 1);
    EXPECT_THROW(emu::schedule_from_environment(), InvalidArgument);
    if (saved != nullptr) {
        setenv("CONVKIT_EMU_SCHEDULE", restore.c_str(), 1);
    } else {
        unsetenv("CONVKIT_EMU_SCHEDULE");
    }
}

}  // namespace
}  // namespace convkit
