#pragma once
// How an optimizer's fused update runs eagerly, is captured into a CUDA graph, and is refreshed
// before each replay (CapturedStep, docs/architecture.md "CUDA graphs"). At capture the update's
// launch is recorded over a device table of stable address; before each replay the optimizer's
// hook advances its host state (step counts) and uploads the new coefficients and per-tensor
// scalars into that table, so the learning rate a scheduler set and the bias corrections of the
// step are read by the replayed launch, never baked into it.
#include <array>
#include <type_traits>
#include <vector>

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

template <typename Coefficients, typename Entry>
void enqueue_update(const Coefficients& c, const std::vector<Entry>& table, Stream stream, UpdatePhase phase,
                    DeviceUpdateTables* tables) {
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

}  // namespace convkit::detail
