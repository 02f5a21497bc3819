// A toy convolution variant, the example of docs/architecture.md "Adding a variant": one file,
// one registration line. It runs the forward pass of 1x1 convolutions (stride 1, no padding,
// one group) on the host, and counts its runs so that tests/test_variants.cpp can see when it
// was chosen. `toy_variant_delay` slows it down for the measured-selection tests.
#include <atomic>
#include <chrono>
#include <thread>

#include "backend_api/variant.h"
#include "toy_variant.h"

namespace convkit::testing {
std::atomic<int> toy_variant_runs{0};
std::atomic<int> toy_variant_delay_ms{0};
}  // namespace convkit::testing

namespace {
using namespace convkit;
using namespace convkit::detail;

class ToyConv final : public ConvVariant {
public:
    const char* name() const override { return "test.toy"; }
    DeviceType device_type() const override { return DeviceType::Host; }
    bool implements(ConvPass pass) const override { return pass == ConvPass::Forward; }
    std::string unsupported_reason(const ConvProblem& p, ConvPass) const override {
        const ConvGeometry& g = p.geometry;
        if (!p.all_contiguous()) return "runs contiguous layouts only";
        if (g.kernel_spatial() != 1 || g.groups != 1 || g.pad_begin != SpatialDims{0, 0, 0} ||
            g.pad_end != SpatialDims{0, 0, 0} || g.stride != SpatialDims{1, 1, 1}) {
            return "runs 1x1 convolutions only (stride 1, no padding, one group)";
        }
        return {};
    }
    void run(const ConvProblem& p, ConvPass, const ConvOperands& o, WorkspaceView, Stream) const override {
        ++testing::toy_variant_runs;
        if (const int ms = testing::toy_variant_delay_ms; ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        if (p.dtype() == DType::Float32) {
            pointwise(p.geometry, static_cast<const float*>(o.x), static_cast<const float*>(o.w),
                      static_cast<const float*>(o.bias), static_cast<float*>(o.out));
        } else {
            pointwise(p.geometry, static_cast<const double*>(o.x), static_cast<const double*>(o.w),
                      static_cast<const double*>(o.bias), static_cast<double*>(o.out));
        }
    }

private:
    // y[n, o, s] = bias[o] + sum_c w[o, c] x[n, c, s], summed in double like the reference.
    template <typename T>
    static void pointwise(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
        const std::int64_t spatial = g.input_spatial();
        for (std::int64_t n = 0; n < g.batch; ++n) {
            for (std::int64_t oc = 0; oc < g.out_channels; ++oc) {
                for (std::int64_t s = 0; s < spatial; ++s) {
                    double sum = bias != nullptr ? static_cast<double>(bias[oc]) : 0.0;
                    for (std::int64_t c = 0; c < g.in_channels; ++c) {
                        sum += static_cast<double>(w[oc * g.in_channels + c]) *
                               static_cast<double>(x[(n * g.in_channels + c) * spatial + s]);
                    }
                    y[(n * g.out_channels + oc) * spatial + s] = static_cast<T>(sum);
                }
            }
        }
    }
};
}  // namespace

CONVKIT_REGISTER_CONV_VARIANT(ToyConv);
