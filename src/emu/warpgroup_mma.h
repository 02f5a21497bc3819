#pragma once
// wgmma.mma_async as the emulator models it (the operations themselves: emu/ptx_emulation.h).
// An mma is evaluated when the warpgroup issues it (its shared-memory operands read then; the
// wait checks that none of them has changed since, as the GPU may read them until then), but
// its result is held back: the accumulator registers of every thread are overwritten with NaN
// until a wgmma.wait_group covers the mma's commit group, and only then receive the result. So a
// kernel that reads its accumulators before the wait sees NaN, as it would see undefined values
// on a GPU. A later mma on the same accumulators before the wait chains onto the held result, as
// the hardware's back-to-back accumulation does.
#include <array>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace convkit::emu {

class WarpgroupMmas {
public:
    static constexpr int kThreads = 128;

    struct Issued {
        int group = -1;     // commit group; -1 until committed
        int registers = 0;  // accumulator floats per thread (N / 2)
        std::array<float*, kThreads> accumulators{};
        std::vector<float> results;  // kThreads x registers
        // Every operand byte read, with its value: the GPU may read them at any time until the
        // wait, so a change before then is a fault.
        std::vector<std::pair<const unsigned char*, unsigned char>> operands;
    };
    struct Warpgroup {
        std::vector<Issued> issued;  // in issue order
        int committed_groups = 0;
        bool fenced = false;  // a wgmma.fence since the start or the last wgmma.wait_group
    };

    // A block of `threads` threads with nothing in flight.
    void reset(std::size_t threads);
    Warpgroup& of(int warpgroup) { return groups_[static_cast<std::size_t>(warpgroup)]; }
    // "" when every issued mma was waited for; else what is left, for the block's fault.
    std::string unfinished() const;

private:
    std::vector<Warpgroup> groups_;
};

}  // namespace convkit::emu
