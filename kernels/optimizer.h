#pragma once
// Launchers of the fused optimizer updates (kernels/optimizer.cu); plain C++ for host callers.
// Each call is ONE kernel launch for the whole table, whatever the number of tensors: the table
// is copied to the device and every block updates one chunk of one tensor (optim/multi_tensor.h).
// All tensors of a table are on the device of `stream`. The host loop over the same table is
// src/backends/host/optimizer_host.h.
#include <cstdint>
#include <vector>

#include "convkit/device.h"
#include "kernels/kernels_namespace.h"
#include "backend_api/optimizer_math.h"

CONVKIT_KERNELS_BEGIN

void sgd_multi_tensor_update(const detail::SgdCoefficients<float>& c,
                             const std::vector<detail::SgdTensor<float>>& table, Stream stream);
void sgd_multi_tensor_update(const detail::SgdCoefficients<double>& c,
                             const std::vector<detail::SgdTensor<double>>& table, Stream stream);
void adam_multi_tensor_update(const detail::AdamCoefficients<float>& c,
                              const std::vector<detail::AdamTensor<float>>& table, Stream stream);
void adam_multi_tensor_update(const detail::AdamCoefficients<double>& c,
                              const std::vector<detail::AdamTensor<double>>& table, Stream stream);

// Kernel launches made by the functions above so far, in this process: tests check that a step
// costs one per dtype, whatever the number of parameters.
std::uint64_t multi_tensor_update_launches();

CONVKIT_KERNELS_END
