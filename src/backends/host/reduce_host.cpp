#include "backends/host/reduce_host.h"

#include "backend_api/dtype_dispatch.h"

namespace convkit::detail {

void sum_dims_host(const ReduceToShapeGeometry& g, DType dtype, const void* x, double scale, void* out) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* in = static_cast<const T*>(x);
        for (std::int64_t j = 0; j < g.count; ++j) {
            double sum = 0;
            for (std::int64_t t = 0; t < g.terms; ++t) sum += in[reduce_to_shape_source(g, j, t)];
            static_cast<T*>(out)[j] = static_cast<T>(sum * scale);
        }
    });
}

void max_dim_host(const DimReduceGeometry& g, DType dtype, const void* x, void* values, std::int64_t* indices) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* in = static_cast<const T*>(x);
        for (std::int64_t j = 0; j < g.rows(); ++j) {
            IndexedValue<T> best = max_identity<T>();
            for (std::int64_t k = 0; k < g.size; ++k) best = max_of(best, {k, in[dim_reduce_source(g, j, k)]});
            if (values != nullptr) static_cast<T*>(values)[j] = best.value;
            indices[j] = best.index;
        }
    });
}

void max_backward_host(const DimReduceGeometry& g, DType dtype, const void* dy, const std::int64_t* indices, void* dx) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        const T* gradient = static_cast<const T*>(dy);
        for (std::int64_t i = 0; i < g.rows() * g.size; ++i) {
            const DimReducePosition p = dim_reduce_position(g, i);
            static_cast<T*>(dx)[i] = indices[p.row] == p.k ? gradient[p.row] : T(0);
        }
    });
}

}  // namespace convkit::detail
