#pragma once
// The one place kernels are launched from: `<<<>>>` appears nowhere else in kernels/ or src/.
// launch<kernel>(shape, stream, args...) checks the configuration the same way in both builds
// (an InvalidArgument naming the kernel), then under nvcc launches and checks the launch, and
// in the CPU build (CONVKIT_CPU_EMULATION) runs the grid in the emulator (emu/emulator.h),
// which has finished when launch returns (on the emulated CUDA device, CONVKIT_EMULATED_DEVICE,
// the grid goes to the stream instead: it runs at once, or is recorded while the stream captures
// a CUDA graph, with the arguments copied by value as the runtime copies them). Dynamic shared
// memory is declared in the shape and reached through dynamic_shared_memory<T>(), since
// `extern __shared__` has no C++ form.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "convkit/error.h"
#include "cuda/cuda_check.h"
#include "kernels/kernels_namespace.h"
#ifdef CONVKIT_CPU_EMULATION
#include <functional>
#include <memory>

#include "emu/emulator.h"
#endif
#ifdef CONVKIT_EMULATED_DEVICE
#include "emu/stream_work.h"
#endif

CONVKIT_KERNELS_BEGIN

struct LaunchShape {
    dim3 grid;
    dim3 block;
    std::size_t dynamic_shared_bytes = 0;
    // More than kMaxDynamicSharedBytes is allowed only with this set: launch() then raises the
    // kernel's limit with cudaFuncSetAttribute (once per kernel, device and size) first.
    bool shared_opt_in = false;
};

inline constexpr unsigned kMaxThreadsPerBlock = 1024;
// What every GPU from Turing on gives a block without cudaFuncSetAttribute's opt-in.
inline constexpr std::size_t kMaxDynamicSharedBytes = 48 * 1024;
// With the opt-in: sm_90's 227 KiB per block (sm_80 allows 163 KiB, sm_86/89 99 KiB; a kernel
// asking for more than its device allows fails at the attribute call, a CudaError).
inline constexpr std::size_t kMaxOptInDynamicSharedBytes = 227 * 1024;
inline constexpr unsigned kMaxGridY = 65535, kMaxGridZ = 65535;
// The most blocks a grid-stride launch asks for (its loops cover the rest): 65535, plenty to fill
// a GPU. The emulated CUDA device (CONVKIT_EMULATED_DEVICE, docs/testing.md) asks for 64, so that
// every grid-stride loop strides on the small problems tests use, and emulated launches of large
// ones stay quick.
#ifdef CONVKIT_EMULATED_DEVICE
inline constexpr unsigned kGridStrideBlocks = 64;
#else
inline constexpr unsigned kGridStrideBlocks = 65535;
#endif

// Blocks of a grid-stride launch over `units` block-sized pieces of work: one each, at least one,
// at most kGridStrideBlocks.
inline unsigned grid_stride_blocks(std::int64_t units) {
    return static_cast<unsigned>(std::clamp<std::int64_t>(units, 1, kGridStrideBlocks));
}

// Everything a launch does besides the launch itself lives in plain functions: code in a
// function template is compiled again for each of the hundreds of kernels (17 unary ops x 4
// dtypes x 2 widths x 2 directions in unary.cu alone), and the message building below, inlined
// into each, had been half of nvcc's time on such a file and two thirds of the CPU build's.

// The kernel's name out of kernel_name<Kernel>'s own __PRETTY_FUNCTION__.
inline std::string kernel_name_from_signature(std::string_view pretty) {
    const std::size_t begin = pretty.find("Kernel = ") + 9;
    // GCC appends "; std::string = ..." after the argument; nvcc's host compiler may too.
    const std::size_t end = std::min(pretty.find(';', begin), pretty.rfind(']'));
    std::string_view name = pretty.substr(begin, end - begin);
    if (!name.empty() && name.front() == '&') name.remove_prefix(1);
    // Drop namespace qualifiers, which sit before the first '<'.
    const std::size_t scope = name.substr(0, name.find('<')).rfind("::");
    if (scope != std::string_view::npos) name.remove_prefix(scope + 2);
    return std::string(name);
}

// "conv_forward_kernel<float>": the kernel's name from the compiler's own spelling of the
// template argument, without namespaces (for messages).
template <auto Kernel>
std::string kernel_name() {
    return kernel_name_from_signature(__PRETTY_FUNCTION__);
}

// The checks the GPU would make at launch, made before it so both builds raise the same error.
// The name is asked for only to refuse.
inline void check_launch_shape(const LaunchShape& s, std::string (*kernel_name_of)()) {
    const unsigned long long threads = 1ull * s.block.x * s.block.y * s.block.z;
    const unsigned long long blocks = 1ull * s.grid.x * s.grid.y * s.grid.z;
    auto refuse = [&](const std::string& why) {
        throw InvalidArgument("launch of " + kernel_name_of() + ": " + why + " (grid " + std::to_string(s.grid.x) +
                              "x" + std::to_string(s.grid.y) + "x" + std::to_string(s.grid.z) + ", block " +
                              std::to_string(s.block.x) + "x" + std::to_string(s.block.y) + "x" +
                              std::to_string(s.block.z) + ", " + std::to_string(s.dynamic_shared_bytes) +
                              " bytes of dynamic shared memory)");
    };
    if (blocks == 0) refuse("empty grid");
    if (threads == 0) refuse("empty block");
    if (threads > kMaxThreadsPerBlock)
        refuse(std::to_string(threads) + " threads per block, more than " + std::to_string(kMaxThreadsPerBlock));
    if (s.block.z > 64) refuse("block z of " + std::to_string(s.block.z) + ", more than 64");
    if (s.grid.y > kMaxGridY || s.grid.z > kMaxGridZ) refuse("grid y or z above 65535");
    if (s.shared_opt_in && s.dynamic_shared_bytes > kMaxOptInDynamicSharedBytes)
        refuse(std::to_string(s.dynamic_shared_bytes) + " bytes of dynamic shared memory, more than the " +
               std::to_string(kMaxOptInDynamicSharedBytes) + " a block gets with opt-in");
    if (!s.shared_opt_in && s.dynamic_shared_bytes > kMaxDynamicSharedBytes)
        refuse(std::to_string(s.dynamic_shared_bytes) + " bytes of dynamic shared memory, more than the " +
               std::to_string(kMaxDynamicSharedBytes) + " a block gets without opt-in");
}

#ifdef CONVKIT_CPU_EMULATION
template <typename... Params>
std::tuple<std::decay_t<Params>...> kernel_parameters_of(void (*)(Params...));

// Runs (or, on the emulated device, enqueues) a grid whose every thread calls `thread_body`.
inline void run_grid_in_emulator(const LaunchShape& s, [[maybe_unused]] cudaStream_t stream, std::string kernel,
                                 std::function<void()> thread_body) {
    emu::GridLaunch grid{
        std::move(kernel), {s.grid.x, s.grid.y, s.grid.z}, {s.block.x, s.block.y, s.block.z}, s.dynamic_shared_bytes};
    auto run = [grid = std::move(grid), body = std::move(thread_body)] { emu::run_grid(grid, body); };
#ifdef CONVKIT_EMULATED_DEVICE
    CONVKIT_CHECK_CUDA(emu::enqueue_on_stream(stream, std::move(run)));
#else
    run();
#endif
}

template <auto Kernel, typename... Args>
void run_in_emulator(const LaunchShape& s, cudaStream_t stream, Args&&... args) {
    using Parameters = decltype(kernel_parameters_of(Kernel));
    // Converted once, as the CUDA runtime does; each thread calls with its own copies.
    auto parameters = std::make_shared<const Parameters>(std::forward<Args>(args)...);
    run_grid_in_emulator(s, stream, kernel_name<Kernel>(), [parameters] { std::apply(Kernel, *parameters); });
}
#endif

#ifndef CONVKIT_CPU_EMULATION
// cudaFuncSetAttribute(MaxDynamicSharedMemorySize) for the current device, skipped when an
// earlier launch on that device already asked for at least `bytes`.
template <auto Kernel>
void allow_dynamic_shared(std::size_t bytes) {
    constexpr int kDevices = 64;
    static std::atomic<std::size_t> granted[kDevices] = {};
    int device = 0;
    CONVKIT_CHECK_CUDA(cudaGetDevice(&device));
    if (device < kDevices && granted[device].load(std::memory_order_relaxed) >= bytes) return;
    CONVKIT_CHECK_CUDA(
        cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    if (device < kDevices) granted[device].store(bytes, std::memory_order_relaxed);
}
#endif

template <auto Kernel, typename... Args>
void launch(const LaunchShape& s, [[maybe_unused]] cudaStream_t stream, Args&&... args) {
    check_launch_shape(s, &kernel_name<Kernel>);
#ifdef CONVKIT_CPU_EMULATION
    run_in_emulator<Kernel>(s, stream, std::forward<Args>(args)...);
#else
    if (s.shared_opt_in && s.dynamic_shared_bytes > kMaxDynamicSharedBytes)
        allow_dynamic_shared<Kernel>(s.dynamic_shared_bytes);
    // clang-format takes .cuh for C++ and would split the launch chevrons.
    // clang-format off
    Kernel<<<s.grid, s.block, s.dynamic_shared_bytes, stream>>>(std::forward<Args>(args)...);
    // clang-format on
    CONVKIT_CHECK_CUDA(cudaGetLastError());
#endif
}

// The block's dynamic shared memory, as many bytes as its launch shape asked for.
template <typename T>
__device__ inline T* dynamic_shared_memory() {
#ifdef CONVKIT_CPU_EMULATION
    return static_cast<T*>(emu::dynamic_shared_memory());
#else
    extern __shared__ __align__(16) unsigned char convkit_dynamic_shared[];
    return reinterpret_cast<T*>(convkit_dynamic_shared);
#endif
}

CONVKIT_KERNELS_END
