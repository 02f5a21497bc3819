#include "backends/host/binary_host.h"

#include "backend_api/dtype_dispatch.h"

namespace convkit::detail {

void binary_elementwise_host(BinaryOp op, const BroadcastGeometry& g, DType dtype, const void* a, const void* b,
                             void* out) {
    dispatch_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        dispatch_binary_op(op, [&](auto op_constant) {
            constexpr BinaryOp kOp = decltype(op_constant)::value;
            const T* pa = static_cast<const T*>(a);
            const T* pb = static_cast<const T*>(b);
            T* po = static_cast<T*>(out);
            for (std::int64_t i = 0; i < g.count; ++i) {
                const OperandOffsets o = broadcast_offsets(g, i);
                po[i] = binary_value<kOp>(pa[o.a], pb[o.b]);
            }
        });
    });
}

}  // namespace convkit::detail
