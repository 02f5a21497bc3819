// Convolution and transposed convolution entry points: checks, geometry, backend, call.
// A transposed convolution runs as the adjoint of the convolution its geometry describes, so
// each backend implements three convolution passes and gets all six ops from them.
#include "convkit/ops/conv.h"

#include "autograd/graph.h"
#include "core/check.h"
#include "backend_api/backend_registry.h"
#include "backend_api/geometry.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
using detail::ConvGeometry;

std::string pass_name(const ConvParams& params, bool transposed, const char* pass) {
    return conv_op_name(params.spatial_rank, transposed) + pass;
}

const void* data_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

// The three convolution passes, each into a new tensor, on the backend chosen for `op`.
// `bias` (or an undefined tensor) is added per channel of the result.
Tensor run_forward(const std::string& op, const ConvGeometry& g, const Tensor& x, const Tensor& w,
                   const Tensor& bias) {
    const auto& backend = detail::conv_backend_for(op, g, x.dtype(), x.device());
    Tensor y = Tensor::empty(g.output_shape(), x.dtype(), x.device());
    backend.forward(g, x.dtype(), x.raw_data(), w.raw_data(), data_or_null(bias), y.raw_data(), detail::stream_of(x));
    return y;
}

Tensor run_backward_data(const std::string& op, const ConvGeometry& g, const Tensor& dy, const Tensor& w,
                         const Tensor& bias) {
    const auto& backend = detail::conv_backend_for(op, g, dy.dtype(), dy.device());
    Tensor dx = Tensor::empty(g.input_shape(), dy.dtype(), dy.device());
    backend.backward_data(g, dy.dtype(), dy.raw_data(), w.raw_data(), data_or_null(bias), dx.raw_data(),
                          detail::stream_of(dy));
    return dx;
}

Tensor run_backward_filter(const std::string& op, const ConvGeometry& g, const Tensor& dy, const Tensor& x) {
    const auto& backend = detail::conv_backend_for(op, g, dy.dtype(), dy.device());
    Tensor dw = Tensor::empty(g.weight_shape(), dy.dtype(), dy.device());
    backend.backward_filter(g, dy.dtype(), dy.raw_data(), x.raw_data(), dw.raw_data(), detail::stream_of(dy));
    return dw;
}
}  // namespace

namespace {
// The backward of a (transposed) convolution y = op(x, w) + b: the data and filter passes of the
// same op family, and the bias gradient. Each operand is saved only if the other's gradient
// needs it.
void record_conv(const std::string& op, Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                 const ConvParams& params, bool transposed) {
    if (!autograd::should_record({x, w, bias})) return;
    using autograd::SavedTensor;
    const bool need_x = w.requires_grad();
    const bool need_w = x.requires_grad();
    autograd::record(
        op, y, {x, w, bias},
        [saved_x = need_x ? SavedTensor(x) : SavedTensor(), saved_w = need_w ? SavedTensor(w) : SavedTensor(),
         x_shape = x.shape(), w_shape = w.shape(), params, transposed](const Tensor& dy,
                                                                        const autograd::NeedsGrad& needs) {
            std::vector<Tensor> grads(3);
            if (needs[0]) {
                grads[0] = transposed ? conv_transpose_backward_data(dy, saved_w.get(), x_shape, params)
                                      : conv_backward_data(dy, saved_w.get(), x_shape, params);
            }
            if (needs[1]) {
                grads[1] = transposed ? conv_transpose_backward_filter(dy, saved_x.get(), w_shape, params)
                                      : conv_backward_filter(dy, saved_x.get(), w_shape, params);
            }
            if (needs[2]) grads[2] = conv_backward_bias(dy);
            return grads;
        });
}
}  // namespace

Tensor conv_forward(const Tensor& input, const Tensor& weight, const Tensor& bias, const ConvParams& params) {
    const std::string op = conv_op_name(params.spatial_rank);
    detail::check_same_device_and_dtype(op, {{"input", input}, {"weight", weight}});
    const ConvGeometry g = detail::conv_geometry(op, input.shape(), weight.shape(), params);
    detail::check_bias(op, bias, g.out_channels, input);
    Tensor y = run_forward(op, g, input, weight, bias);
    record_conv(op, y, input, weight, bias, params, false);
    return y;
}

Tensor conv_backward_data(const Tensor& grad_output, const Tensor& weight, const Shape& input_shape,
                          const ConvParams& params) {
    const std::string op = pass_name(params, false, "_backward_data");
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"weight", weight}});
    const ConvGeometry g = detail::conv_geometry(op, input_shape, weight.shape(), params);
    detail::check_grad_output(op, grad_output, g.output_shape());
    return run_backward_data(op, g, grad_output, weight, Tensor());
}

Tensor conv_backward_filter(const Tensor& grad_output, const Tensor& input, const Shape& weight_shape,
                            const ConvParams& params) {
    const std::string op = pass_name(params, false, "_backward_filter");
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"input", input}});
    const ConvGeometry g = detail::conv_geometry(op, input.shape(), weight_shape, params);
    detail::check_grad_output(op, grad_output, g.output_shape());
    return run_backward_filter(op, g, grad_output, input);
}

Tensor conv_backward_bias(const Tensor& grad_output) {
    const std::string op = "conv_backward_bias";
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}});
    CONVKIT_REQUIRE(grad_output.rank() >= 2, op, "grad_output must be [N, C, ...], got shape ",
                    grad_output.shape().to_string());
    const std::int64_t batch = grad_output.size(0);
    const std::int64_t channels = grad_output.size(1);
    const std::int64_t spatial = channels == 0 || batch == 0 ? 0 : grad_output.numel() / (batch * channels);
    // Any geometry will do for choosing: the bias gradient depends on none of it.
    const auto& backend = detail::conv_backend_for(op, ConvGeometry{}, grad_output.dtype(), grad_output.device());
    Tensor grad_bias = Tensor::empty(Shape{channels}, grad_output.dtype(), grad_output.device());
    backend.backward_bias(batch, channels, spatial, grad_output.dtype(), grad_output.raw_data(), grad_bias.raw_data(),
                          detail::stream_of(grad_output));
    return grad_bias;
}

Tensor conv_transpose_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                              const ConvParams& params) {
    const std::string op = conv_op_name(params.spatial_rank, true);
    detail::check_same_device_and_dtype(op, {{"input", input}, {"weight", weight}});
    const ConvGeometry g = detail::conv_transpose_geometry(op, input.shape(), weight.shape(), params);
    detail::check_bias(op, bias, g.in_channels, input);
    Tensor y = run_backward_data(op, g, input, weight, bias);
    record_conv(op, y, input, weight, bias, params, true);
    return y;
}

Tensor conv_transpose_backward_data(const Tensor& grad_output, const Tensor& weight, const Shape& input_shape,
                                    const ConvParams& params) {
    const std::string op = pass_name(params, true, "_backward_data");
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"weight", weight}});
    const ConvGeometry g = detail::conv_transpose_geometry(op, input_shape, weight.shape(), params);
    detail::check_grad_output(op, grad_output, g.input_shape());
    return run_forward(op, g, grad_output, weight, Tensor());
}

Tensor conv_transpose_backward_filter(const Tensor& grad_output, const Tensor& input, const Shape& weight_shape,
                                      const ConvParams& params) {
    const std::string op = pass_name(params, true, "_backward_filter");
    detail::check_same_device_and_dtype(op, {{"grad_output", grad_output}, {"input", input}});
    const ConvGeometry g = detail::conv_transpose_geometry(op, input.shape(), weight_shape, params);
    detail::check_grad_output(op, grad_output, g.input_shape());
    // In the adjoint convolution the transposed input plays the gradient and grad_output the input.
    return run_backward_filter(op, g, input, grad_output);
}

}  // namespace convkit
