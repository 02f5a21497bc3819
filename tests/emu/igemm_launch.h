#pragma once
// How the implicit-GEMM convolution's tests (tests/emu/test_emu_igemm.cpp: the sweeps and the
// epilogue; tests/emu/test_emu_igemm_plans.cpp: splits, plans, refusals, rounding, tiles) launch
// it: straight into the emulator in test_emu, or, compiled into test_cuda with
// CONVKIT_IGEMM_ON_DEVICE (tests/test_cuda_igemm.cpp), on a CUDA device, a GPU or the emulated
// one, each buffer mirrored into device memory around the launch; and the fixture and macro their
// tests share (IGEMM_TEST: EmuIgemm in the emulator, CudaIgemm on a device).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "igemm_problem.h"
#include "kernels/conv_igemm.h"
#include "test_util.h"
#ifdef CONVKIT_IGEMM_ON_DEVICE
#include <map>
#include <memory>

#include "cuda/cuda_memory.h"
#else
#include "emu/device_api.h"  // CUDA's device names, as the CPU build of the kernels sees them
#include "emu/ptx_emulation.h"
#include "kernels/conv_igemm_support.cuh"
#endif

namespace convkit::igemm_test {


#ifdef CONVKIT_IGEMM_ON_DEVICE
// Device copies of host buffers for one launch, one per host buffer (so an in-place residual
// stays in place), and the output copied back. A copy starts at the host buffer's offset from a
// 16-byte boundary, so a buffer off a vector's alignment on the host (run_with's misalign) is off
// it on the device too.
class DeviceMirror {
public:
    template <typename T>
    T* operator()(T* host, std::size_t bytes) {
        if (host == nullptr) return nullptr;
        Block& block = blocks_[host];
        if (!block.device) {
            const std::size_t shift = reinterpret_cast<std::uintptr_t>(host) % 16;
            block = {detail::allocate_cuda(std::max<std::size_t>(bytes + shift, 1), 0), bytes, shift};
            detail::copy_bytes(block.at(), Device::cuda(0), host, Device::host(), bytes);
        }
        return static_cast<T*>(block.at());
    }
    void copy_back(void* host) const {
        const Block& block = blocks_.at(host);
        detail::copy_bytes(host, Device::host(), block.at(), Device::cuda(0), block.bytes);
    }

private:
    struct Block {
        std::shared_ptr<void> device;
        std::size_t bytes = 0, shift = 0;
        void* at() const { return static_cast<char*>(device.get()) + shift; }
    };
    std::map<const void*, Block> blocks_;
};
#else
// Host memory as it is: the kernels run in the emulator.
struct DeviceMirror {
    template <typename T>
    T* operator()(T* host, std::size_t) const {
        return host;
    }
    void copy_back(void*) const {}
};
#endif

// The launcher of the case's direction (backward-filter with a NaN-poisoned workspace).
inline void launch(const Case& cs, const Problem& p, IgemmEpilogue epilogue, void* y) {
    DeviceMirror on_device;
    const std::size_t y_bytes =
        static_cast<std::size_t>(p.outputs) * (cs.output == IgemmOutput::Float32 ? sizeof(float) : 2);
    const void* first = on_device(p.first.data(), p.first.bytes());
    const void* second = on_device(p.second.data(), p.second.bytes());
    epilogue.bias = on_device(epilogue.bias, p.bias.size() * sizeof(float));
    epilogue.residual = on_device(epilogue.residual, y_bytes);
    void* const y_host = y;
    y = on_device(y, y_bytes);
#ifdef CONVKIT_IGEMM_ON_DEVICE
    const Stream stream = current_stream(0);
#else
    const Stream stream{};
#endif
    const kernels::IgemmSchedule schedule{cs.tile, cs.splits};
    const std::size_t workspace_bytes =
        cs.direction == Direction::Forward
            ? kernels::conv_igemm_forward_plan(cs.shape, cs.operand, schedule).workspace_bytes()
        : cs.direction == Direction::BackwardData
            ? kernels::conv_igemm_backward_data_plan(cs.shape, cs.operand, schedule).workspace_bytes()
            : kernels::conv_igemm_backward_filter_workspace_bytes(cs.shape, cs.operand, cs.splits);
    std::vector<float> slices(workspace_bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
    void* workspace = slices.empty() ? nullptr : on_device(slices.data(), workspace_bytes);
    if (cs.direction == Direction::Forward) {
        kernels::conv_igemm_forward(cs.shape, cs.operand, cs.output, schedule, first, second, epilogue, y, workspace,
                                    stream);
    } else if (cs.direction == Direction::BackwardData) {
        kernels::conv_igemm_backward_data(cs.shape, cs.operand, cs.output, schedule, first, second, epilogue, y,
                                          workspace, stream);
    } else {
        kernels::conv_igemm_backward_filter(cs.shape, cs.operand, cs.output, cs.tile, cs.splits, first, second,
                                            epilogue.residual, y, workspace, stream);
    }
    on_device.copy_back(y_host);
}

// Runs the case's launcher into a NaN-poisoned buffer and returns its output as doubles (y and
// the residual `misalign` elements into their buffers: run_with).
inline std::vector<double> run(const Case& cs, const Problem& p, std::size_t misalign = 0) {
    return run_with(
        cs, p, [&](const IgemmEpilogue& epilogue, void* y) { launch(cs, p, epilogue, y); }, misalign);
}

#ifdef CONVKIT_IGEMM_ON_DEVICE
// One fixture type for both files' tests (a named namespace: gtest requires a suite's tests to
// share it).
class CudaIgemm : public testing::WithCuda<> {};
#define IGEMM_TEST(name) TEST_F(CudaIgemm, name)
#else
#define IGEMM_TEST(name) TEST(EmuIgemm, name)
#endif

}  // namespace convkit::igemm_test
