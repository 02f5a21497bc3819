#pragma once
// How a tensor's elements lie in memory. The shape is always logical (N, C, spatial...); the
// format says in which order the buffer holds them, as PyTorch's memory_format does.
#include <cstdint>

namespace convkit {

// Contiguous: row-major in the logical order (NCL, NCHW, NCDHW).
// ChannelsLast: channels innermost (NLC, NHWC, NDHWC): defined for rank 3, 4 and 5 only; a
//   tensor of another rank is always Contiguous.
enum class MemoryFormat : std::uint8_t { Contiguous, ChannelsLast };

const char* memory_format_name(MemoryFormat format);  // "contiguous", "channels_last"

// Whether a tensor of `rank` can be channels-last (rank 3, 4 or 5).
constexpr bool channels_last_rank(int rank) {
    return rank >= 3 && rank <= 5;
}

// How many times an op converted a tensor between memory formats because the code that ran it
// reads one format only (every op's entry converts through one helper, and convolution and
// pooling convert when no chosen variant supports the given layout), and how many times a
// backward pass converted such a conversion's gradient back. Explicit Tensor::to(format) and
// contiguous() calls (and their gradients) are not counted. Process-wide, for benchmarks and
// tests.
std::uint64_t layout_conversions();
void reset_layout_conversions();

}  // namespace convkit
