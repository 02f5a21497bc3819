#pragma once
// The fixed per-backend convolution table, kept only for tests/test_cuda_cudnn.cpp (being edited
// on another branch), which drives cuDNN through it. The library itself runs named variants
// (backend_api/variant.h); delete this header and ops/legacy_conv_table.cpp once that test uses
// the `cudnn` variant directly. The matrix-product tables are in backend_api/backend_registry.h.
#include <cstdint>
#include <string>

#include "backend_api/backend_registry.h"
#include "backend_api/geometry.h"

namespace convkit::detail {

struct ConvBackendOps {
    std::string (*unsupported_reason)(const ConvGeometry& g, DType dtype);
    void (*forward)(const ConvGeometry& g, DType dtype, const void* x, const void* w, const void* bias, void* y,
                    Stream stream);
    void (*backward_data)(const ConvGeometry& g, DType dtype, const void* dy, const void* w, const void* bias,
                          void* dx, Stream stream);
    void (*backward_filter)(const ConvGeometry& g, DType dtype, const void* dy, const void* x, void* dw,
                            Stream stream);
    void (*backward_bias)(std::int64_t batch, std::int64_t channels, std::int64_t spatial, DType dtype,
                          const void* dy, void* db, Stream stream);
};

// The `cudnn` variant behind the old table: each entry builds the problem with the calling
// thread's settings, as the table's callers expect.
const ConvBackendOps& cudnn_conv_backend();

}  // namespace convkit::detail
