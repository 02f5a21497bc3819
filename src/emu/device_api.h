#pragma once
// The CUDA device-side names for the CPU build of kernel sources (CONVKIT_CPU_EMULATION):
// the CPU build of a .cu file includes this first (cmake/emu_kernel_wrapper.cpp.in), then the
// file itself, compiled by g++ as C++. Qualifiers vanish; thread and block indices, barriers,
// warp operations and atomics go to the emulator (emu/emulator.h). __CUDA_ARCH__ stays
// undefined. What a kernel needs beyond this is a compile error here, never a silent no-op.
#ifndef CONVKIT_CPU_EMULATION
#error "emu/device_api.h is for the CPU build of kernel sources (define CONVKIT_CPU_EMULATION)"
#endif

#include <math.h>  // the global-namespace float overloads nvcc's device math provides

#include <cmath>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <type_traits>

#include "emu/emulator.h"
#include "emu/warp_operations.h"

#ifdef CONVKIT_EMULATED_DEVICE
// The emulated CUDA device (docs/testing.md): the launchers around the kernels use the real
// runtime API, answered by src/emu/emulated_runtime.cpp, so the toolkit's header comes first and
// brings dim3 and uint3; its qualifier macros are replaced by the emulator's below.
#include <cuda_runtime_api.h>
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#undef __shared__
#undef __grid_constant__
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
// A kernel parameter whose address the kernel takes (a tensor map's): every emulated thread holds
// its own copy of the arguments.
#define __grid_constant__
// Static shared variables go to one section, which the emulator poisons before every block
// (one block runs at a time, so static storage is per block). No initialiser is allowed, as in
// CUDA; `extern __shared__` cannot be expressed: use kernels::dynamic_shared_memory().
#define __shared__ static __attribute__((section("convkit_emu_shared")))

// This module's section (the library's, or a test program's own kernels'): hidden, so each module
// names its own __start/__stop (the linker defines them where the section exists, weak null where
// it does not), never another module's of the same name.
extern "C" {
extern unsigned char __start_convkit_emu_shared[] __attribute__((weak, visibility("hidden")));
extern unsigned char __stop_convkit_emu_shared[] __attribute__((weak, visibility("hidden")));
}
namespace convkit::emu {
namespace {
[[maybe_unused]] const bool static_shared_registered =
    register_static_shared(__start_convkit_emu_shared, __stop_convkit_emu_shared);
}  // namespace
}  // namespace convkit::emu

#ifndef CONVKIT_EMULATED_DEVICE
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = ::convkit::emu::Extent;
#endif

#define threadIdx (::convkit::emu::position().thread_index)
#define blockIdx (::convkit::emu::position().block_index)
#define blockDim (::convkit::emu::position().block_dim)
#define gridDim (::convkit::emu::position().grid_dim)
inline constexpr int warpSize = 32;

// ---- barriers -----------------------------------------------------------------------------

inline void __syncthreads(std::source_location site = std::source_location::current()) {
    ::convkit::emu::block_barrier(::convkit::emu::BarrierKind::Sync, 1, site);
}
inline int __syncthreads_count(int predicate, std::source_location site = std::source_location::current()) {
    return ::convkit::emu::block_barrier(::convkit::emu::BarrierKind::Count, predicate, site);
}
inline int __syncthreads_and(int predicate, std::source_location site = std::source_location::current()) {
    return ::convkit::emu::block_barrier(::convkit::emu::BarrierKind::And, predicate, site);
}
inline int __syncthreads_or(int predicate, std::source_location site = std::source_location::current()) {
    return ::convkit::emu::block_barrier(::convkit::emu::BarrierKind::Or, predicate, site);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location site = std::source_location::current()) {
    ::convkit::emu::warp_sync(mask, site);
}
// Fences order memory between threads; threads here only interleave at switch points, where
// all memory is already coherent.
inline void __threadfence() {}
inline void __threadfence_block() {}

[[noreturn]] inline void __trap(std::source_location site = std::source_location::current()) {
    ::convkit::emu::trap(site);
}

// ---- warp operations --------------------------------------------------------------------

namespace convkit::emu {
template <typename T>
T shuffle_value(ShuffleKind kind, unsigned mask, T value, int lane_or_delta, int width,
                const std::source_location& site) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move values of up to 8 bytes");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = warp_shuffle(kind, mask, bits, lane_or_delta, width, site);
    std::memcpy(&value, &bits, sizeof(T));
    return value;
}
}  // namespace convkit::emu

template <typename T>
T __shfl_sync(unsigned mask, T value, int source_lane, int width = warpSize,
              std::source_location site = std::source_location::current()) {
    return ::convkit::emu::shuffle_value(::convkit::emu::ShuffleKind::Index, mask, value, source_lane, width, site);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = warpSize,
                 std::source_location site = std::source_location::current()) {
    return ::convkit::emu::shuffle_value(::convkit::emu::ShuffleKind::Up, mask, value, static_cast<int>(delta), width,
                                         site);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = warpSize,
                   std::source_location site = std::source_location::current()) {
    return ::convkit::emu::shuffle_value(::convkit::emu::ShuffleKind::Down, mask, value, static_cast<int>(delta), width,
                                         site);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize,
                  std::source_location site = std::source_location::current()) {
    return ::convkit::emu::shuffle_value(::convkit::emu::ShuffleKind::Xor, mask, value, lane_mask, width, site);
}
inline unsigned __ballot_sync(unsigned mask, int predicate,
                              std::source_location site = std::source_location::current()) {
    return ::convkit::emu::warp_vote(::convkit::emu::VoteKind::Ballot, mask, predicate, site);
}
inline int __any_sync(unsigned mask, int predicate, std::source_location site = std::source_location::current()) {
    return static_cast<int>(::convkit::emu::warp_vote(::convkit::emu::VoteKind::Any, mask, predicate, site));
}
inline int __all_sync(unsigned mask, int predicate, std::source_location site = std::source_location::current()) {
    return static_cast<int>(::convkit::emu::warp_vote(::convkit::emu::VoteKind::All, mask, predicate, site));
}
inline unsigned __activemask() {
    return ::convkit::emu::live_lanes_of_warp();
}

// ---- atomics ----------------------------------------------------------------------------
// Each is a switch point first, so the schedules vary the order of atomics between threads;
// the update itself cannot be interrupted (one OS thread runs the whole block).

namespace convkit::emu {
template <typename T, typename Update>
T atomic_update(T* address, Update update) {
    switch_point();
    const T old = *address;
    *address = update(old);
    return old;
}
}  // namespace convkit::emu

template <typename T>
T atomicAdd(T* address, T value) {
    return ::convkit::emu::atomic_update(address, [&](T old) { return static_cast<T>(old + value); });
}
template <typename T>
T atomicSub(T* address, T value) {
    return ::convkit::emu::atomic_update(address, [&](T old) { return static_cast<T>(old - value); });
}
template <typename T>
T atomicMin(T* address, T value) {
    return ::convkit::emu::atomic_update(address, [&](T old) { return value < old ? value : old; });
}
template <typename T>
T atomicMax(T* address, T value) {
    return ::convkit::emu::atomic_update(address, [&](T old) { return value > old ? value : old; });
}
template <typename T>
T atomicExch(T* address, T value) {
    return ::convkit::emu::atomic_update(address, [&](T) { return value; });
}
template <typename T>
T atomicCAS(T* address, T compare, T value) {
    return ::convkit::emu::atomic_update(address, [&](T old) { return old == compare ? value : old; });
}
template <typename T>
T atomicAnd(T* address, T value) {
    return ::convkit::emu::atomic_update(address, [&](T old) { return static_cast<T>(old & value); });
}
template <typename T>
T atomicOr(T* address, T value) {
    return ::convkit::emu::atomic_update(address, [&](T old) { return static_cast<T>(old | value); });
}

// ---- math intrinsics: the fast device versions, computed exactly ------------------------
inline float __expf(float x) {
    return ::expf(x);
}
inline float __logf(float x) {
    return ::logf(x);
}
inline float __fdividef(float a, float b) {
    return a / b;
}
inline float rsqrtf(float x) {
    return 1.0f / ::sqrtf(x);
}
inline double rsqrt(double x) {
    return 1.0 / ::sqrt(x);
}
