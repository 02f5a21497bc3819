#include "backends/host/unary_host.h"

#include "backends/host/elementwise_split.h"
#include "backend_api/dtype_dispatch.h"

namespace convkit::detail {

void unary_forward_host(UnaryOp op, UnaryScalars scalars, DType dtype, const void* x, void* y, std::int64_t count) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        dispatch_unary_op(op, [&](auto op_constant) {
            const T* in = static_cast<const T*>(x);
            T* out = static_cast<T*>(y);
            for_each_element_range(count, [&](std::int64_t begin, std::int64_t end) {
                for (std::int64_t i = begin; i < end; ++i)
                    out[i] = unary_value<decltype(op_constant)::value>(in[i], scalars);
            });
        });
    });
}

void unary_backward_host(UnaryOp op, UnaryScalars scalars, DType dtype, const void* dy, const void* saved, void* dx,
                         std::int64_t count) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        dispatch_unary_op(op, [&](auto op_constant) {
            const T* gradient = static_cast<const T*>(dy);
            const T* kept = static_cast<const T*>(saved);
            T* out = static_cast<T*>(dx);
            for_each_element_range(count, [&](std::int64_t begin, std::int64_t end) {
                for (std::int64_t i = begin; i < end; ++i)
                    out[i] = unary_gradient<decltype(op_constant)::value>(gradient[i], kept[i], scalars);
            });
        });
    });
}

}  // namespace convkit::detail
