#pragma once
#include <string>

namespace convkit {

enum class DeviceType { Host, CUDA };

struct Device {
    DeviceType type = DeviceType::Host;
    int index = 0;

    static Device host() { return {DeviceType::Host, 0}; }
    static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }

    bool is_host() const { return type == DeviceType::Host; }
    bool is_cuda() const { return type == DeviceType::CUDA; }
    std::string to_string() const;  // "host", "cuda:0"

    friend bool operator==(const Device&, const Device&) = default;
};

// Number of CUDA devices usable by this process; 0 when there is no GPU or no driver.
int cuda_device_count();
inline bool cuda_is_available() { return cuda_device_count() > 0; }

// Why no CUDA device is usable (the runtime's own words), or "" when one is.
std::string cuda_unavailable_reason();
// True in a library built with CONVKIT_EMULATED_DEVICE: cuda:0 is then an emulated device whose
// kernels run on the CPU (for testing without a GPU; slow, and without cuBLAS and cuDNN).
bool cuda_is_emulated();

// A CUDA stream, opaque so that public headers need no CUDA header. A null handle is the
// device's default stream.
struct Stream {
    void* handle = nullptr;
    int device = 0;
    friend bool operator==(const Stream&, const Stream&) = default;
};

// A new non-blocking stream on `device`. Destroy it with destroy_stream, not with the CUDA API:
// that also returns the memory cached for it.
Stream create_stream(int device = 0);
// Waits for the stream's work, returns its cached blocks to the driver, and destroys it.
void destroy_stream(Stream stream);

// The stream this thread enqueues work on for a device (default stream unless set).
Stream current_stream(int device = 0);
void set_current_stream(Stream stream);

// Sets the thread's current stream for a scope and restores the previous one after.
class StreamGuard {
public:
    explicit StreamGuard(Stream stream);
    ~StreamGuard();
    StreamGuard(const StreamGuard&) = delete;
    StreamGuard& operator=(const StreamGuard&) = delete;

private:
    Stream previous_;
};

// Blocks until all work on the device's current stream has finished.
void synchronize(int device = 0);

}  // namespace convkit
