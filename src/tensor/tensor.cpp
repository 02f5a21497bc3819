#include "convkit/tensor.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "autograd/graph.h"
#include "convkit/half.h"
#include "convkit/memory.h"
#include "core/check.h"
#include "core/random.h"
#include "cuda/cuda_memory.h"
#include "kernels/tensor_fill.h"
#include "memory/host_allocator.h"
#include "memory/pinned_memory.h"
#include "tensor/memory_format_support.h"

namespace convkit {

namespace {
void check_shape(const Shape& shape, const char* op) {
    CONVKIT_REQUIRE(shape.rank() >= 0 && shape.rank() <= Shape::kMaxRank, op, "rank must be 0 to ",
                    Shape::kMaxRank, ", got shape ", shape.to_string());
    for (std::int64_t d : shape) {
        CONVKIT_REQUIRE(d >= 0, op, "dimensions must not be negative, got shape ", shape.to_string());
    }
}

// The byte size of a new tensor; a shape too large to address is an argument error, never a
// wrapped-around small allocation.
std::size_t checked_nbytes(const Shape& shape, DType dtype, const char* op) {
    check_shape(shape, op);
    std::int64_t count = 1;
    for (std::int64_t d : shape) {
        CONVKIT_REQUIRE(!__builtin_mul_overflow(count, d, &count), op, "shape ", shape.to_string(),
                        " has more elements than 64 bits can count");
    }
    const auto limit = static_cast<std::int64_t>(PTRDIFF_MAX / static_cast<std::ptrdiff_t>(dtype_size(dtype)));
    CONVKIT_REQUIRE(count <= limit, op, "shape ", shape.to_string(), " of ", dtype_name(dtype),
                    " needs more bytes than can be addressed");
    return static_cast<std::size_t>(count) * dtype_size(dtype);
}

std::shared_ptr<void> allocate(std::size_t bytes, Device device) {
    return device.is_host() ? detail::allocate_host(bytes) : detail::allocate_cuda(bytes, device.index);
}

template <typename T>
Tensor copy_to_new_tensor(const Shape& shape, const std::vector<T>& values, Device device) {
    CONVKIT_REQUIRE(static_cast<std::int64_t>(values.size()) == shape.numel(), "Tensor::from_vector", "shape ",
                    shape.to_string(), " holds ", shape.numel(), " elements but ", values.size(), " values were given");
    Tensor t = Tensor::empty(shape, dtype_of<T>, device);  // contiguous: values are row-major
    detail::copy_bytes(t.raw_data(), device, values.data(), Device::host(), t.nbytes());
    return t;
}

// Calls f with a value of the element type of `dtype`.
template <typename F>
decltype(auto) visit_element_type(DType dtype, F&& f) {
    switch (dtype) {
        case DType::Float32: return f(float{});
        case DType::Float64: return f(double{});
        case DType::Int64: break;
        case DType::BFloat16: return f(bfloat16{});
        case DType::Float16: return f(float16{});
    }
    return f(std::int64_t{});
}

void check_floating(const Tensor& t, const char* op) {
    CONVKIT_REQUIRE(is_floating_point(t.dtype()), op, "needs a floating-point tensor, this one is ",
                    dtype_name(t.dtype()));
}

// Random fills are generated on the host and uploaded: the counter-based generator makes the
// values device-independent, and fills are rare enough (initialisation, tests) not to matter.
// A channels-last tensor is filled in the logical order (element i of the fill is logical
// element i, as in a contiguous tensor) through a contiguous staging tensor.
template <typename FillHost>
void fill_random(Tensor& t, FillHost fill_host) {
    if (t.device().is_host() && t.is_contiguous()) {
        fill_host(t.raw_data());
        return;
    }
    Tensor staging = Tensor::empty(t.shape(), t.dtype(), Device::host());
    fill_host(staging.raw_data());
    t.copy_(staging);
}
}  // namespace

Tensor::Tensor(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype, MemoryFormat format)
    : storage_(std::move(storage)),
      shape_(shape),
      dtype_(dtype),
      format_(format),
      autograd_(std::make_shared<detail::AutogradMeta>()) {}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, MemoryFormat format) {
    const std::size_t bytes = checked_nbytes(shape, dtype, "Tensor::empty");
    CONVKIT_REQUIRE(format == MemoryFormat::Contiguous || channels_last_rank(shape.rank()), "Tensor::empty",
                    "channels_last needs a rank 3-5 shape [N, C, spatial...], got ", shape.to_string());
    return Tensor(std::make_shared<Storage>(allocate(bytes, device), bytes, device), shape, dtype, format);
}

Tensor empty_pinned(const Shape& shape, DType dtype) {
    const std::size_t bytes = checked_nbytes(shape, dtype, "empty_pinned");
    return Tensor(std::make_shared<Storage>(detail::allocate_pinned_host(bytes), bytes, Device::host()), shape, dtype,
                  MemoryFormat::Contiguous);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device, MemoryFormat format) {
    Tensor t = empty(shape, dtype, device, format);
    t.fill_(0.0);
    return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    t.fill_(value);
    return t;
}

Tensor Tensor::uniform(const Shape& shape, double low, double high, std::uint64_t seed, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    t.fill_uniform_(low, high, seed);
    return t;
}

Tensor Tensor::normal(const Shape& shape, double mean, double stddev, std::uint64_t seed, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    t.fill_normal_(mean, stddev, seed);
    return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values, Device device) {
    return copy_to_new_tensor(shape, values, device);
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<double>& values, Device device) {
    return copy_to_new_tensor(shape, values, device);
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<std::int64_t>& values, Device device) {
    return copy_to_new_tensor(shape, values, device);
}

Tensor Tensor::from_values(const Shape& shape, std::initializer_list<double> values, DType dtype, Device device) {
    return copy_to_new_tensor(shape, std::vector<double>(values), Device::host()).to(dtype).to(device);
}

std::int64_t Tensor::size(int dim) const {
    const int resolved = dim < 0 ? dim + rank() : dim;
    CONVKIT_REQUIRE(resolved >= 0 && resolved < rank(), "Tensor::size", "dim ", dim, " is out of range for shape ",
                    shape_.to_string());
    return shape_[resolved];
}

Device Tensor::device() const {
    CONVKIT_REQUIRE(defined(), "Tensor::device", "the tensor is undefined");
    return storage_->device();
}

void* Tensor::raw_data() const {
    CONVKIT_REQUIRE(defined(), "Tensor::data", "the tensor is undefined");
    CONVKIT_REQUIRE(is_contiguous(), "Tensor::data", "the tensor of shape ", shape_.to_string(),
                    " is channels_last, its buffer is not in the logical order: call contiguous() first, or "
                    "physical_data() to read the channels-last buffer");
    return storage_->data();
}

void* Tensor::raw_physical_data() const {
    CONVKIT_REQUIRE(defined(), "Tensor::physical_data", "the tensor is undefined");
    return storage_->data();
}

std::int64_t Tensor::physical_offset(std::int64_t logical_index) const {
    if (is_contiguous()) return logical_index;
    return detail::channels_geometry(shape_).channels_last_of_contiguous(logical_index);
}

void Tensor::check_element_type(DType requested, const char* accessor) const {
    CONVKIT_REQUIRE(defined(), detail::concat("Tensor::", accessor), "the tensor is undefined");
    CONVKIT_REQUIRE(requested == dtype_, detail::concat("Tensor::", accessor), "requested ", dtype_name(requested),
                    " elements from a ", dtype_name(dtype_), " tensor");
}

std::int64_t Tensor::flat_index(std::initializer_list<std::int64_t> index) const {
    CONVKIT_REQUIRE(device().is_host(), "Tensor::at", "element access needs a host tensor, this one is on ",
                    device().to_string());
    CONVKIT_REQUIRE(static_cast<int>(index.size()) == rank(), "Tensor::at", "got ", index.size(),
                    " indices for a tensor of shape ", shape_.to_string());
    std::int64_t flat = 0;
    int dim = 0;
    for (std::int64_t i : index) {
        CONVKIT_REQUIRE(i >= 0 && i < shape_[dim], "Tensor::at", "index ", i, " is out of range for dim ", dim,
                        " of shape ", shape_.to_string());
        flat = flat * shape_[dim] + i;
        ++dim;
    }
    return physical_offset(flat);
}

double Tensor::item(std::int64_t index) const {
    CONVKIT_REQUIRE(device().is_host(), "Tensor::item", "element access needs a host tensor, this one is on ",
                    device().to_string());
    CONVKIT_REQUIRE(index >= 0 && index < numel(), "Tensor::item", "index ", index, " is out of range for ", numel(),
                    " elements");
    return visit_element_type(dtype_, [&](auto zero) {
        return element_cast<double>(static_cast<const decltype(zero)*>(raw_physical_data())[physical_offset(index)]);
    });
}

Tensor& Tensor::fill_(double value) {
    check_in_place_write("Tensor::fill_");
    if (device().is_cuda()) {
        kernels::fill_constant(raw_physical_data(), dtype_, numel(), value, current_stream(device().index));
    } else {
        visit_element_type(dtype_, [&](auto zero) {
            using T = decltype(zero);
            std::fill_n(physical_data<T>(), numel(), element_cast<T>(value));
        });
    }
    return *this;
}

Tensor& Tensor::fill_uniform_(double low, double high, std::uint64_t seed) {
    check_floating(*this, "Tensor::fill_uniform_");
    check_in_place_write("Tensor::fill_uniform_");
    CONVKIT_REQUIRE(low <= high, "Tensor::fill_uniform_", "low ", low, " is greater than high ", high);
    fill_random(*this, [&](void* p) { detail::fill_uniform_host(p, dtype_, numel(), low, high, seed); });
    return *this;
}

Tensor& Tensor::fill_normal_(double mean, double stddev, std::uint64_t seed) {
    check_floating(*this, "Tensor::fill_normal_");
    check_in_place_write("Tensor::fill_normal_");
    CONVKIT_REQUIRE(stddev >= 0, "Tensor::fill_normal_", "stddev ", stddev, " is negative");
    fill_random(*this, [&](void* p) { detail::fill_normal_host(p, dtype_, numel(), mean, stddev, seed); });
    return *this;
}

Tensor& Tensor::copy_(const Tensor& source) {
    CONVKIT_REQUIRE(defined() && source.defined(), "Tensor::copy_", "both tensors must be defined");
    check_in_place_write("Tensor::copy_");
    CONVKIT_REQUIRE(source.shape() == shape_, "Tensor::copy_", "source shape ", source.shape().to_string(),
                    " differs from destination shape ", shape_.to_string());
    CONVKIT_REQUIRE(source.dtype() == dtype_, "Tensor::copy_", "source dtype ", dtype_name(source.dtype()),
                    " differs from destination dtype ", dtype_name(dtype_), " (use to(dtype) to convert)");
    // Between formats the source is permuted first (on its device), so the bytes copied are in
    // this tensor's order.
    Tensor ordered = source;
    if (source.memory_format() != format_) {
        NoGradGuard no_grad;
        ordered = source.to(format_);
    }
    if (ordered.raw_physical_data() != raw_physical_data()) {
        detail::copy_bytes(raw_physical_data(), device(), ordered.raw_physical_data(), ordered.device(), nbytes());
    }
    return *this;
}

Tensor Tensor::to(Device target) const {
    if (target == device()) return *this;
    Tensor result = empty(shape_, dtype_, target, format_);
    {
        NoGradGuard no_grad;
        result.copy_(*this);
    }
    autograd::record("to_device", result, {*this}, [source = device()](const Tensor& dy, const autograd::NeedsGrad&) {
        return std::vector<Tensor>{dy.to(source)};
    });
    return result;
}

Tensor Tensor::to(DType target) const {
    if (target == dtype_) return *this;
    // Elementwise, so it runs on the buffers in either format and keeps it.
    Tensor result = empty(shape_, target, device(), format_);
    if (device().is_cuda()) {
        kernels::convert(raw_physical_data(), dtype_, result.raw_physical_data(), target, numel(),
                         current_stream(device().index));
    } else {
        visit_element_type(dtype_, [&](auto from) {
            visit_element_type(target, [&](auto to) {
                using To = decltype(to);
                const auto* source = physical_data<decltype(from)>();
                std::transform(source, source + numel(), result.physical_data<To>(),
                               [](auto v) { return element_cast<To>(v); });
            });
        });
    }
    autograd::record("to_dtype", result, {*this}, [source = dtype_](const Tensor& dy, const autograd::NeedsGrad&) {
        return std::vector<Tensor>{dy.to(source)};
    });
    return result;
}

Tensor Tensor::to(MemoryFormat target) const {
    CONVKIT_REQUIRE(defined(), "Tensor::to", "the tensor is undefined");
    if (target == format_) return *this;
    CONVKIT_REQUIRE(channels_last_rank(rank()), "Tensor::to",
                    "channels_last needs a rank 3-5 shape [N, C, spatial...], got ", shape_.to_string());
    Tensor result = empty(shape_, dtype_, device(), target);
    detail::permute_memory_format(*this, result);
    autograd::record("to_memory_format", result, {*this},
                     [source = format_](const Tensor& dy, const autograd::NeedsGrad&) {
                         return std::vector<Tensor>{dy.to(source)};
                     });
    return result;
}

Tensor Tensor::clone() const {
    Tensor result = empty(shape_, dtype_, device(), format_);
    {
        NoGradGuard no_grad;
        result.copy_(*this);
    }
    autograd::record("clone", result, {*this},
                     [](const Tensor& dy, const autograd::NeedsGrad&) { return std::vector<Tensor>{dy}; });
    return result;
}

Tensor Tensor::reshape(const Shape& shape) const {
    CONVKIT_REQUIRE(defined(), "Tensor::reshape", "the tensor is undefined");
    check_shape(shape, "Tensor::reshape");
    CONVKIT_REQUIRE(shape.numel() == numel(), "Tensor::reshape", "cannot view shape ", shape_.to_string(), " (",
                    numel(), " elements) as ", shape.to_string(), " (", shape.numel(), " elements)");
    if (!is_contiguous()) return detail::contiguous_operand(*this).reshape(shape);
    Tensor view(storage_, shape, dtype_, MemoryFormat::Contiguous);
    autograd::record("reshape", view, {*this}, [source = shape_](const Tensor& dy, const autograd::NeedsGrad&) {
        return std::vector<Tensor>{dy.reshape(source)};
    });
    return view;
}

std::vector<double> Tensor::to_vector() const {
    const Tensor host = to(Device::host());
    std::vector<double> values(static_cast<std::size_t>(numel()));
    for (std::int64_t i = 0; i < numel(); ++i) values[static_cast<std::size_t>(i)] = host.item(i);
    return values;
}

}  // namespace convkit
