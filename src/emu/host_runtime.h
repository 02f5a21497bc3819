#pragma once
// The CUDA runtime as the launchers in kernels/ see it in the CPU build (CONVKIT_CPU_EMULATION):
// src/cuda/cuda_check.h, cuda_runtime.h and cuda_memory.h include this instead of the toolkit's
// headers. Memory is host memory, streams are ignored (every launch has finished when it
// returns), copies and fills are memcpy/memset. The convkit:: parts sit in an inline namespace
// so a program can link the CPU build beside libconvkit's CUDA build without two definitions.
#ifndef CONVKIT_CPU_EMULATION
#error "emu/host_runtime.h is for the CPU build of kernel sources (define CONVKIT_CPU_EMULATION)"
#endif

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "convkit/device.h"
#include "convkit/error.h"

enum cudaError_t { cudaSuccess = 0 };
using cudaStream_t = struct CUstream_st*;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

inline cudaError_t cudaGetLastError() {
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind,
                                   cudaStream_t = nullptr) {
    std::memmove(destination, source, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* destination, int value, std::size_t bytes, cudaStream_t = nullptr) {
    std::memset(destination, value, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) {
    return cudaSuccess;
}

namespace convkit::detail {
inline namespace cpu_emulation {

[[noreturn]] inline void throw_cuda_error(cudaError_t error, const char* expression, const char* file, int line) {
    throw CudaError(std::string(expression) + " failed with emulated error " + std::to_string(error) + " at " + file +
                    ":" + std::to_string(line));
}

// There is one emulated device and nothing to switch.
class CudaDeviceGuard {
public:
    explicit CudaDeviceGuard(int) {}
    CudaDeviceGuard(const CudaDeviceGuard&) = delete;
    CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;
};

inline cudaStream_t to_cuda(Stream stream) {
    return static_cast<cudaStream_t>(stream.handle);
}

// Scratch for a launcher: host memory poisoned with 0xFF (NaN), as uninitialised device
// memory would be garbage.
inline std::shared_ptr<void> allocate_cuda(std::size_t bytes, Stream) {
    void* block = std::malloc(bytes == 0 ? 1 : bytes);
    if (block == nullptr) throw std::bad_alloc();
    std::memset(block, 0xFF, bytes);
    return std::shared_ptr<void>(block, std::free);
}

inline std::shared_ptr<void> allocate_cuda_unshared(std::size_t bytes, Stream stream) {
    return allocate_cuda(bytes, stream);
}

}  // namespace cpu_emulation
}  // namespace convkit::detail
