// The CUDA runtime API of the emulated CUDA device (CONVKIT_EMULATED_DEVICE, docs/testing.md
// "The emulated CUDA device"): the calls libconvkit makes, with the toolkit's own declarations,
// answered on the CPU. There is one device, cuda:0. Its memory is host memory, tracked block by
// block so that a copy or fill reaching past a block fails as cudaErrorInvalidValue instead of
// silently touching a neighbour, and poisoned with 0xFF (a NaN in every float type) when it is
// allocated, as fresh device memory holds garbage. Kernels run in the emulator when launched
// (kernels/launch.cuh), so every stream is always idle: synchronising returns at once, events
// complete when recorded, and an "asynchronous" copy has finished when the call returns.
//
// Stream capture (CUDA graphs) follows CUDA: while a stream captures, the kernel launches and
// asynchronous copies and fills enqueued on it are recorded, not run; a launch of the
// instantiated graph runs them in capture order. A call that would wait for the device, or that
// CUDA calls "potentially unsafe" during capture (cudaMalloc, cudaFree, a synchronous copy), made
// by a thread whose capture forbids it, fails with cudaErrorStreamCaptureUnsupported and
// invalidates the capture, which cudaStreamEndCapture then reports
// (cudaErrorStreamCaptureInvalidated), as on a GPU.
#include "emu/emulated_runtime.h"
#include "emu/stream_work.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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

// A captured graph and its instantiation: the recorded work, run in order by cudaGraphLaunch.
using RecordedWork = std::vector<std::function<void()>>;
struct EmulatedGraph {
    RecordedWork nodes;
};
struct EmulatedGraphExec {
    RecordedWork nodes;
};

// A stream records into `graph` while it captures; `invalidated` once an unsupported call broke
// the capture (its later work is dropped, and cudaStreamEndCapture fails).
struct StreamCapture {
    std::unique_ptr<EmulatedGraph> graph;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    std::thread::id thread;
    bool invalidated = false;
};
struct EmulatedStream {
    std::unique_ptr<StreamCapture> capture;
};

struct RuntimeState {
    std::mutex mutex;
    std::map<const char*, std::size_t> device_blocks;  // start -> bytes
    std::size_t device_bytes_in_use = 0;
    std::map<const char*, std::size_t> pinned_blocks;  // start -> bytes
    std::set<const void*> streams;
    std::set<const void*> events;
    std::set<const void*> graphs;
    std::set<const void*> graph_execs;
    int global_mode_captures = 0;  // captures begun with cudaStreamCaptureModeGlobal, any thread
};

RuntimeState& state() {
    static auto* s = new RuntimeState();  // never destroyed: blocks may be freed at exit
    return *s;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;
std::atomic<std::uint64_t> host_waits{0};
// This thread's interaction mode (cudaThreadExchangeStreamCaptureMode) and its captures that
// were not begun in relaxed mode.
thread_local cudaStreamCaptureMode thread_capture_mode = cudaStreamCaptureModeGlobal;
thread_local std::vector<EmulatedStream*> strict_captures_of_thread;

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

// Whether [pointer, pointer + bytes) lies inside one of `blocks` (start -> bytes). Caller holds
// the mutex.
bool inside_block(const std::map<const char*, std::size_t>& blocks, const void* pointer, std::size_t bytes) {
    const auto* p = static_cast<const char*>(pointer);
    auto it = blocks.upper_bound(p);
    if (it == blocks.begin()) return false;
    --it;
    const std::size_t offset = static_cast<std::size_t>(p - it->first);
    return offset <= it->second && bytes <= it->second - offset;
}

bool inside_device_block(const RuntimeState& s, const void* pointer, std::size_t bytes) {
    return inside_block(s.device_blocks, pointer, bytes);
}

bool valid_device_range(const void* pointer, std::size_t bytes) {
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    return inside_device_block(s, pointer, bytes);
}

// The stream object behind a handle: null for the legacy default stream and its aliases, which
// never capture. False for a handle that is not a live stream.
bool look_up_stream(cudaStream_t stream, EmulatedStream** object) {
    *object = nullptr;
    // 0 is the legacy default stream, cudaStreamPerThread and cudaStreamLegacy are its aliases.
    if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread) return true;
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    if (s.streams.count(stream) == 0) return false;
    *object = reinterpret_cast<EmulatedStream*>(stream);
    return true;
}

bool valid_stream(cudaStream_t stream) {
    EmulatedStream* object = nullptr;
    return look_up_stream(stream, &object);
}

// The capture of a valid stream, or null when it does not capture.
StreamCapture* capture_of(cudaStream_t stream) {
    EmulatedStream* object = nullptr;
    look_up_stream(stream, &object);
    return object == nullptr ? nullptr : object->capture.get();
}

// Whether this thread is forbidden potentially unsafe calls now: by a capture of its own not
// begun in relaxed mode, or, in the default global interaction mode, by any global-mode capture.
bool unsafe_calls_forbidden() {
    if (thread_capture_mode == cudaStreamCaptureModeRelaxed) return false;
    if (!strict_captures_of_thread.empty()) return true;
    if (thread_capture_mode != cudaStreamCaptureModeGlobal) return false;
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    return s.global_mode_captures > 0;
}

// The answer to a call that a capture forbids: CUDA invalidates the captures it conflicts with
// (here, this thread's), so that the graph cannot silently miss the call's effect.
cudaError_t refuse_during_capture(StreamCapture* capture = nullptr) {
    if (capture != nullptr) capture->invalidated = true;
    for (EmulatedStream* stream : strict_captures_of_thread) stream->capture->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
}

// Runs `work` at once, or records it while `stream` captures.
cudaError_t enqueue(cudaStream_t stream, std::function<void()> work) {
    EmulatedStream* object = nullptr;
    if (!look_up_stream(stream, &object)) return fail(cudaErrorInvalidResourceHandle);
    if (object == nullptr || object->capture == nullptr) {
        work();
        return cudaSuccess;
    }
    if (object->capture->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
    object->capture->graph->nodes.push_back(std::move(work));
    return cudaSuccess;
}

bool inside_pinned_block(const void* pointer, std::size_t bytes) {
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    return inside_block(s.pinned_blocks, pointer, bytes);
}

// Checks a copy as the runtime does and resolves cudaMemcpyDefault: the device side must lie
// inside one block; the host side is the caller's business.
cudaError_t check_copy(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind& kind) {
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
    return cudaSuccess;
}

// A copy node of a graph reads its host side when the graph runs: pageable memory, which the
// runtime would stage at the call, cannot be captured.
bool host_side_pinned(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
    if (kind == cudaMemcpyDeviceToDevice) return true;
    if (kind == cudaMemcpyHostToDevice) return inside_pinned_block(source, bytes);
    if (kind == cudaMemcpyDeviceToHost) return inside_pinned_block(destination, bytes);
    return inside_pinned_block(source, bytes) && inside_pinned_block(destination, bytes);
}

cudaError_t copy(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return cudaSuccess;
    if (const cudaError_t status = check_copy(destination, source, bytes, kind); status != cudaSuccess) return status;
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
        case cudaErrorIllegalState: return "cudaErrorIllegalState";
        case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
        case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
        case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
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
        case cudaErrorIllegalState: return "operation not permitted in the stream's state (emulated device)";
        case cudaErrorStreamCaptureUnsupported:
            return "operation not permitted when stream is capturing (emulated device)";
        case cudaErrorStreamCaptureInvalidated:
            return "operation failed due to a previous error during capture (emulated device)";
        case cudaErrorStreamCaptureWrongThread:
            return "capture was ended by a thread that did not begin it (emulated device)";
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
    if (unsafe_calls_forbidden()) return refuse_during_capture();
    ++host_waits;
    return cudaSuccess;
}

// ---- memory -----------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** pointer, std::size_t bytes) {
    if (pointer == nullptr) return fail(cudaErrorInvalidValue);
    *pointer = nullptr;
    if (unsafe_calls_forbidden()) return refuse_during_capture();
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
    if (unsafe_calls_forbidden()) return refuse_during_capture();
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
    if (unsafe_calls_forbidden()) return refuse_during_capture();
    *pointer = allocate_block(bytes);
    if (*pointer == nullptr) return fail(cudaErrorMemoryAllocation);
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    s.pinned_blocks[static_cast<const char*>(*pointer)] = bytes;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
    if (pointer == nullptr) return cudaSuccess;
    if (unsafe_calls_forbidden()) return refuse_during_capture();
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    if (s.pinned_blocks.erase(static_cast<const char*>(pointer)) == 0) return fail(cudaErrorInvalidValue);
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
    } else if (s.pinned_blocks.count(static_cast<const char*>(pointer)) != 0) {
        attributes->type = cudaMemoryTypeHost;
        attributes->hostPointer = const_cast<void*>(pointer);
        attributes->devicePointer = const_cast<void*>(pointer);
    } else {
        attributes->type = cudaMemoryTypeUnregistered;
    }
    return cudaSuccess;
}

// Checked when called, as the runtime checks a captured copy; run at once or when the graph runs.
cudaError_t cudaMemcpyAsync(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    if (bytes == 0) return cudaSuccess;
    if (const cudaError_t status = check_copy(destination, source, bytes, kind); status != cudaSuccess) return status;
    StreamCapture* capture = capture_of(stream);
    if (capture != nullptr && !host_side_pinned(destination, source, bytes, kind)) {
        return refuse_during_capture(capture);
    }
    return enqueue(stream, [=] { std::memmove(destination, source, bytes); });
}

cudaError_t cudaMemcpy(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
    if (unsafe_calls_forbidden()) return refuse_during_capture();
    ++host_waits;
    return copy(destination, source, bytes, kind);
}

cudaError_t cudaMemsetAsync(void* destination, int value, std::size_t bytes, cudaStream_t stream) {
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    if (bytes == 0) return cudaSuccess;
    if (!valid_device_range(destination, bytes)) return fail(cudaErrorInvalidValue);
    return enqueue(stream, [=] { std::memset(destination, value, bytes); });
}

cudaError_t cudaMemset(void* destination, int value, std::size_t bytes) {
    if (unsafe_calls_forbidden()) return refuse_during_capture();
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
cudaError_t destroy_handle(Handle handle, std::set<const void*> RuntimeState::*registry,
                           cudaError_t unknown = cudaErrorInvalidResourceHandle) {
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    if ((s.*registry).erase(handle) == 0) return fail(unknown);
    delete reinterpret_cast<Object*>(handle);
    return cudaSuccess;
}
}  // namespace

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
    return create_handle<EmulatedStream>(stream, &RuntimeState::streams);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
    return cudaStreamCreateWithFlags(stream, 0);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (capture_of(stream) != nullptr) return fail(cudaErrorIllegalState);
    return destroy_handle<EmulatedStream>(stream, &RuntimeState::streams);
}

// Waiting for a capturing stream is never allowed, whatever the mode: its work is not running.
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    if (StreamCapture* capture = capture_of(stream); capture != nullptr) return refuse_during_capture(capture);
    if (unsafe_calls_forbidden()) return refuse_during_capture();
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
    if (unsafe_calls_forbidden()) return refuse_during_capture();
    return known_event(event) != nullptr ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (known_event(event) == nullptr) return fail(cudaErrorInvalidResourceHandle);
    if (unsafe_calls_forbidden()) return refuse_during_capture();
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

// ---- stream capture and graphs --------------------------------------------------------------

namespace convkit::emu {

cudaError_t enqueue_on_stream(cudaStream_t stream, std::function<void()> work) {
    return enqueue(stream, std::move(work));
}

}  // namespace convkit::emu

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
    EmulatedStream* object = nullptr;
    if (!look_up_stream(stream, &object)) return fail(cudaErrorInvalidResourceHandle);
    // The legacy default stream synchronises with every other stream: it cannot capture.
    if (object == nullptr) return fail(cudaErrorStreamCaptureUnsupported);
    if (object->capture != nullptr) return fail(cudaErrorIllegalState);
    if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
        mode != cudaStreamCaptureModeRelaxed) {
        return fail(cudaErrorInvalidValue);
    }
    object->capture = std::make_unique<StreamCapture>();
    object->capture->graph = std::make_unique<EmulatedGraph>();
    object->capture->mode = mode;
    object->capture->thread = std::this_thread::get_id();
    if (mode != cudaStreamCaptureModeRelaxed) strict_captures_of_thread.push_back(object);
    if (mode == cudaStreamCaptureModeGlobal) {
        RuntimeState& s = state();
        std::lock_guard lock(s.mutex);
        ++s.global_mode_captures;
    }
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
    EmulatedStream* object = nullptr;
    if (graph == nullptr) return fail(cudaErrorInvalidValue);
    *graph = nullptr;
    if (!look_up_stream(stream, &object)) return fail(cudaErrorInvalidResourceHandle);
    if (object == nullptr || object->capture == nullptr) return fail(cudaErrorIllegalState);
    std::unique_ptr<StreamCapture> capture = std::move(object->capture);
    if (capture->mode != cudaStreamCaptureModeRelaxed && capture->thread != std::this_thread::get_id()) {
        object->capture = std::move(capture);
        return fail(cudaErrorStreamCaptureWrongThread);
    }
    std::erase(strict_captures_of_thread, object);
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    if (capture->mode == cudaStreamCaptureModeGlobal) --s.global_mode_captures;
    if (capture->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
    *graph = reinterpret_cast<cudaGraph_t>(capture->graph.release());
    s.graphs.insert(*graph);
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
    if (status == nullptr) return fail(cudaErrorInvalidValue);
    if (!valid_stream(stream)) return fail(cudaErrorInvalidResourceHandle);
    const StreamCapture* capture = capture_of(stream);
    *status = capture == nullptr    ? cudaStreamCaptureStatusNone
              : capture->invalidated ? cudaStreamCaptureStatusInvalidated
                                     : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
    if (mode == nullptr) return fail(cudaErrorInvalidValue);
    std::swap(*mode, thread_capture_mode);
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
    if (exec == nullptr) return fail(cudaErrorInvalidValue);
    RuntimeState& s = state();
    std::lock_guard lock(s.mutex);
    if (s.graphs.count(graph) == 0) return fail(cudaErrorInvalidValue);
    auto* instance = new EmulatedGraphExec{reinterpret_cast<EmulatedGraph*>(graph)->nodes};
    *exec = reinterpret_cast<cudaGraphExec_t>(instance);
    s.graph_execs.insert(*exec);
    return cudaSuccess;
}

// The graph's work in capture order, or recorded as one piece when the stream itself captures.
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    const EmulatedGraphExec* instance = nullptr;
    {
        RuntimeState& s = state();
        std::lock_guard lock(s.mutex);
        if (s.graph_execs.count(exec) == 0) return fail(cudaErrorInvalidValue);
        instance = reinterpret_cast<const EmulatedGraphExec*>(exec);
    }
    return enqueue(stream, [nodes = instance->nodes] {
        for (const std::function<void()>& node : nodes) node();
    });
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    return destroy_handle<EmulatedGraphExec>(exec, &RuntimeState::graph_execs, cudaErrorInvalidValue);
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    return destroy_handle<EmulatedGraph>(graph, &RuntimeState::graphs, cudaErrorInvalidValue);
}
