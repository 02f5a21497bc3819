#pragma once
// Argument checking used by every op: messages are "<op>: <what is wrong, with the values>".
#include <sstream>
#include <string>
#include <utility>

#include "convkit/error.h"

namespace convkit::detail {

template <typename... Parts>
std::string concat(Parts&&... parts) {
    std::ostringstream out;
    (out << ... << std::forward<Parts>(parts));
    return out.str();
}

}  // namespace convkit::detail

// Throws InvalidArgument("<op>: <message parts...>") unless `condition` holds.
#define CONVKIT_REQUIRE(condition, op, ...)                                                   \
    do {                                                                                      \
        if (!(condition)) {                                                                   \
            throw ::convkit::InvalidArgument(::convkit::detail::concat(op, ": ", __VA_ARGS__)); \
        }                                                                                     \
    } while (0)
