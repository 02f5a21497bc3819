// The CUDA runtime API of the emulated CUDA device (CONVKIT_EMULATED_DEVICE, docs/testing.md
// "The emulated CUDA device"): the calls libconvkit makes, with the toolkit's own declarations,
// answered on the CPU. There is one device, cuda:0. Its memory is host memory, tracked block by
// block so that a copy or fill reaching past a block fails as cudaErrorInvalidValue instead of
// silently touching a neighbour, and poisoned with 0xFF (a NaN in every float type) when it is
// allocated, as fresh device memory holds garbage. Kernels run in the emulator when launched
// (kernels/launch.cuh), so every stream is always idle: synchronising returns at once, events
// complete when recorded, and an "asynchronous" copy has finished when the call returns.
#include "emu/emulated_runtime.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <string>

namespace {

constexpr int kDeviceCount = 1;
constexpr unsigned char kPoison = 0xFF;

// How much memory the emulated device has: CONVKIT_EMULATED_DEVICE_MEMORY bytes, default 4 GiB,
// so that out-of-memory paths can be tested and a runaway test cannot exhaust the machine.
std::size_t device_capacity() {
    static const std::size_t capacity = [] {
        const char* text = std::getenv("CONVKIT_EMULATED_DEVICE_MEMORY");
        if (text != nullptr && *text != '\0') {
            char* end = nullptr;
            const unsigned long long value = std::strtoull(text, &end, 10);
            if (end != nullptr && *end == '\0' && value > 0) return static_cast<std::size_t>(value);
        }
        return std::size_t{4} << 30;
    }();
    return capacity;
}

struct EmulatedEvent {
    bool recorded = false;
    std::chrono::steady_clock::time_point at;
};

struct RuntimeState {
    std::mutex mutex;
    std::map<const char*, std::size_t> device_blocks;  // start -> bytes
    std::size_t device_bytes_in_use = 0;
    std::set<const void*> pinned_blocks;
    std::set<const void*> streams;
    std::set<const void*> events;
};

RuntimeState& state() {
    static auto* s = new RuntimeState();  // never destroyed: blocks may be freed at exit
    return *s;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;
std::atomic<std::uint64_t> host_waits{0};

// Host memory aligned and rounded to 256 bytes, as cudaMalloc and cudaHostAlloc give; a zero-byte
// request still gets a distinct block. Null when the host is out of memory.
void* allocate_block(std::size_t bytes, std::size_t* rounded = nullptr) {
    const std::size_t size = (std::max<std::size_t>(bytes, 1) + 255) / 256 * 256;
    if (rounded != nullptr) *rounded = size;
    return std::aligned_alloc(256, size);
}

cudaError_t fail(cudaError_t error) {
    last_error = error;
    return error;
}

// Whether [pointer, pointer + bytes) lies inside one device block. Caller holds the mutex.
bool inside_device_block(const RuntimeState& s, const void* pointer, std::size_t bytes) {
    const auto* p = static_cast<const char*>(pointer);
    auto it = s.device_blocks.upper_bound(p);
    if (it == s.device_blocks.begin()) return false;
    --it;
    const std::size_t offset = static_cast<std::size_t>(p - it->first);
    return offset <= it->second && bytes <= it->second - offset;
}

bool valid_device_range(const void* pointer, std::size_t bytes) {
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    return inside_device_block(s, pointer, bytes);
}

bool valid_stream(cudaStream_t stream) {
    // 0 is the legacy default stream, cudaStreamPerThread and cudaStreamLegacy are its aliases.
    if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread) return true;
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    return s.streams.count(stream) != 0;
}

// The device side of a copy must lie inside one block; the host side is the caller's business.
cudaError_t copy(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return cudaSuccess;
    if (destination == nullptr || source == nullptr) return fail(cudaErrorInvalidValue);
    if (kind == cudaMemcpyDefault) {
        const bool to_device = valid_device_range(destination, 0);
        const bool from_device = valid_device_range(source, 0);
        kind = to_device ? (from_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                         : (from_device ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    }
    const bool device_destination = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool device_source = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) return fail(cudaErrorInvalidMemcpyDirection);
    if ((device_destination && !valid_device_range(destination, bytes)) ||
        (device_source && !valid_device_range(source, bytes))) {
        return fail(cudaErrorInvalidValue);
    }
    std::memmove(destination, source, bytes);
    return cudaSuccess;
}

cudaError_t fill(void* destination, int value, std::size_t bytes) {
    if (bytes == 0) return cudaSuccess;
    if (!valid_device_range(destination, bytes)) return fail(cudaErrorInvalidValue);
    std::memset(destination, value, bytes);
    return cudaSuccess;
}

}  // namespace

namespace convkit::emu {

std::uint64_t host_synchronisations() {
    return host_waits.load();
}

}  // namespace convkit::emu

// ---- the runtime API ------------------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int* count) {
    if (count == nullptr) return fail(cudaErrorInvalidValue);
    *count = kDeviceCount;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
    if (version == nullptr) return fail(cudaErrorInvalidValue);
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
    if (version == nullptr) return fail(cudaErrorInvalidValue);
    *version = CUDART_VERSION;
    return cudaSuccess;
}

const char* cudaGetErrorName(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        default: return "cudaErrorUnknown";
    }
}

const char* cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument (emulated device)";
        case cudaErrorMemoryAllocation: return "out of memory (emulated device)";
        case cudaErrorInvalidDevice: return "invalid device ordinal (emulated device)";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle (emulated device)";
        case cudaErrorInvalidMemcpyDirection: return "invalid copy direction (emulated device)";
        case cudaErrorNotReady: return "device not ready (emulated device)";
        default: return "unknown error (emulated device)";
    }
}

cudaError_t cudaGetLastError() {
    const cudaError_t error = last_error;
    last_error = cudaSuccess;
    return error;
}

cudaError_t cudaPeekAtLastError() {
    return last_error;
}

cudaError_t cudaGetDevice(int* device) {
    if (device == nullptr) return fail(cudaErrorInvalidValue);
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device < 0 || device >= kDeviceCount) return fail(cudaErrorInvalidDevice);
    current_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device) {
    if (properties == nullptr) return fail(cudaErrorInvalidValue);
    if (device < 0 || device >= kDeviceCount) return fail(cudaErrorInvalidDevice);
    *properties = cudaDeviceProp{};
    std::strncpy(properties->name, "convkit emulated CUDA device (CPU)", sizeof(properties->name) - 1);
    // The limits of an H100, the GPU the kernels are tuned for, so launches are checked alike.
    properties->major = 9;
    properties->minor = 0;
    properties->multiProcessorCount = 132;
    properties->totalGlobalMem = device_capacity();
    properties->sharedMemPerBlock = 48 * 1024;
    properties->sharedMemPerBlockOptin = 227 * 1024;
    properties->sharedMemPerMultiprocessor = 228 * 1024;
    properties->regsPerBlock = 65536;
    properties->warpSize = 32;
    properties->maxThreadsPerBlock = 1024;
    properties->maxThreadsDim[0] = properties->maxThreadsDim[1] = 1024;
    properties->maxThreadsDim[2] = 64;
    properties->maxGridSize[0] = 2147483647;
    properties->maxGridSize[1] = properties->maxGridSize[2] = 65535;
    properties->l2CacheSize = 50 * 1024 * 1024;
    properties->unifiedAddressing = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
    if (value == nullptr) return fail(cudaErrorInvalidValue);
    cudaDeviceProp properties{};
    if (const cudaError_t status = cudaGetDeviceProperties(&properties, device); status != cudaSuccess) return status;
    switch (attribute) {
        case cudaDevAttrMultiProcessorCount: *value = properties.multiProcessorCount; return cudaSuccess;
        case cudaDevAttrComputeCapabilityMajor: *value = properties.major; return cudaSuccess;
        case cudaDevAttrComputeCapabilityMinor: *value = properties.minor; return cudaSuccess;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin:
            *value = static_cast<int>(properties.sharedMemPerBlockOptin);
            return cudaSuccess;
        case cudaDevAttrMaxThreadsPerBlock: *value = properties.maxThreadsPerBlock; return cudaSuccess;
        default: return fail(cudaErrorInvalidValue);
    }
}

cudaError_t cudaFuncSetAttribute(const void* function, cudaFuncAttribute, int) {
    // The emulator checks a launch's shared memory itself (kernels/launch.cuh).
    return function == nullptr ? fail(cudaErrorInvalidValue) : cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
    ++host_waits;
    return cudaSuccess;
}

// ---- memory -----------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** pointer, std::size_t bytes) {
    if (pointer == nullptr) return fail(cudaErrorInvalidValue);
    *pointer = nullptr;
    RuntimeState& s = state();
    {
        std::lock_guard lock(s.mutex);
        if (bytes > device_capacity() - s.device_bytes_in_use) return fail(cudaErrorMemoryAllocation);
        s.device_bytes_in_use += bytes;
    }
    std::size_t rounded = 0;
    void* block = allocate_block(bytes, &rounded);
    std::lock_guard lock(s.mutex);
    if (block == nullptr) {
        s.device_bytes_in_use -= bytes;
        return fail(cudaErrorMemoryAllocation);
    }
    std::memset(block, kPoison, rounded);
    s.device_blocks[static_cast<const char*>(block)] = bytes;
    *pointer = block;
    return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
    if (pointer == nullptr) return cudaSuccess;
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    const auto it = s.device_blocks.find(static_cast<const char*>(pointer));
    if (it == s.device_blocks.end()) return fail(cudaErrorInvalidValue);
    s.device_bytes_in_use -= it->second;
    s.device_blocks.erase(it);
    std::free(pointer);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
    if (free_bytes == nullptr || total_bytes == nullptr) return fail(cudaErrorInvalidValue);
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    *total_bytes = device_capacity();
    *free_bytes = device_capacity() - s.device_bytes_in_use;
    return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** pointer, std::size_t bytes, unsigned int) {
    if (pointer == nullptr) return fail(cudaErrorInvalidValue);
    *pointer = allocate_block(bytes);
    if (*pointer == nullptr) return fail(cudaErrorMemoryAllocation);
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    s.pinned_blocks.insert(*pointer);
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
    if (pointer == nullptr) return cudaSuccess;
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    if (s.pinned_blocks.erase(pointer) == 0) return fail(cudaErrorInvalidValue);
    std::free(pointer);
    return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* pointer) {
    if (attributes == nullptr) return fail(cudaErrorInvalidValue);
    *attributes = cudaPointerAttributes{};
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    if (inside_device_block(s, pointer, 0)) {
        attributes->type = cudaMemoryTypeDevice;
        attributes->device = 0;
        attributes->devicePointer = const_cast<void*>(pointer);
    } else if (s.pinned_blocks.count(pointer) != 0) {
        attributes->type = cudaMemoryTypeHost;
        attributes->hostPointer = const_cast<void*>(pointer);
        attributes->devicePointer = const_cast<void*>(pointer);
    } else {
        attributes->type = cudaMemoryTypeUnregistered;
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    return copy(destination, source, bytes, kind);
}

cudaError_t cudaMemcpy(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
    ++host_waits;
    return copy(destination, source, bytes, kind);
}

cudaError_t cudaMemsetAsync(void* destination, int value, std::size_t bytes, cudaStream_t stream) {
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    return fill(destination, value, bytes);
}

cudaError_t cudaMemset(void* destination, int value, std::size_t bytes) {
    return fill(destination, value, bytes);
}

// ---- streams and events -----------------------------------------------------------------------

namespace {
// Streams and events are heap objects whose addresses the runtime keeps, so that a destroyed or
// foreign handle is cudaErrorInvalidResourceHandle, as on a GPU.
template <typename Object, typename Handle>
cudaError_t create_handle(Handle* handle, std::set<const void*> RuntimeState::*registry) {
    if (handle == nullptr) return fail(cudaErrorInvalidValue);
    *handle = reinterpret_cast<Handle>(new Object());
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    (s.*registry).insert(*handle);
    return cudaSuccess;
}

template <typename Object, typename Handle>
cudaError_t destroy_handle(Handle handle, std::set<const void*> RuntimeState::*registry) {
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    if ((s.*registry).erase(handle) == 0) return fail(cudaErrorInvalidResourceHandle);
    delete reinterpret_cast<Object*>(handle);
    return cudaSuccess;
}

// A stream holds nothing: every launch has finished when it returns.
struct EmulatedStream {};
}  // namespace

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
    return create_handle<EmulatedStream>(stream, &RuntimeState::streams);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
    return cudaStreamCreateWithFlags(stream, 0);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    return destroy_handle<EmulatedStream>(stream, &RuntimeState::streams);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    ++host_waits;
    return cudaSuccess;
}

namespace {
EmulatedEvent* known_event(cudaEvent_t event) {
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    return s.events.count(event) != 0 ? reinterpret_cast<EmulatedEvent*>(event) : nullptr;
}
}  // namespace

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
    return create_handle<EmulatedEvent>(event, &RuntimeState::events);
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
    return cudaEventCreateWithFlags(event, 0);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    return destroy_handle<EmulatedEvent>(event, &RuntimeState::events);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    EmulatedEvent* e = known_event(event);
    if (e == nullptr || !valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    e->recorded = true;
    e->at = std::chrono::steady_clock::now();
    return cudaSuccess;
}

// A stream's later work waits for the event: here every earlier launch has already finished.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
    if (!valid_stream(stream) || known_event(event) == nullptr) return fail(cudaErrorInvalidResourceHandle);
    return flags == 0 || flags == cudaEventWaitExternal ? cudaSuccess : fail(cudaErrorInvalidValue);
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    return known_event(event) != nullptr ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (known_event(event) == nullptr) return fail(cudaErrorInvalidResourceHandle);
    ++host_waits;
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* milliseconds, cudaEvent_t start, cudaEvent_t end) {
    const EmulatedEvent* first = known_event(start);
    const EmulatedEvent* last = known_event(end);
    if (milliseconds == nullptr) return fail(cudaErrorInvalidValue);
    if (first == nullptr || last == nullptr || !first->recorded || !last->recorded) {
        return fail(cudaErrorInvalidResourceHandle);
    }
    *milliseconds = std::chrono::duration<float, std::milli>(last->at - first->at).count();
    return cudaSuccess;
}
