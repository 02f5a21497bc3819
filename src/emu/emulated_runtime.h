#pragma once
// What the emulated CUDA device (CONVKIT_EMULATED_DEVICE, src/emu/emulated_runtime.cpp) can tell
// a test beyond the CUDA runtime API itself.
#include <cstdint>

namespace convkit::emu {

// How many times the host has waited for the device so far (stream, event and device
// synchronisations and the blocking cudaMemcpy): a training step should need none.
std::uint64_t host_synchronisations();

}  // namespace convkit::emu
