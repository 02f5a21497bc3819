#pragma once
// How much column matrix cuda.im2col builds per block of images (backends/cuda/conv_im2col_variant.cpp):
// 64 MiB unless set. Process-wide; tests lower it so that small problems run as several blocks
// (the block offsets, and backward-filter's sum over blocks).
#include <cstddef>

namespace convkit::detail {

inline constexpr std::size_t kDefaultIm2colColumnBudgetBytes = std::size_t{64} << 20;

std::size_t im2col_column_budget();
// 0 restores the default.
void set_im2col_column_budget(std::size_t bytes);

}  // namespace convkit::detail
