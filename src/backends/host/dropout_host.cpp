#include "backends/host/dropout_host.h"

#include "backend_api/dropout_math.h"
#include "backend_api/dtype_dispatch.h"

namespace convkit::detail {

void dropout_host(DType dtype, const void* x, void* y, std::int64_t count, double p, std::uint64_t seed) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* in = static_cast<const T*>(x);
        T* out = static_cast<T*>(y);
        const T scale = static_cast<T>(dropout_scale(p));
        for (std::int64_t i = 0; i < count; ++i) out[i] = dropout_value(in[i], seed, i, p, scale);
    });
}

}  // namespace convkit::detail
