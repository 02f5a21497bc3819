#pragma once
// How the cuDNN convolution variant applied the epilogue (bias, residual, ReLU) of the calling
// thread's most recent Forward or BackwardData pass: "fused: cudnnConvolutionBiasActivationForward",
// "separate calls (<why>)" (the convolution accumulating onto the residual, then cudnnAddTensor and
// cudnnActivationForward), or "none"; empty before any. For convkit-bench's notes and the tests:
// cuDNN may refuse the fused call for a configuration, and a comparison should say so.
// Free of cuDNN's headers; defined only in builds with the cuDNN backend (CONVKIT_WITH_CUDNN).
#include <string>

namespace convkit::detail {

std::string cudnn_last_epilogue_route();

}  // namespace convkit::detail
