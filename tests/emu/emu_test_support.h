#pragma once
// Shared by the emulator suites (label emu): kernels run through their launchers on host
// memory (the CPU build of kernels/, CONVKIT_CPU_EMULATION), compared with the host reference.
#include <functional>

#include "test_util.h"
#include "tolerances.h"

namespace convkit::testing {

// The host results the suites compare with come from the reference (registered once per
// executable, in test_emu_conv_pool.cpp).

// Launchers take a stream; the emulator finishes every launch before returning, so any will do.
inline const Stream kEmuStream{};

// Float32 kernels sum in float32 (or double) over at most a few hundred terms here.
inline constexpr double kEmuFloat32Tolerance = 1e-5;

inline double emu_tolerance(DType dtype) {
    return dtype == DType::Float64 ? kFloat64Tolerance : kEmuFloat32Tolerance;
}

// Runs `kernel` into a NaN-filled host buffer of `reference`'s shape and dtype `dtype`, and
// expects the result within the dtype's tolerance of `reference` (an unwritten element is NaN
// and fails).
inline void expect_kernel_output(const Tensor& reference, DType dtype, const char* what,
                                 const std::function<void(void*)>& kernel) {
    Tensor out = nan_tensor(reference.shape(), dtype);
    kernel(out.raw_data());
    EXPECT_LT(relative_error(out, reference), emu_tolerance(dtype)) << what;
}

}  // namespace convkit::testing
