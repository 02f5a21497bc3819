#include "ops/op_support.h"

#include <stdexcept>
#include <string>

#include "convkit/error.h"
#include "core/check.h"

namespace convkit::detail {

void check_same_device_and_dtype(std::string_view op, std::initializer_list<NamedTensor> tensors,
                                 ReducedPrecision reduced, Layouts layouts) {
    const NamedTensor* first = nullptr;
    for (const NamedTensor& t : tensors) {
        CONVKIT_REQUIRE(t.tensor.defined(), op, t.name, " is undefined");
        if (layouts == Layouts::ContiguousOnly && !t.tensor.is_contiguous()) {
            throw std::logic_error(concat(op, ": ", t.name, " is channels_last but this op reads contiguous buffers "
                                          "only and its entry did not convert it (a bug in convkit)"));
        }
        CONVKIT_REQUIRE(is_floating_point(t.tensor.dtype()), op, t.name, " must be float32 or float64, got ",
                        dtype_name(t.tensor.dtype()));
        if (is_reduced_precision(t.tensor.dtype()) && reduced == ReducedPrecision::Refused) {
            throw NotSupported(std::string(op) + ": " + t.name + " is " + dtype_name(t.tensor.dtype()) +
                               "; this op runs float32 and float64 only");
        }
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

void check_bias(std::string_view op, const Tensor& bias, std::int64_t channels, const Tensor& like) {
    if (!bias.defined()) return;
    // The input's format is its op's business; the bias is a vector.
    check_same_device_and_dtype(op, {{"input", like}, {"bias", bias}}, ReducedPrecision::ComputedInFloat32,
                                Layouts::Either);
    CONVKIT_REQUIRE(bias.rank() == 1 && bias.size(0) == channels, op, "bias must have shape [", channels,
                    "] (one value per output channel), got ", bias.shape().to_string());
}

void check_grad_output(std::string_view op, const Tensor& grad_output, const Shape& expected) {
    CONVKIT_REQUIRE(grad_output.shape() == expected, op, "grad_output has shape ", grad_output.shape().to_string(),
                    " but the op's output has shape ", expected.to_string());
}

namespace {
std::string_view formatted_label(std::string text) {
    thread_local std::string buffer;
    buffer = std::move(text);
    return buffer;
}
}  // namespace

std::string_view conv_op_label(int spatial_rank, bool transposed, ConvOpPass pass) {
    static constexpr const char* kNames[2][3][3] = {
        {{"conv1d", "conv1d_backward_data", "conv1d_backward_filter"},
         {"conv2d", "conv2d_backward_data", "conv2d_backward_filter"},
         {"conv3d", "conv3d_backward_data", "conv3d_backward_filter"}},
        {{"conv_transpose1d", "conv_transpose1d_backward_data", "conv_transpose1d_backward_filter"},
         {"conv_transpose2d", "conv_transpose2d_backward_data", "conv_transpose2d_backward_filter"},
         {"conv_transpose3d", "conv_transpose3d_backward_data", "conv_transpose3d_backward_filter"}}};
    const int p = static_cast<int>(pass);
    if (spatial_rank >= 1 && spatial_rank <= 3) return kNames[transposed ? 1 : 0][spatial_rank - 1][p];
    static constexpr const char* kSuffix[3] = {"", "_backward_data", "_backward_filter"};
    return formatted_label(concat(transposed ? "conv_transpose" : "conv", spatial_rank, "d", kSuffix[p]));
}

std::string_view pool_op_label(int spatial_rank, PoolOpFamily family, bool backward) {
    static constexpr const char* kNames[4][3][2] = {
        {{"max_pool1d", "max_pool1d_backward"}, {"max_pool2d", "max_pool2d_backward"},
         {"max_pool3d", "max_pool3d_backward"}},
        {{"avg_pool1d", "avg_pool1d_backward"}, {"avg_pool2d", "avg_pool2d_backward"},
         {"avg_pool3d", "avg_pool3d_backward"}},
        {{"adaptive_avg_pool1d", "adaptive_avg_pool1d_backward"}, {"adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"},
         {"adaptive_avg_pool3d", "adaptive_avg_pool3d_backward"}},
        {{"global_avg_pool1d", "global_avg_pool1d_backward"}, {"global_avg_pool2d", "global_avg_pool2d_backward"},
         {"global_avg_pool3d", "global_avg_pool3d_backward"}}};
    static constexpr const char* kFamily[4] = {"max_pool", "avg_pool", "adaptive_avg_pool", "global_avg_pool"};
    const int f = static_cast<int>(family);
    if (spatial_rank >= 1 && spatial_rank <= 3) return kNames[f][spatial_rank - 1][backward ? 1 : 0];
    // Adaptive and global pooling name no rank when the tensor has none of an image.
    if (family == PoolOpFamily::AdaptiveAverage || family == PoolOpFamily::GlobalAverage) {
        return formatted_label(concat(kFamily[f], backward ? "_backward" : ""));
    }
    return formatted_label(concat(kFamily[f], spatial_rank, "d", backward ? "_backward" : ""));
}

Stream stream_of(const Tensor& tensor) { return current_stream(tensor.device().index); }

}  // namespace convkit::detail
