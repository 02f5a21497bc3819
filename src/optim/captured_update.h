#pragma once
// How an optimizer's fused update runs eagerly, is captured into a CUDA graph, and is refreshed
// before each replay (CapturedStep, docs/architecture.md "CUDA graphs"). At capture the update's
// launch is recorded over a device table of stable address; before each replay the optimizer's
// hook advances its host state (step counts) and uploads the new coefficients and per-tensor
// scalars into that table, so the learning rate a scheduler set and the bias corrections of the
// step are read by the replayed launch, never baked into it.
#include <array>
#include <memory>
#include <type_traits>
#include <vector>

#include "backends/host/optimizer_host.h"
#include "convkit/autograd.h"
#include "cuda/graph_capture.h"
#include "kernels/optimizer.h"

namespace convkit::detail {

enum class UpdatePhase {
    Eager,    // upload into scratch and launch
    Capture,  // lay out the stable table and launch over it (recorded, not run)
    Refresh,  // before a replay: upload the step's table into the stable one
};

// One stable table per dtype of parameters (float, double), owned by the replay hook.
using DeviceUpdateTables = std::array<kernels::DeviceUpdateTable, 2>;

template <typename T>
void update_host(const SgdCoefficients<T>& c, const std::vector<SgdTensor<T>>& table) {
    sgd_update_host(c, table);
}
template <typename T>
void update_host(const AdamCoefficients<T>& c, const std::vector<AdamTensor<T>>& table) {
    adam_update_host(c, table);
}

// One table's update on `device`: the host loop, or the fused kernel in `phase`.
template <typename Coefficients, typename Entry>
void run_update(Device device, const Coefficients& c, const std::vector<Entry>& table, UpdatePhase phase,
                DeviceUpdateTables* tables) {
    if (device.is_host()) {
        update_host(c, table);
        return;
    }
    const Stream stream = current_stream(device.index);
    using T = std::remove_pointer_t<decltype(Entry::param)>;
    if (phase == UpdatePhase::Eager) {
        kernels::DeviceUpdateTable scratch;
        kernels::write_update_table(c, table, stream, true, scratch);
        kernels::launch_update_table(scratch, stream);
        return;
    }
    kernels::DeviceUpdateTable& stable = (*tables)[std::is_same_v<T, double> ? 1 : 0];
    kernels::write_update_table(c, table, stream, phase == UpdatePhase::Refresh, stable);
    if (phase == UpdatePhase::Capture) kernels::launch_update_table(stable, stream);
}

// An optimizer step's update: eagerly, advance() then enqueue(Eager); under `capture`, the
// launch is recorded over stable tables and a hook runs advance() and enqueue(Refresh) before
// each replay. advance() is the host state a step changes (step counts, version counters);
// enqueue(phase, tables) builds the step's tables and calls enqueue_update.
template <typename Advance, typename Enqueue>
void run_or_capture_update(GraphCapture* capture, Advance advance, Enqueue enqueue) {
    if (capture == nullptr) {
        advance();
        enqueue(UpdatePhase::Eager, nullptr);
        return;
    }
    // The capture runs nothing: the host state advances when a replay runs the step.
    auto tables = std::make_shared<DeviceUpdateTables>();
    enqueue(UpdatePhase::Capture, tables.get());
    capture->before_each_replay([advance, enqueue, tables] {
        NoGradGuard no_grad;  // the hook runs in replay(), outside the optimizer's step()
        advance();
        enqueue(UpdatePhase::Refresh, tables.get());
    });
}

}  // namespace convkit::detail
