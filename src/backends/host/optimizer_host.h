#pragma once
// The host loop of the optimizer updates: the same tables and per-element arithmetic
// (backend_api/optimizer_math.h) as the fused CUDA kernel (kernels/optimizer.h), and its oracle.
#include <vector>

#include "backends/host/elementwise_split.h"
#include "backend_api/optimizer_math.h"

namespace convkit::detail {

template <typename T>
void sgd_update_host(const SgdCoefficients<T>& c, const std::vector<SgdTensor<T>>& table) {
    for (const SgdTensor<T>& t : table) {
        for (std::int64_t i = 0; i < t.numel; ++i) sgd_update_element(c, t, i);
    }
}

template <typename T>
void adam_update_host(const AdamCoefficients<T>& c, const std::vector<AdamTensor<T>>& table) {
    for (const AdamTensor<T>& t : table) {
        for_each_element_range(t.numel, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t i = begin; i < end; ++i) adam_update_element(c, t, i);
        });
    }
}

}  // namespace convkit::detail
