#pragma once
// Tensors to and from files in the safetensors format (https://github.com/huggingface/safetensors),
// which Python's `safetensors` package and PyTorch (through `safetensors.torch`) read and write.
// docs/checkpoints.md describes the layout, the atomic write and what loading checks.
#include <map>
#include <string>

#include "convkit/tensor.h"

namespace convkit {

// Tensors by name. Sorted, so a file's header and byte layout depend only on its contents.
using TensorMap = std::map<std::string, Tensor>;

// Writes `tensors` (float32, float64 or int64, rank 0 to 5, on any device: CUDA tensors are
// copied to the host first) and the string pairs of `metadata` (the header's "__metadata__") to
// `path`. The write is atomic: the data goes to a new file in the same directory, is flushed to
// the disk, and is then renamed over `path`. A failure at any point leaves a file already at
// `path` as it was and no temporary file behind.
//   InvalidArgument: an undefined tensor, a tensor named "__metadata__", a name or metadata
//                    string that is not valid UTF-8.
//   IoError:         the file cannot be written (the message names the path and the reason).
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads every tensor of the safetensors file at `path` into host tensors; fills `*metadata` with
// the header's "__metadata__" (emptied if there is none) when `metadata` is not null. The whole
// header is checked before any tensor is read.
//   IoError:      the file cannot be read, or is not a valid safetensors file (the message names
//                 the file, the tensor and what is wrong).
//   NotSupported: a valid file holds a dtype convkit has no tensors of (F16, BF16, I32, ...);
//                 the message names the tensor and the dtype.
TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

}  // namespace convkit
