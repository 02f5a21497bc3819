#pragma once
// The warp-level intrinsics of the CPU build (__shfl*_sync, votes, __syncwarp), on top of
// warp_collective: each lane posts its part and waits until every lane of its mask has.
#include <cstdint>
#include <source_location>

namespace convkit::emu {

enum class ShuffleKind { Index, Up, Down, Xor };
// The bits of the value `lane`'s shuffle reads (values of up to 8 bytes travel as bits).
std::uint64_t warp_shuffle(ShuffleKind kind, unsigned mask, std::uint64_t bits, int lane_or_delta, int width,
                           const std::source_location& site);

enum class VoteKind { Ballot, Any, All };
unsigned warp_vote(VoteKind kind, unsigned mask, int predicate, const std::source_location& site);

void warp_sync(unsigned mask, const std::source_location& site);

}  // namespace convkit::emu
