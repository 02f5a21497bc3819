#pragma once
// A gpu-suite fixture for PTX that exists only on some architectures (mma.sync and cp.async from
// compute capability 8.0, the sm_90a warpgroup MMA on 9.0 exactly): skips, saying why, on any
// other device; the emulated CUDA device reports 9.0.
#include <cuda_runtime_api.h>

#include "test_util.h"

namespace convkit::testing {

enum class Capability { AtLeast, Exactly };

template <int Major, int Minor, Capability Match>
class WithComputeCapability : public WithCuda<> {
protected:
    void SetUp() override {
        WithCuda<>::SetUp();
        if (IsSkipped()) return;
        cudaDeviceProp properties{};
        ASSERT_EQ(cudaGetDeviceProperties(&properties, 0), cudaSuccess);
        const int have = properties.major * 10 + properties.minor, want = Major * 10 + Minor;
        if (Match == Capability::Exactly ? have != want : have < want) {
            GTEST_SKIP() << "needs compute capability " << (Match == Capability::Exactly ? "" : "at least ") << Major
                         << "." << Minor << " (this device: " << properties.major << "." << properties.minor << ")";
        }
    }
};

}  // namespace convkit::testing
