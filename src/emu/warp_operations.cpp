#include "emu/warp_operations.h"

#include <string>

#include "emu/emulator.h"

namespace convkit::emu {

namespace {
constexpr int kWarpSize = 32;

struct ShuffleInput {
    ShuffleKind kind;
    std::uint64_t bits;
    int lane_or_delta;
    int width;
};

const char* shuffle_name(ShuffleKind kind) {
    switch (kind) {
        case ShuffleKind::Index:
            return "__shfl_sync";
        case ShuffleKind::Up:
            return "__shfl_up_sync";
        case ShuffleKind::Down:
            return "__shfl_down_sync";
        case ShuffleKind::Xor:
            return "__shfl_xor_sync";
    }
    return "shuffle";
}

// The lane `lane` reads from, by the CUDA programming guide's rules: the warp splits into
// segments of `width` lanes; a source outside the lane's segment means its own value.
int shuffle_source(const ShuffleInput& in, int lane) {
    const int first = lane & ~(in.width - 1);
    switch (in.kind) {
        case ShuffleKind::Index:
            return first + (in.lane_or_delta & (in.width - 1));
        case ShuffleKind::Up: {
            const int source = lane - in.lane_or_delta;
            return source < first ? lane : source;
        }
        case ShuffleKind::Down: {
            const int source = lane + in.lane_or_delta;
            return source >= first + in.width ? lane : source;
        }
        case ShuffleKind::Xor: {
            const int source = lane ^ in.lane_or_delta;
            return source >= first + in.width || source < first ? lane : source;
        }
    }
    return lane;
}

void evaluate_shuffle(const WarpLanes& lanes) {
    for (int lane = 0; lane < kWarpSize; ++lane) {
        if (lanes.lane[lane] == nullptr) continue;
        const auto& in = *static_cast<const ShuffleInput*>(lanes.lane[lane]->input);
        const int source = shuffle_source(in, lane);
        // Reading a lane outside the mask gives an undefined value on the GPU.
        if (lanes.lane[source] == nullptr) {
            lane_fault(lanes, lane,
                       std::string(shuffle_name(in.kind)) + " reads lane " + std::to_string(source) +
                           ", which is outside its mask");
        }
        *static_cast<std::uint64_t*>(lanes.lane[lane]->output) =
            static_cast<const ShuffleInput*>(lanes.lane[source]->input)->bits;
    }
}

struct VoteInput {
    VoteKind kind;
    int predicate;
};

void evaluate_vote(const WarpLanes& lanes) {
    unsigned ballot = 0;
    for (int lane = 0; lane < kWarpSize; ++lane)
        if (lanes.lane[lane] != nullptr && static_cast<const VoteInput*>(lanes.lane[lane]->input)->predicate != 0)
            ballot |= 1u << lane;
    for (int lane = 0; lane < kWarpSize; ++lane) {
        if (lanes.lane[lane] == nullptr) continue;
        unsigned result = ballot;
        switch (static_cast<const VoteInput*>(lanes.lane[lane]->input)->kind) {
            case VoteKind::Ballot:
                break;
            case VoteKind::Any:
                result = ballot != 0;
                break;
            case VoteKind::All:
                result = ballot == lanes.mask;
                break;
        }
        *static_cast<unsigned*>(lanes.lane[lane]->output) = result;
    }
}

const char* vote_name(VoteKind kind) {
    switch (kind) {
        case VoteKind::Ballot:
            return "__ballot_sync";
        case VoteKind::Any:
            return "__any_sync";
        case VoteKind::All:
            return "__all_sync";
    }
    return "vote";
}

void evaluate_nothing(const WarpLanes&) {}
}  // namespace

std::uint64_t warp_shuffle(ShuffleKind kind, unsigned mask, std::uint64_t bits, int lane_or_delta, int width,
                           const std::source_location& site) {
    if (width <= 0 || width > kWarpSize || (width & (width - 1)) != 0)
        thread_fault(std::string(shuffle_name(kind)) + " with width " + std::to_string(width) +
                     ", not a power of two up to 32");
    const ShuffleInput in{kind, bits, lane_or_delta, width};
    std::uint64_t out = 0;
    warp_collective({shuffle_name(kind), mask, site, &in, &out}, evaluate_shuffle);
    return out;
}

unsigned warp_vote(VoteKind kind, unsigned mask, int predicate, const std::source_location& site) {
    const VoteInput in{kind, predicate};
    unsigned out = 0;
    warp_collective({vote_name(kind), mask, site, &in, &out}, evaluate_vote);
    return out;
}

void warp_sync(unsigned mask, const std::source_location& site) {
    warp_collective({"__syncwarp", mask, site, nullptr, nullptr}, evaluate_nothing);
}

}  // namespace convkit::emu
