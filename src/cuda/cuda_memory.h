#pragma once
// Device memory for tensors (through the caching allocator) and copies between devices.
#if defined(CONVKIT_CPU_EMULATION) && !defined(CONVKIT_EMULATED_DEVICE)
#include "emu/host_runtime.h"  // the CPU build of kernels/: scratch is host memory
#else
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "convkit/device.h"

namespace convkit::detail {

// A block on `device` for use on its current stream; freed back to the cache.
std::shared_ptr<void> allocate_cuda(std::size_t bytes, int device);
// A block for work on `stream`: when freed it is reused only behind that stream's queued work,
// so scratch space may be released as soon as the kernels using it are enqueued on `stream`.
std::shared_ptr<void> allocate_cuda(std::size_t bytes, Stream stream);

// A CUDA graph's private pool of the caching allocator (memory/caching_allocator.h): from
// begin_graph_pool to end_graph_capture, allocations for `stream` come from pool `pool` (a key no
// stream has), and blocks of its device freed meanwhile join it. release_graph_pool returns the
// pool to the driver once the graph's work has finished.
void begin_graph_pool(Stream stream, void* pool);
void end_graph_capture(Stream stream);
void release_graph_pool(int device, void* pool);
std::vector<std::pair<void*, std::size_t>> graph_pool_blocks(int device, void* pool);

// A block for `stream` that is never a cached block: during a CUDA graph capture, no other
// allocation of the graph has used it, so data uploaded into it before each replay (an
// optimizer's table) cannot be overwritten by the graph's earlier work.
std::shared_ptr<void> allocate_cuda_unshared(std::size_t bytes, Stream stream);

// Copies `bytes` between any two devices. Copies that involve the host wait for completion, so
// the host side can be read or released at once; device-to-device copies stay asynchronous on
// the destination device's current stream.
void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                std::size_t bytes);

// Copies from pinned host memory to `device` on its current stream without waiting: the
// source must stay untouched until an event recorded after it (record_event) is complete.
void copy_from_pinned_async(void* destination, Device device, const void* pinned_source, std::size_t bytes);

// Copies from pageable host memory to `device` on its current stream without waiting: the
// runtime stages the bytes before it returns, so `source` may go at once. For a few bytes.
void copy_from_host_async(void* destination, Device device, const void* source, std::size_t bytes);

// An event recorded now on the current stream of `device`, destroyed with its last owner.
std::shared_ptr<void> record_event(int device);
// Work enqueued after this on the current stream of `device` starts after `event`: a wait of
// the device, not of the host.
void stream_wait_event(int device, const std::shared_ptr<void>& event);
// Blocks the host until `event` is complete; neither waits nor counts a wait when it already is.
void wait_until_complete(int device, const std::shared_ptr<void>& event);

}  // namespace convkit::detail
#endif  // CONVKIT_CPU_EMULATION
