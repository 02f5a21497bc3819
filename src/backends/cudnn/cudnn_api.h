#pragma once
// cuDNN, loaded on first use rather than linked. cuDNN is about a gigabyte and convkit uses it only
// as the comparison path: a program linked with libconvkit.so must start, and train on the host or
// on convkit's own kernels, where cuDNN is not installed. The header gives the types; every
// function convkit calls is resolved by name once, from the list below (add a function there and
// call it as cudnn().name(...)). The library links with --no-undefined, so a direct call that
// bypasses this table fails the build instead of bringing back the load-time dependency.
#include <cudnn.h>

#include <string>

namespace convkit::detail {

// The list by hand, a few related functions a line (clang-format would stair-step it).
// clang-format off
#define CONVKIT_CUDNN_FUNCTIONS(X)                                                                          \
    X(cudnnGetVersion) X(cudnnGetErrorString) X(cudnnCreate) X(cudnnSetStream)                              \
    X(cudnnCreateTensorDescriptor) X(cudnnSetTensorNdDescriptor) X(cudnnDestroyTensorDescriptor)            \
    X(cudnnCreateFilterDescriptor) X(cudnnSetFilterNdDescriptor) X(cudnnDestroyFilterDescriptor)            \
    X(cudnnCreateConvolutionDescriptor) X(cudnnSetConvolutionNdDescriptor) X(cudnnSetConvolutionGroupCount)  \
    X(cudnnSetConvolutionMathType) X(cudnnDestroyConvolutionDescriptor)                                     \
    X(cudnnGetConvolutionForwardAlgorithm_v7) X(cudnnGetConvolutionBackwardDataAlgorithm_v7)                \
    X(cudnnGetConvolutionBackwardFilterAlgorithm_v7)                                                        \
    X(cudnnFindConvolutionForwardAlgorithmEx) X(cudnnFindConvolutionBackwardDataAlgorithmEx)                \
    X(cudnnFindConvolutionBackwardFilterAlgorithmEx) X(cudnnConvolutionForward)                             \
    X(cudnnConvolutionBackwardData) X(cudnnConvolutionBackwardFilter) X(cudnnConvolutionBackwardBias)       \
    X(cudnnAddTensor) X(cudnnCreatePoolingDescriptor) X(cudnnSetPoolingNdDescriptor)                        \
    X(cudnnDestroyPoolingDescriptor) X(cudnnPoolingForward) X(cudnnPoolingBackward)                         \
    X(cudnnCreateActivationDescriptor) X(cudnnSetActivationDescriptor) X(cudnnDestroyActivationDescriptor)  \
    X(cudnnActivationForward) X(cudnnConvolutionBiasActivationForward)
// clang-format on

struct CudnnApi {
#define CONVKIT_CUDNN_MEMBER(name) decltype(&::name) name = nullptr;
    CONVKIT_CUDNN_FUNCTIONS(CONVKIT_CUDNN_MEMBER)
#undef CONVKIT_CUDNN_MEMBER
};

// The functions, from CONVKIT_CUDNN_LIBRARY (environment) if set, else from the cuDNN major
// version convkit was compiled against (libcudnn.so.9), found like cuBLAS: through the library's
// run path (the toolkit's and cuDNN's folders at build time) or the loader's path. Loaded by the
// first call; throws NotSupported, with the loader's reason and how to install cuDNN, if it
// cannot be.
const CudnnApi& cudnn();

// Empty when cuDNN can be loaded; else why not (the NotSupported message of cudnn()).
std::string cudnn_unavailable_reason();

}  // namespace convkit::detail
