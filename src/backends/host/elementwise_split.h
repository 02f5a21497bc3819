#pragma once
// Splits an elementwise loop over the host-blas thread pool (thread_pool.h) when the build has
// it and the range is large. Elementwise results do not depend on how the range is cut, so
// the host loops (the oracle of the CUDA kernels) give the same values bit for bit either way.
#include <algorithm>
#include <cstdint>

#ifdef CONVKIT_WITH_OPENBLAS
#include "backends/host/thread_pool.h"
#endif

namespace convkit::detail {

// Calls range(begin, end) over [0, count): in pieces of 64 Ki elements spread over the
// threads when there are at least two of them (a parallel loop costs about as much as a few
// thousand elements), else once.
template <typename Range>
void for_each_element_range(std::int64_t count, Range&& range) {
#ifdef CONVKIT_WITH_OPENBLAS
    constexpr std::int64_t kPiece = std::int64_t{1} << 16;
    if (count >= 2 * kPiece) {
        const std::int64_t pieces = (count + kPiece - 1) / kPiece;
        host::parallel_for(pieces, [&](std::int64_t piece, int) {
            range(piece * kPiece, std::min(count, (piece + 1) * kPiece));
        });
        return;
    }
#endif
    range(std::int64_t{0}, count);
}

}  // namespace convkit::detail
