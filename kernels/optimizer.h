#pragma once
// Launchers of the fused optimizer updates (kernels/optimizer.cu); plain C++ for host callers.
// Each update is ONE kernel launch for the whole table, whatever the number of tensors: the table
// is copied to the device and every block updates one chunk of one tensor (optim/multi_tensor.h).
// The kernel reads everything that changes from step to step (the coefficients, the per-tensor
// bias corrections, the learning rate) from that device copy, never from its arguments, so a
// CUDA graph can replay the launch while the table is uploaded afresh before each replay
// (CapturedStep, docs/architecture.md "CUDA graphs"). All tensors of a table are on the device
// of `stream`. The host loop over the same table is src/backends/host/optimizer_host.h.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "backend_api/optimizer_math.h"
#include "convkit/device.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// The device copy of one update table: coefficients, entries and block plan in one buffer.
struct DeviceUpdateTable {
    enum class Kind { SgdFloat, SgdDouble, AdamFloat, AdamDouble };
    std::shared_ptr<void> buffer;
    std::size_t bytes = 0;
    Kind kind = Kind::SgdFloat;
    std::int64_t blocks = 0;  // the launch's grid; 0: nothing to update
    int count = 0;            // entries
};

// Eager: uploads the table into scratch memory (one async copy) and launches once.
void sgd_multi_tensor_update(const detail::SgdCoefficients<float>& c,
                             const std::vector<detail::SgdTensor<float>>& table, Stream stream);
void sgd_multi_tensor_update(const detail::SgdCoefficients<double>& c,
                             const std::vector<detail::SgdTensor<double>>& table, Stream stream);
void adam_multi_tensor_update(const detail::AdamCoefficients<float>& c,
                              const std::vector<detail::AdamTensor<float>>& table, Stream stream);
void adam_multi_tensor_update(const detail::AdamCoefficients<double>& c,
                              const std::vector<detail::AdamTensor<double>>& table, Stream stream);

// For a CUDA graph: lays the table out in `device_table` (allocating its buffer on `stream`
// when it has none of the right size) and, with `upload`, enqueues the one async copy of it from
// pageable memory (staged when called). launch_update_table then launches over it; a graph
// records that launch once, and each replay is preceded by an upload.
// Instantiated for SGD's and Adam's tables in float and double.
template <typename Coefficients, typename Entry>
void write_update_table(const Coefficients& c, const std::vector<Entry>& table, Stream stream, bool upload,
                        DeviceUpdateTable& device_table);
void launch_update_table(const DeviceUpdateTable& device_table, Stream stream);

// Kernel launches made by the functions above so far, in this process: tests check that a step
// costs one per dtype, whatever the number of parameters.
std::uint64_t multi_tensor_update_launches();

CONVKIT_KERNELS_END
