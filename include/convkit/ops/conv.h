#pragma once
// Convolution and transposed convolution, 1-D to 3-D, forward and backward.
//
// Layouts: input [N, C_in, (D,) (H,) W]; convolution weight [C_out, C_in / groups, kernel...];
// transposed-convolution weight [C_in, C_out / groups, kernel...] (as PyTorch); bias [C_out].
// The spatial rank comes from params.spatial_rank and must match the tensors' rank - 2.
// Memory format (convkit/memory_format.h): activations (input, grad_output) may be channels-last;
// each result that is an activation (the output, grad_input) has the format of the activation
// it derives from, weight and bias gradients are contiguous. The host reference runs
// channels-last in place; a variant that does not (host-blas, the CUDA ones) gets contiguous
// copies and the result is converted back, counted in layout_conversions(). A channels-last
// weight is converted to contiguous (counted).
// An undefined Tensor() as bias means no bias.
#include "convkit/conv_params.h"
#include "convkit/tensor.h"

namespace convkit {

// What a forward applies to the convolution's result before it writes it, as cuDNN's
// ConvolutionBiasActivationForward: y = relu(conv(x, w) + bias + residual), each part optional.
// The tensor-core kernels (cuda.igemm) do it in their epilogue, in the one pass that writes y;
// elsewhere the op adds and rectifies after the convolution. Either way it is one autograd node,
// whose backward masks dy by y > 0 once and gives the residual that masked gradient.
struct ConvEpilogue {
    Tensor residual;    // the output's shape, dtype and device (either memory format); undefined: none
    bool relu = false;  // max(v, 0) last
};

Tensor conv_forward(const Tensor& input, const Tensor& weight, const Tensor& bias, const ConvParams& params);
Tensor conv_forward(const Tensor& input, const Tensor& weight, const Tensor& bias, const ConvParams& params,
                    const ConvEpilogue& epilogue);
inline Tensor conv_forward(const Tensor& input, const Tensor& weight, const ConvParams& params) {
    return conv_forward(input, weight, Tensor(), params);
}
// Gradient with respect to the input, given the gradient of the output.
Tensor conv_backward_data(const Tensor& grad_output, const Tensor& weight, const Shape& input_shape,
                          const ConvParams& params);
// Gradient with respect to the weight.
Tensor conv_backward_filter(const Tensor& grad_output, const Tensor& input, const Shape& weight_shape,
                            const ConvParams& params);
// Gradient with respect to the bias: grad_output summed over batch and space, shape [C_out].
Tensor conv_backward_bias(const Tensor& grad_output);

// Transposed convolution: the adjoint of convolution with the same parameters (padding_mode
// must be Zeros), with output_padding to pick among the input sizes a strided conv maps alike.
Tensor conv_transpose_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                              const ConvParams& params);
Tensor conv_transpose_forward(const Tensor& input, const Tensor& weight, const Tensor& bias, const ConvParams& params,
                              const ConvEpilogue& epilogue);
inline Tensor conv_transpose_forward(const Tensor& input, const Tensor& weight, const ConvParams& params) {
    return conv_transpose_forward(input, weight, Tensor(), params);
}
Tensor conv_transpose_backward_data(const Tensor& grad_output, const Tensor& weight, const Shape& input_shape,
                                    const ConvParams& params);
Tensor conv_transpose_backward_filter(const Tensor& grad_output, const Tensor& input, const Shape& weight_shape,
                                      const ConvParams& params);

}  // namespace convkit
