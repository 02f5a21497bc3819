#pragma once
// Statistics and control of the CUDA caching allocator. Device memory freed by a tensor goes
// back to a per-device, per-stream cache and is reused by later allocations of the same size
// class, so a training step does not call cudaMalloc.
#include <cstddef>
#include <cstdint>

#include "convkit/dtype.h"
#include "convkit/shape.h"

namespace convkit {

struct MemoryStats {
    std::size_t allocated_bytes = 0;   // held by live tensors
    std::size_t reserved_bytes = 0;    // obtained from the driver (live + cached)
    std::size_t peak_allocated_bytes = 0;
    std::uint64_t device_mallocs = 0;  // calls to the driver's allocator so far
    std::uint64_t cache_hits = 0;      // allocations served from the cache
};

MemoryStats cuda_memory_stats(int device = 0);
// Returns every cached, unused block to the driver.
void cuda_empty_cache();

// Marks that the tensor's memory is used by work on `stream` besides the stream it was
// allocated on; the block is not reused until that work has finished.
class Tensor;
struct Stream;
void record_stream(const Tensor& tensor, Stream stream);

// A host tensor in page-locked (pinned) memory, which the GPU reads by DMA: copies from it are
// faster, and can overlap other work. Without a usable GPU it is ordinary host memory. Pinning
// is slow (it maps pages with the driver): allocate staging buffers once and reuse them.
Tensor empty_pinned(const Shape& shape, DType dtype = DType::Float32);
// Whether the tensor's memory is pinned host memory (false without a GPU).
bool is_pinned(const Tensor& tensor);

}  // namespace convkit
