#pragma once
// What every op entry point does before its arithmetic: check that the tensors are defined and
// agree on device and dtype (and are in a memory format the op reads), pick the backend, and
// dispatch on dtype.
#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "backend_api/dtype_dispatch.h"
#include "backend_api/selection.h"
#include "core/check.h"
#include "convkit/tensor.h"
#include "tensor/memory_format_support.h"

namespace convkit::detail {

struct NamedTensor {
    const char* name;
    const Tensor& tensor;
};

// Whether an op takes bfloat16/float16 tensors (and computes them in float32) or refuses them.
enum class ReducedPrecision { Refused, ComputedInFloat32 };
// The ops that take 16-bit tensors pass this to their argument checks (computed_in_float32 below).
inline constexpr ReducedPrecision kComputedInFloat32 = ReducedPrecision::ComputedInFloat32;

// Whether an op reads its tensors in either memory format (it passes their layout on, or works
// elementwise on the buffers) or only contiguous ones. A ContiguousOnly op converts channels-last
// operands at its entry with contiguous_operand (tensor/memory_format_support.h, counted) before
// the check; a channels-last tensor reaching the check of such an op is a bug in convkit, and
// the check throws std::logic_error naming op and argument instead of misreading the buffer.
enum class Layouts { ContiguousOnly, Either };

// All tensors defined, floating-point, on one device, of one dtype; throws InvalidArgument naming
// the culprit. A 16-bit tensor is NotSupported naming op, argument and dtype unless the op says
// it computes them.
void check_same_device_and_dtype(std::string_view op, std::initializer_list<NamedTensor> tensors,
                                 ReducedPrecision reduced = ReducedPrecision::Refused,
                                 Layouts layouts = Layouts::ContiguousOnly);

// Whether `t` is a bfloat16/float16 tensor (an undefined tensor, such as no bias, is not).
inline bool is_reduced_precision_tensor(const Tensor& t) {
    return t.defined() && is_reduced_precision(t.dtype());
}

// A 16-bit tensor's float32 copy (other tensors, undefined or int64 ones included, as they are):
// the storage types compute in float32 and round once at the end. Recorded like any conversion,
// so gradients flow through.
inline Tensor widened_to_float32(const Tensor& t) {
    return is_reduced_precision_tensor(t) ? t.to(DType::Float32) : t;
}

// The 16-bit path of an op whose arguments were checked to share one dtype: `op` (the op's own
// float32 path) runs on the operands widened to float32 and its result is rounded once to
// `dtype`. Both conversions are recorded, so the backward pass runs in float32 too and the
// gradients arrive in each operand's dtype. One helper for every op, so no op grows its own
// 16-bit code.
template <typename Op, typename... Operands>
Tensor computed_in_float32(DType dtype, Op&& op, const Operands&... operands) {
    return std::forward<Op>(op)(widened_to_float32(operands)...).to(dtype);
}

// A bias must be undefined (no bias) or a vector [channels] like `like`.
void check_bias(std::string_view op, const Tensor& bias, std::int64_t channels, const Tensor& like);

// A backward pass's grad_output must have the shape of the forward op's output.
void check_grad_output(std::string_view op, const Tensor& grad_output, const Shape& expected);

// Op names for messages, as literals for spatial ranks 1-3 so that naming the op formats nothing
// on the success path ("conv2d", "conv_transpose3d_backward_data", "max_pool1d_backward",
// "adaptive_avg_pool2d"); another rank (whose checks are about to throw) is formatted into a
// per-thread buffer valid until the next call.
enum class ConvOpPass { Forward, BackwardData, BackwardFilter };
std::string_view conv_op_label(int spatial_rank, bool transposed, ConvOpPass pass);
enum class PoolOpFamily { Max, Average, AdaptiveAverage, GlobalAverage };
std::string_view pool_op_label(int spatial_rank, PoolOpFamily family, bool backward);

// `size(where)` of one spatial dim, run with an empty `where`; only if that throws is it run
// again with "<op> (dim <dim>)", so the message names the dim and the success path formats
// nothing.
template <typename F>
std::int64_t size_in_dim(std::string_view op, const char* dim, F&& size) {
    try {
        return size("");
    } catch (const InvalidArgument&) {
    }
    const std::string where = concat(op, " (dim ", dim, ")");
    return size(where.c_str());
}

// The stream an op on `tensor` enqueues its kernels on.
Stream stream_of(const Tensor& tensor);

// Runs one pass of a convolution or pooling problem into a new tensor of `shape` (`like`'s dtype
// and device, in `format`) on the variant of `choice`, choosing it first if it is still empty (a gradient
// the forward call did not expect, requires_grad set since).
template <typename Problem, typename Pass, typename Choice, typename Operands>
Tensor run_pass_into(std::string_view op, const Problem& problem, Pass pass, Choice& choice, const Shape& shape,
                     Operands operands, const Tensor& like, MemoryFormat format = MemoryFormat::Contiguous) {
    if (choice.variant == nullptr && !choice.measure) choice = choose_variant(op, problem, pass);
    Tensor out = Tensor::empty(shape, like.dtype(), like.device(), format);
    operands.out = out.raw_physical_data();  // in `format`, which the problem states
    run_variant(op, problem, pass, choice, operands, stream_of(like));
    return out;
}

// `problem` with its activations in `format`.
template <typename Problem>
Problem with_activations_in(Problem problem, MemoryFormat format) {
    problem.x_layout = problem.y_layout = format;
    return problem;
}

// The memory format in which the variants the thread's policy picks run every one of `passes` of
// `problem` (its activations x, y and their gradients): `given` where they run it so, else the
// other format (the op then converts its operands, counted, and its result back), else none.
template <typename Problem, typename Pass>
std::optional<MemoryFormat> supported_format(const Problem& problem, MemoryFormat given,
                                             std::initializer_list<Pass> passes) {
    const MemoryFormat other =
        given == MemoryFormat::Contiguous ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
    for (MemoryFormat format : {given, other}) {
        const Problem in_format = with_activations_in(problem, format);
        if (std::all_of(passes.begin(), passes.end(),
                        [&](Pass pass) { return policy_supports(in_format, pass); })) {
            return format;
        }
    }
    return std::nullopt;
}

// The memory format a convolution or pooling call runs its activations in: supported_format's,
// or contiguous where no variant runs the problem (choosing one then raises NotSupported with
// the policy's reason).
template <typename Problem, typename Pass>
MemoryFormat activation_format(const Problem& problem, MemoryFormat given, std::initializer_list<Pass> passes) {
    return supported_format(problem, given, passes).value_or(MemoryFormat::Contiguous);
}

// Whether the thread's policy runs `passes` of `problem` in some memory format. A 16-bit
// problem that it does not run is computed in float32 instead (computed_in_float32).
template <typename Problem, typename Pass>
bool policy_runs(const Problem& problem, std::initializer_list<Pass> passes) {
    return supported_format(problem, MemoryFormat::Contiguous, passes).has_value();
}

// One pass of a public backward entry point whose activation operands are `a` and `b` (b may be
// undefined): run in their shared format where the chosen variant supports it, else contiguous
// (converted, counted). The result, an activation when `activation_result` (then returned in
// a's format) or a contiguous weight or bias gradient, is a new tensor of `shape`.
template <typename Problem, typename Pass, typename MakeOperands>
Tensor run_pass_on_activations(std::string_view op, const Problem& contiguous, Pass pass, const Shape& shape,
                               const Tensor& a, const Tensor& b, bool activation_result, MakeOperands operands_of) {
    const bool shared = !b.defined() || b.memory_format() == a.memory_format();
    const MemoryFormat given = shared ? a.memory_format() : MemoryFormat::Contiguous;
    const Problem problem = with_activations_in(contiguous, activation_format(contiguous, given, {pass}));
    const Tensor a_run = operand_in_format(a, problem.x_layout);
    const Tensor b_run = operand_in_format(b, problem.x_layout);
    decltype(choose_variant(op, problem, pass)) choice{};
    const Tensor out = run_pass_into(op, problem, pass, choice, shape, operands_of(a_run, b_run), a_run,
                                     activation_result ? problem.x_layout : MemoryFormat::Contiguous);
    return activation_result ? operand_in_format(out, a.memory_format()) : out;
}

}  // namespace convkit::detail
