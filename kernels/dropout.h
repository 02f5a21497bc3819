#pragma once
// Launcher for the dropout kernel (kernels/dropout.cu); plain C++ for host callers.
#include <cstdint>

#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// y[i] = x[i] * (dropout_keeps(seed, i, p) ? 1 / (1 - p) : 0) for i < count (ops/dropout_math.h).
// With `seed_on_device` set, the seed is the uint64 there when the kernel runs (a CUDA graph's
// replays write it first), and `seed` is unused.
void dropout(DType dtype, const void* x, void* y, std::int64_t count, double p, std::uint64_t seed,
             const std::uint64_t* seed_on_device, Stream stream);

CONVKIT_KERNELS_END
