#pragma once
// "[1, 2]": the multi-index of a flat element, for messages that point at one bad value
// (a class index out of range in cross_entropy or the metrics).
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "convkit/shape.h"

namespace convkit::detail {

inline std::string position_text(const Shape& shape, std::int64_t flat) {
    std::vector<std::int64_t> index(static_cast<std::size_t>(shape.rank()));
    for (int d = shape.rank() - 1; d >= 0; --d) {
        index[static_cast<std::size_t>(d)] = flat % shape[d];
        flat /= shape[d];
    }
    std::ostringstream text;
    text << '[';
    for (std::size_t i = 0; i < index.size(); ++i) text << (i ? ", " : "") << index[i];
    text << ']';
    return text.str();
}

}  // namespace convkit::detail
