#pragma once
// The choice of a variant for one pass of one problem, and running it: named by the caller,
// measured, or the default backend's (convkit/variants.h describes the policy). Called by the op
// layer; autograd keeps the choices of a forward call and runs the backward with them.
#include <string_view>

#include "backend_api/variant.h"
#include "convkit/tensor.h"

namespace convkit::detail {

// The variant that runs a pass. `measure` is set in measured mode while the problem has no
// measured winner yet: the first run_*_variant times every supporting variant (it needs the
// pass's operands) and fills `variant` in.
struct ConvChoice {
    const ConvVariant* variant = nullptr;
    bool measure = false;
};
struct PoolChoice {
    const PoolVariant* variant = nullptr;
    bool measure = false;
};

// Under the calling thread's policy. Throws NotSupported naming `op`, the variant (or backend)
// and its reason when the chosen variant cannot run the problem: there is no fallback.
ConvChoice choose_variant(std::string_view op, const ConvProblem& problem, ConvPass pass);
PoolChoice choose_variant(std::string_view op, const PoolProblem& problem, PoolPass pass);

// Whether the variant choose_variant would pick for `pass` (under the calling thread's policy)
// supports `problem`. The op layer asks before running a problem in a layout some variants
// refuse (channels-last), and converts its operands instead where the answer is no.
bool policy_supports(const ConvProblem& problem, ConvPass pass);
bool policy_supports(const PoolProblem& problem, PoolPass pass);

// At least `bytes` of memory on `device` held by a tensor (8-byte words, so aligned to 8 and
// to the allocator's blocks): a variant's workspace, or state kept between passes such as max
// pooling's argmax taps.
Tensor scratch_tensor(std::size_t bytes, Device device);

// Runs the chosen variant (measuring first when the choice says so), with its workspace.
void run_variant(std::string_view op, const ConvProblem& problem, ConvPass pass, ConvChoice& choice,
                      const ConvOperands& operands, Stream stream);
void run_variant(std::string_view op, const PoolProblem& problem, PoolPass pass, PoolChoice& choice,
                      const PoolOperands& operands, Stream stream);

}  // namespace convkit::detail
