#include "ops/op_support.h"

#include "core/check.h"

namespace convkit::detail {

void check_same_device_and_dtype(const std::string& op, std::initializer_list<NamedTensor> tensors) {
    const NamedTensor* first = nullptr;
    for (const NamedTensor& t : tensors) {
        CONVKIT_REQUIRE(t.tensor.defined(), op, t.name, " is undefined");
        CONVKIT_REQUIRE(is_floating_point(t.tensor.dtype()), op, t.name, " must be float32 or float64, got ",
                        dtype_name(t.tensor.dtype()));
        if (first == nullptr) {
            first = &t;
            continue;
        }
        CONVKIT_REQUIRE(t.tensor.device() == first->tensor.device(), op, t.name, " is on ",
                        t.tensor.device().to_string(), " but ", first->name, " is on ",
                        first->tensor.device().to_string());
        CONVKIT_REQUIRE(t.tensor.dtype() == first->tensor.dtype(), op, t.name, " is ", dtype_name(t.tensor.dtype()),
                        " but ", first->name, " is ", dtype_name(first->tensor.dtype()));
    }
}

void check_bias(const std::string& op, const Tensor& bias, std::int64_t channels, const Tensor& like) {
    if (!bias.defined()) return;
    check_same_device_and_dtype(op, {{"input", like}, {"bias", bias}});
    CONVKIT_REQUIRE(bias.rank() == 1 && bias.size(0) == channels, op, "bias must have shape [", channels,
                    "] (one value per output channel), got ", bias.shape().to_string());
}

void throw_host_out_of_memory() {
    throw OutOfMemory("host: out of memory for the scratch space of a host op (std::bad_alloc)");
}

void check_grad_output(const std::string& op, const Tensor& grad_output, const Shape& expected) {
    CONVKIT_REQUIRE(grad_output.shape() == expected, op, "grad_output has shape ", grad_output.shape().to_string(),
                    " but the op's output has shape ", expected.to_string());
}

Stream stream_of(const Tensor& tensor) { return current_stream(tensor.device().index); }

}  // namespace convkit::detail
