#pragma once
// Exceptions thrown by convkit. Every message names the op, the argument and the values, e.g.
//   conv2d: input has 3 channels but weight expects 1 (weight shape [32, 1, 3, 3])
#include <stdexcept>
#include <string>

namespace convkit {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A caller passed something the op cannot accept (shape, dtype, device, parameter value).
class InvalidArgument : public Error {
public:
    using Error::Error;
};

// A valid request that this build, device or backend cannot carry out.
class NotSupported : public Error {
public:
    using Error::Error;
};

// An allocation failed even after the caches were emptied. The library stays usable.
class OutOfMemory : public Error {
public:
    using Error::Error;
};

// A CUDA, cuDNN or cuBLAS call failed.
class CudaError : public Error {
public:
    using Error::Error;
};

// Reading or writing a file failed, or its contents are not valid.
class IoError : public Error {
public:
    using Error::Error;
};

}  // namespace convkit
