#pragma once
// Weight initialisation, with PyTorch's formulas, so a layer built here starts from the same
// distribution as the same layer in PyTorch. Layers draw their seeds from a process-wide
// generator: manual_seed(s) makes model construction (in one thread) reproducible.
#include <cstdint>
#include <utility>

#include "convkit/tensor.h"

namespace convkit::nn::init {

void manual_seed(std::uint64_t seed);
std::uint64_t next_seed();  // a new seed from the process-wide generator

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (PyTorch's
// _calculate_fan_in_and_fan_out; rank >= 2).
std::pair<std::int64_t, std::int64_t> fan_in_and_fan_out(const Tensor& weight);

// In place, without recording gradients. Each draws next_seed().
void uniform_(Tensor& t, double low, double high);
void normal_(Tensor& t, double mean, double stddev);
void constant_(Tensor& t, double value);
// gain * sqrt(3 / fan_in) bounds with gain = sqrt(2 / (1 + a^2)): PyTorch's default for conv
// and linear weights is a = sqrt(5), which gives the bound 1 / sqrt(fan_in).
void kaiming_uniform_(Tensor& t, double a = 0.0);
void kaiming_normal_(Tensor& t, double a = 0.0);  // stddev gain / sqrt(fan_in)
void xavier_uniform_(Tensor& t, double gain = 1.0);

}  // namespace convkit::nn::init
