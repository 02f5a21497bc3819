// The layer ops on bfloat16/float16 tensors on the device (label gpu): the host's cases
// (tests/sixteen_bit_layer_ops.h), each computed in float32 by the CUDA kernels and rounded once,
// against float64 on the host.
#include <gtest/gtest.h>

#include "convkit/convkit.h"
#include "sixteen_bit_layer_ops.h"
#include "test_util.h"

namespace convkit {
namespace {
using namespace convkit::testing;

class CudaDtypeSupport : public WithCuda<> {};

TEST_F(CudaDtypeSupport, LayerOpsAndTheirGradientsComputeSixteenBitInFloat32) {
    expect_sixteen_bit_layer_ops_match_float64(Device::cuda(0));
}

}  // namespace
}  // namespace convkit
