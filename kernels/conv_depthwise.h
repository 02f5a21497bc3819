#pragma once
// Launchers of the depthwise convolution kernels (kernels/conv_depthwise.cu), the variant
// `cuda.depthwise`: groups == in_channels, out_channels = multiplier * in_channels, weight
// [C_out, 1, kernel...], 1-D/2-D/3-D, any stride, dilation and padding mode, float32 and
// float64, contiguous (NCDHW) operands. These convolutions do a few multiply-adds per element
// moved, so they are bandwidth-bound; the kernels read each operand once per tile through
// shared memory (docs/benchmarks.md, "Depthwise"). Plain C++: host code calls them without
// CUDA headers. Pointers are device pointers of `dtype`; work goes on `stream`.
#include <cstddef>
#include <string>

#include "backend_api/geometry.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "kernels/kernels_namespace.h"

CONVKIT_KERNELS_BEGIN

// Empty when g is depthwise (groups == input channels), else why not: both layouts' first rule.
std::string depthwise_groups_unsupported_reason(const detail::ConvGeometry& g);

// Empty when the depthwise kernels run geometry g in dtype, else why not, as a phrase
// ("runs depthwise convolutions only (groups == input channels), not 2 groups of 6 channels").
std::string depthwise_unsupported_reason(const detail::ConvGeometry& g, DType dtype);

// Scratch bytes each pass needs (the caller provides them): backward data the gradient of the
// padded input for padding modes other than zeros, backward filter the per-block partial sums.
std::size_t depthwise_backward_data_workspace(const detail::ConvGeometry& g, DType dtype);
std::size_t depthwise_backward_filter_workspace(const detail::ConvGeometry& g, DType dtype);

// y = conv(x, w) + bias (bias may be null).
void conv_forward_depthwise(const detail::ConvGeometry& g, DType dtype, const void* x, const void* w,
                            const void* bias, void* y, Stream stream);

// dx = conv^T(dy, w) + bias per channel of dx (bias may be null); `workspace` holds at least
// depthwise_backward_data_workspace(g, dtype) bytes.
void conv_backward_data_depthwise(const detail::ConvGeometry& g, DType dtype, const void* dy, const void* w,
                                  const void* bias, void* dx, void* workspace, Stream stream);

// dw = sum over batch and output positions of dy x, bit-identical run to run: fixed-size
// partial sums per block into `workspace` (depthwise_backward_filter_workspace bytes), added
// in a fixed order by a second kernel.
void conv_backward_filter_depthwise(const detail::ConvGeometry& g, DType dtype, const void* dy, const void* x,
                                    void* dw, void* workspace, Stream stream);

// ---- Channels-last activations (kernels/conv_depthwise_nhwc.cu) --------------------------------
// x, y, dy and dx as [N, spatial..., C]; the filter [C, 1, kernel...] and its gradient as above.
// One output channel per input channel, zeros padding; bfloat16 and float16 (computed in float32,
// rounded once) in every pass; float32 and float64 forward and backward-data, summing term for
// term as the contiguous kernels do, so that both layouts give the same bits (their weight and bias
// gradients are the contiguous kernels'). 16-byte packs of adjacent channels where the channel
// count and the buffers allow, else single channels.

// Empty when these kernels run geometry g in dtype, else why not; `parameter_gradient` for the
// weight and bias gradients' passes.
std::string depthwise_channels_last_unsupported_reason(const detail::ConvGeometry& g, DType dtype,
                                                       bool parameter_gradient);

// Scratch bytes: forward and backward-data the filter as [taps, C]; backward-filter the per-split
// partial sums (float32).
std::size_t depthwise_channels_last_filter_by_tap_bytes(const detail::ConvGeometry& g, DType dtype);
std::size_t depthwise_channels_last_filter_workspace(const detail::ConvGeometry& g, DType dtype);

// y = conv(x, w) + bias (bias may be null); `workspace`: filter_by_tap_bytes.
void conv_forward_depthwise_channels_last(const detail::ConvGeometry& g, DType dtype, const void* x, const void* w,
                                          const void* bias, void* y, void* workspace, Stream stream);
// dx = conv^T(dy, w) + bias per channel of dx (bias may be null); `workspace`: filter_by_tap_bytes.
void conv_backward_data_depthwise_channels_last(const detail::ConvGeometry& g, DType dtype, const void* dy,
                                                const void* w, const void* bias, void* dx, void* workspace,
                                                Stream stream);
// dw, bit-identical run to run; `workspace`: filter_workspace.
void conv_backward_filter_depthwise_channels_last(const detail::ConvGeometry& g, DType dtype, const void* dy,
                                                  const void* x, void* dw, void* workspace, Stream stream);

CONVKIT_KERNELS_END
