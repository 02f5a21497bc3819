#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "convkit/device.h"
#include "convkit/dtype.h"
#include "convkit/error.h"
#include "convkit/memory_format.h"
#include "convkit/shape.h"

namespace convkit {

namespace detail {
struct AutogradMeta;
}

// A block of memory on one device, shared by the tensors that view it. Released to its
// allocator (the caching allocator for CUDA) when the last tensor lets go of it.
class Storage {
public:
    Storage(std::shared_ptr<void> data, std::size_t nbytes, Device device)
        : data_(std::move(data)), nbytes_(nbytes), device_(device) {}
    void* data() const { return data_.get(); }
    std::size_t nbytes() const { return nbytes_; }
    Device device() const { return device_; }
    // Counts in-place writes, so autograd can tell that a tensor it saved has changed since.
    std::uint64_t version() const { return version_; }
    void bump_version() { ++version_; }

private:
    std::shared_ptr<void> data_;
    std::size_t nbytes_;
    Device device_;
    std::uint64_t version_ = 0;
};

// A dense array (a scalar, or up to N C [D] [H] W) of float32, float64, int64, bfloat16 or
// float16 on the host or a CUDA device. The shape is logical; memory_format() says how the
// buffer orders it: Contiguous (row-major, NCHW) or, for rank 3-5, ChannelsLast (NHWC, NDHWC;
// convkit/memory_format.h). Everything that takes or gives elements by index (at, item,
// to_vector, from_vector, to_string, copy_) works in the logical order whatever the format.
// Copying a Tensor shares its storage and its autograd state (as in LibTorch); clone() copies
// the data. reshape, to, contiguous and clone are differentiable (see convkit/autograd.h).
class Tensor {
public:
    Tensor() = default;

    // Factories. Random fills draw element i from a counter-based generator keyed by (seed, i),
    // so the same seed gives the same values on every device and for every thread count.
    // `format` ChannelsLast needs a rank 3-5 shape (InvalidArgument otherwise).
    static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::host(),
                        MemoryFormat format = MemoryFormat::Contiguous);
    static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::host(),
                        MemoryFormat format = MemoryFormat::Contiguous);
    static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                       Device device = Device::host());
    static Tensor uniform(const Shape& shape, double low, double high, std::uint64_t seed,
                          DType dtype = DType::Float32, Device device = Device::host());
    static Tensor normal(const Shape& shape, double mean, double stddev, std::uint64_t seed,
                         DType dtype = DType::Float32, Device device = Device::host());
    // Copies `values` (row-major, numel() of them) into a new tensor.
    static Tensor from_vector(const Shape& shape, const std::vector<float>& values, Device device = Device::host());
    static Tensor from_vector(const Shape& shape, const std::vector<double>& values,
                              Device device = Device::host());
    static Tensor from_vector(const Shape& shape, const std::vector<std::int64_t>& values,
                              Device device = Device::host());
    // From a braced list, e.g. Tensor::from_values(Shape{2, 2}, {1, 2, 3, 4}) (float32 by default).
    static Tensor from_values(const Shape& shape, std::initializer_list<double> values,
                              DType dtype = DType::Float32, Device device = Device::host());

    bool defined() const { return storage_ != nullptr; }
    const Shape& shape() const { return shape_; }
    int rank() const { return shape_.rank(); }
    std::int64_t size(int dim) const;  // negative dims count from the end
    std::int64_t numel() const { return defined() ? shape_.numel() : 0; }
    DType dtype() const { return dtype_; }
    Device device() const;
    std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
    MemoryFormat memory_format() const { return format_; }
    bool is_contiguous() const { return format_ == MemoryFormat::Contiguous; }

    // Pointer to the first element of a Contiguous tensor, on the tensor's device. Throws
    // InvalidArgument if T does not match dtype(), the tensor is undefined, or it is
    // ChannelsLast (whose buffer is not in the logical order: call contiguous() first, or
    // physical_data() to read the channels-last buffer knowingly). This refusal is the safety
    // net that keeps code written for contiguous buffers from misreading a channels-last one.
    template <typename T>
    T* data() const {
        check_element_type(dtype_of<T>, "data");
        return static_cast<T*>(raw_data());
    }
    void* raw_data() const;
    // The buffer in the tensor's own memory format (NHWC order for a ChannelsLast tensor).
    template <typename T>
    T* physical_data() const {
        check_element_type(dtype_of<T>, "physical_data");
        return static_cast<T*>(raw_physical_data());
    }
    void* raw_physical_data() const;

    // Host element access by (logical) multi-index, bounds-checked, in either memory format.
    template <typename T>
    T& at(std::initializer_list<std::int64_t> index) const {
        check_element_type(dtype_of<T>, "at");
        return static_cast<T*>(raw_physical_data())[flat_index(index)];
    }
    // Host element i (row-major) converted to double, whatever the dtype.
    double item(std::int64_t flat_index) const;

    // In-place fills, on any device.
    Tensor& fill_(double value);
    Tensor& fill_uniform_(double low, double high, std::uint64_t seed);
    Tensor& fill_normal_(double mean, double stddev, std::uint64_t seed);

    // Copies into a tensor of the same shape and dtype, across devices if needed.
    Tensor& copy_(const Tensor& source);
    Tensor to(Device device) const;  // shares storage if already there
    Tensor to(DType dtype) const;    // converts; shares storage if already that dtype
    // The same values in `format` (differentiable); shares storage if already in it. A tensor
    // of a rank other than 3-5 asked for ChannelsLast is an InvalidArgument. to(Device),
    // to(DType) and clone keep the format.
    Tensor to(MemoryFormat format) const;
    Tensor contiguous() const { return to(MemoryFormat::Contiguous); }
    Tensor clone() const;
    // Another shape of the same element count, in the logical (row-major) order: a view of the
    // same storage for a Contiguous tensor; a ChannelsLast one is copied to a contiguous tensor
    // first (counted in layout_conversions()), whose view is returned (always Contiguous).
    Tensor reshape(const Shape& shape) const;
    // All elements as doubles (copied to the host first if needed).
    std::vector<double> to_vector() const;

    // Readable printout; at most `max_elements` values, then "...".
    std::string to_string(std::int64_t max_elements = 64) const;

    // ---- Autograd (convkit/autograd.h) ----
    bool requires_grad() const;
    // Makes this leaf tensor a parameter: backward() accumulates its gradient into grad().
    // Only leaves (tensors not computed by a recorded op) can be switched.
    Tensor& set_requires_grad(bool requires_grad = true);
    bool is_leaf() const;  // true unless computed by a recorded op
    Tensor grad() const;   // undefined until a backward pass reaches this leaf
    void set_grad(const Tensor& grad);
    void clear_grad();  // grad() becomes undefined; the next backward() writes instead of adding
    // Runs backward from this tensor. `gradient` is d(something)/d(this); it may be omitted for a
    // one-element tensor (a loss), where it is 1.
    void backward() const;
    void backward(const Tensor& gradient, bool retain_graph = false) const;
    // The same data, cut off from the graph: requires no grad.
    Tensor detach() const;
    // The op that computed this tensor ("conv2d", "relu", ...), empty for a leaf.
    std::string grad_fn_name() const;

    // Internal: the autograd state (src/autograd).
    const std::shared_ptr<detail::AutogradMeta>& autograd_meta() const { return autograd_; }
    std::uint64_t storage_version() const { return storage_ ? storage_->version() : 0; }
    // Internal: records an in-place write made through data pointers (an optimizer's kernel), as
    // fill_ and copy_ do: refused while grad mode is on if the tensor requires grad, and bumps the
    // storage's version so a SavedTensor of it fails loudly in backward. `op` names the writer.
    void mark_written_in_place(const char* op) const { check_in_place_write(op); }

private:
    friend Tensor empty_pinned(const Shape& shape, DType dtype);  // convkit/memory.h
    // The format is stated by every caller: a view that drops it would misread its buffer.
    Tensor(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype, MemoryFormat format);
    void check_in_place_write(const char* op) const;
    void check_element_type(DType requested, const char* accessor) const;
    std::int64_t flat_index(std::initializer_list<std::int64_t> index) const;  // physical offset
    std::int64_t physical_offset(std::int64_t logical_index) const;

    std::shared_ptr<Storage> storage_;
    Shape shape_;
    DType dtype_ = DType::Float32;
    MemoryFormat format_ = MemoryFormat::Contiguous;
    // Shared by every copy of this handle, so set_requires_grad on one copy holds for all.
    std::shared_ptr<detail::AutogradMeta> autograd_;
};

}  // namespace convkit
