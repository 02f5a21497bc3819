#pragma once
// The blocks of an unfolded convolution (im2col: a column matrix, then a matrix product): how much
// of the column matrix one block builds under a scratch budget. host.blas builds a block of output
// positions of one image and group per thread; cuda.im2col a block of whole images.
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace convkit::detail {

// How many units (output positions, images) of `unit_bytes` of column matrix each fit in
// `scratch_bytes`: at least one (a unit larger than the budget still runs, alone), at most `units`.
constexpr std::int64_t units_within_budget(std::size_t unit_bytes, std::size_t scratch_bytes, std::int64_t units) {
    const std::size_t fit = unit_bytes == 0 ? static_cast<std::size_t>(units) : scratch_bytes / unit_bytes;
    return std::max<std::int64_t>(
        static_cast<std::int64_t>(std::min<std::size_t>(fit, static_cast<std::size_t>(std::max<std::int64_t>(units, 1)))), 1);
}

}  // namespace convkit::detail
