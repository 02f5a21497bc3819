#pragma once
// The contract every kernel variant implements, and the registry that holds them.
//
// A variant is one named implementation of some passes of an op family (`host.blas` runs all
// four convolution passes; a tensor-core kernel may run only the forward). It answers whether
// it can run a problem (and why not), how much scratch memory it needs, and runs on raw
// pointers of the problem's dtypes on the problem's device. Adding one is one file with a class
// and one registration line:
//
//   class MyConv final : public ConvVariant { ... };
//   CONVKIT_REGISTER_CONV_VARIANT(MyConv);
//
// Variants never read thread settings: everything they may depend on is in the problem.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend_api/problem.h"
#include "convkit/device.h"

namespace convkit::detail {

// The pointers of one pass, by its role (all of the problem's dtypes, on its device):
//   Forward         x, w, bias (may be null)   → out = y = conv(x, w) + bias
//   BackwardData    dy, w, bias (may be null)  → out = dx = conv^T(dy, w) + bias per channel of dx
//   BackwardFilter  dy, x                      → out = dw
//   BackwardBias    dy                         → out = db (problem.bias_grad gives dy's shape)
// Every pass overwrites `out` entirely.
// Forward and BackwardData may carry an epilogue after the bias (ConvEpilogue in convkit/ops/conv.h):
// out = relu(... + residual), `residual` like out (dtype, layout) or null. A variant whose
// fuses_epilogue() is true applies it; the others ignore both fields and the op layer applies
// them after the pass.
struct ConvOperands {
    const void* x = nullptr;
    const void* w = nullptr;
    const void* dy = nullptr;
    const void* bias = nullptr;
    void* out = nullptr;
    const void* residual = nullptr;
    bool relu = false;
};

// Forward: x → out = y. Backward: dy (and x, which max pooling needs) → out = dx.
// Max pooling's argmax taps (one byte per output: which tap of its window holds the maximum,
// detail::max_pool_tap, 255 for none): where non-null, a Forward writes them and a Backward reads
// them instead of x (which may then be null). Given only to a variant whose
// records_argmax_taps(problem) is true, for both passes.
struct PoolOperands {
    const void* x = nullptr;
    const void* dy = nullptr;
    void* out = nullptr;
    void* argmax_taps = nullptr;
};

// Scratch memory on the problem's device, at least workspace() bytes, owned by the caller.
struct WorkspaceView {
    void* data = nullptr;
    std::size_t bytes = 0;
};

template <typename Problem, typename Pass, typename Operands>
class Variant {
public:
    virtual ~Variant() = default;
    // "host.reference": lower-case, dot-separated, from where it runs to what it is.
    virtual const char* name() const = 0;
    // The kind of tensors it runs: a host variant never runs CUDA tensors and vice versa.
    virtual DeviceType device_type() const = 0;
    virtual bool implements(Pass) const { return true; }
    // Whether it computes operands of `dtype` (the problem's x, w and y share one). supports()
    // refuses the others by name before asking unsupported_reason. Most variants compute float32
    // and float64, and 16-bit tensors reach them widened by the op layer; a variant with 16-bit
    // kernels overrides this.
    virtual bool computes(DType dtype) const { return dtype == DType::Float32 || dtype == DType::Float64; }
    // Empty when it runs this pass of the problem, else why not, as a phrase that follows the
    // variant's name ("runs zeros padding only, not reflect"). Called on every call: keep it cheap,
    // and format the reason only when refusing.
    virtual std::string unsupported_reason(const Problem& problem, Pass pass) const = 0;
    virtual std::size_t workspace(const Problem&, Pass) const { return 0; }
    virtual void run(const Problem& problem, Pass pass, const Operands& operands, WorkspaceView workspace,
                     Stream stream) const = 0;

    bool supports(const Problem& problem, Pass pass, std::string* reason = nullptr) const {
        std::string why = !implements(pass)                ? std::string("does not implement it")
                          : !computes(problem.dtype()) ? std::string("does not compute ") + dtype_name(problem.dtype())
                                                       : unsupported_reason(problem, pass);
        const bool ok = why.empty();
        if (reason != nullptr) *reason = std::move(why);
        return ok;
    }
};

class ConvVariant : public Variant<ConvProblem, ConvPass, ConvOperands> {
public:
    // Whether its Forward and BackwardData passes apply the operands' residual and ReLU
    // themselves (ConvOperands); when not, the op layer does, after the pass.
    virtual bool fuses_epilogue() const { return false; }
};
class PoolVariant : public Variant<PoolProblem, PoolPass, PoolOperands> {
public:
    // Whether its max-pooling Forward can record the argmax taps of `problem` (PoolOperands) and
    // its Backward run from them: a backward that reads a byte per window instead of searching
    // each window of x again.
    virtual bool records_argmax_taps(const PoolProblem&) const { return false; }
};

// The registry: every variant, registered once at load time (the macros below), kept for the
// life of the process. Registering a second variant of a name throws.
bool register_conv_variant(std::unique_ptr<ConvVariant> variant);
bool register_pool_variant(std::unique_ptr<PoolVariant> variant);
// In name order.
const std::vector<const ConvVariant*>& conv_variants();
const std::vector<const PoolVariant*>& pool_variants();
// nullptr when no variant has that name.
const ConvVariant* find_conv_variant(std::string_view name);
const PoolVariant* find_pool_variant(std::string_view name);

}  // namespace convkit::detail

#define CONVKIT_VARIANT_CONCAT_INNER(a, b) a##b
#define CONVKIT_VARIANT_CONCAT(a, b) CONVKIT_VARIANT_CONCAT_INNER(a, b)
// At namespace scope in the variant's file: registers one instance when the program loads.
#define CONVKIT_REGISTER_CONV_VARIANT(Type)                                                  \
    [[maybe_unused]] static const bool CONVKIT_VARIANT_CONCAT(convkit_registered_, __LINE__) = \
        ::convkit::detail::register_conv_variant(std::make_unique<Type>())
#define CONVKIT_REGISTER_POOL_VARIANT(Type)                                                  \
    [[maybe_unused]] static const bool CONVKIT_VARIANT_CONCAT(convkit_registered_, __LINE__) = \
        ::convkit::detail::register_pool_variant(std::make_unique<Type>())
