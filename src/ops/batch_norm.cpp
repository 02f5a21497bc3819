// Batch normalization: checks, geometry, the running-statistics update, device dispatch,
// autograd. The arithmetic is ops/batch_norm_math.h on each backend.
#include <cmath>
#include <string>
#include <tuple>
#include <utility>

#include "autograd/graph.h"
#include "backend_api/batch_norm_math.h"
#include "backends/host/batch_norm_host.h"
#include "backends/host/batch_norm_parallel.h"
#include "convkit/autograd.h"
#include "convkit/backend.h"
#include "convkit/ops/activation.h"
#include "convkit/ops/norm.h"
#include "core/check.h"
#include "kernels/batch_norm.h"
#include "ops/op_support.h"

namespace convkit {

namespace {
using detail::BatchNormGeometry;

// "batch_norm2d" for [N, C, H, W], as PyTorch names its modules; [N, C] and [N, C, L] are 1d.
std::string batch_norm_op_name(const Tensor& x) {
    if (!x.defined() || x.rank() < 2 || x.rank() > 5) return "batch_norm";
    return detail::concat("batch_norm", x.rank() <= 3 ? 1 : x.rank() - 2, "d");
}

// weight, bias, running_mean, running_var: undefined or a vector [channels] like x.
void check_channel_vector(const std::string& op, const char* name, const Tensor& t, const Tensor& x) {
    if (!t.defined()) return;
    detail::check_same_device_and_dtype(op, {{"input", x}, {name, t}}, detail::kComputedInFloat32,
                                        detail::Layouts::Either);
    CONVKIT_REQUIRE(t.rank() == 1 && t.size(0) == x.size(1), op, name, " must have shape [", x.size(1),
                    "] (one value per channel of input ", x.shape().to_string(), "), got ", t.shape().to_string());
}

BatchNormGeometry check_batch_norm(const std::string& op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   const Tensor& running_mean, const Tensor& running_var, double momentum, double eps) {
    detail::check_same_device_and_dtype(op, {{"input", x}}, detail::kComputedInFloat32, detail::Layouts::Either);
    CONVKIT_REQUIRE(x.rank() >= 2 && x.rank() <= 5, op, "input must be [N, C] or [N, C, spatial...] with up to 3 ",
                    "spatial dims, got shape ", x.shape().to_string());
    check_channel_vector(op, "weight", weight, x);
    check_channel_vector(op, "bias", bias, x);
    check_channel_vector(op, "running_mean", running_mean, x);
    check_channel_vector(op, "running_var", running_var, x);
    CONVKIT_REQUIRE(running_mean.defined() == running_var.defined(), op,
                    "running_mean and running_var must both be given or both be undefined, got running_mean ",
                    running_mean.defined() ? "defined" : "undefined", " and running_var ",
                    running_var.defined() ? "defined" : "undefined");
    CONVKIT_REQUIRE(std::isfinite(eps) && eps >= 0, op, "eps must be finite and >= 0, got ", eps);
    CONVKIT_REQUIRE(std::isfinite(momentum), op, "momentum must be finite, got ", momentum);
    BatchNormGeometry g;
    g.batch = x.size(0);
    g.channels = x.size(1);
    for (int d = 2; d < x.rank(); ++d) g.spatial *= x.size(d);
    g.channels_last = x.memory_format() == MemoryFormat::ChannelsLast;
    return g;
}

// The host loops a host tensor runs: host-blas's parallel ones, or the reference's (the oracle).
struct HostBatchNorm {
    decltype(&detail::batch_norm_statistics_host) statistics;
    decltype(&detail::batch_norm_forward_host) forward;
    decltype(&detail::batch_norm_backward_reduce_host) backward_reduce;
    decltype(&detail::batch_norm_backward_input_host) backward_input;
};

HostBatchNorm host_batch_norm() {
#ifdef CONVKIT_WITH_OPENBLAS
    if (default_host_backend() == Backend::HostBlas) {
        return {detail::batch_norm_statistics_parallel, detail::batch_norm_forward_parallel,
                detail::batch_norm_backward_reduce_parallel, detail::batch_norm_backward_input_parallel};
    }
#endif
    return {detail::batch_norm_statistics_host, detail::batch_norm_forward_host,
            detail::batch_norm_backward_reduce_host, detail::batch_norm_backward_input_host};
}

const void* data_or_null(const Tensor& t) {
    return t.defined() ? t.raw_data() : nullptr;
}
double* double_data(const Tensor& t) {
    return t.data<double>();
}

// A float64 copy of a running statistic, so that the forward's values stay what the backward
// pass uses even if the running statistics change in between (a later training step).
Tensor double_copy(const Tensor& t) {
    NoGradGuard no_grad;
    return t.dtype() == DType::Float64 ? t.clone() : t.to(DType::Float64);
}

// The batch's mean and biased variance (float64 [C]); in training with running statistics, also
// their in-place update.
std::pair<Tensor, Tensor> batch_statistics(const BatchNormGeometry& g, const Tensor& x, Tensor& running_mean,
                                           Tensor& running_var, bool update_running, double momentum) {
    const Shape channels{g.channels};
    Tensor mean = Tensor::empty(channels, DType::Float64, x.device());
    Tensor var = Tensor::empty(channels, DType::Float64, x.device());
    Tensor updated_mean;
    Tensor updated_var;
    detail::RunningStatistics running;
    if (update_running) {
        updated_mean = Tensor::empty(channels, x.dtype(), x.device());
        updated_var = Tensor::empty(channels, x.dtype(), x.device());
        running = {running_mean.raw_data(), running_var.raw_data(), updated_mean.raw_data(), updated_var.raw_data(),
                   momentum};
    }
    if (x.device().is_host()) {
        host_batch_norm().statistics(g, x.dtype(), x.raw_physical_data(), double_data(mean), double_data(var), running);
    } else {
        kernels::batch_norm_statistics(g, x.dtype(), x.raw_physical_data(), double_data(mean), double_data(var),
                                       running, detail::stream_of(x));
    }
    if (update_running) {
        // copy_ bumps the storage versions (a backward pass that saved them notices) and refuses
        // tensors that require grad unless grad mode is off, which it is here.
        NoGradGuard no_grad;
        running_mean.copy_(updated_mean);
        running_var.copy_(updated_var);
    }
    return {mean, var};
}

struct BatchNormGradients {
    Tensor input;
    Tensor weight;
    Tensor bias;
};

// What the backward pass needs from the forward one.
struct BatchNormSaved {
    BatchNormGeometry geometry;
    autograd::SavedTensor x;
    autograd::SavedTensor weight;
    autograd::SavedTensor bias;  // read only by a fused ReLU's backward, to recompute y
    Tensor mean;                 // float64 [C], the statistics used (batch or running); private to the op
    Tensor var;
    double eps;
    bool batch_statistics;
    bool relu;  // batch_norm_relu's fused ReLU (CUDA only)
};

BatchNormGradients batch_norm_backward(const BatchNormSaved& saved, const Tensor& dy_given,
                                       const autograd::NeedsGrad& needs) {
    const Tensor& x = saved.x.get();
    // The kernels read dy in x's layout (the geometry's); a gradient arriving in the other one
    // is converted (counted), as any op converts an operand it does not read.
    const Tensor dy = detail::operand_in_format(dy_given, x.memory_format());
    const Tensor& weight = saved.weight.get();
    const BatchNormGeometry& g = saved.geometry;
    const detail::FusedRelu relu{saved.relu, data_or_null(weight), data_or_null(saved.bias.get())};
    const bool need_sums = (needs[0] && saved.batch_statistics) || needs[1] || needs[2];
    const Shape channels{g.channels};
    Tensor sum_dy;
    Tensor sum_dy_x_hat;
    if (need_sums) {
        sum_dy = Tensor::empty(channels, DType::Float64, x.device());
        sum_dy_x_hat = Tensor::empty(channels, DType::Float64, x.device());
        if (x.device().is_host()) {
            host_batch_norm().backward_reduce(g, x.dtype(), dy.raw_physical_data(), x.raw_physical_data(),
                                              double_data(saved.mean), double_data(saved.var), saved.eps,
                                              double_data(sum_dy), double_data(sum_dy_x_hat));
        } else {
            kernels::batch_norm_backward_reduce(g, x.dtype(), dy.raw_physical_data(), x.raw_physical_data(),
                                                double_data(saved.mean), double_data(saved.var), saved.eps,
                                                double_data(sum_dy), double_data(sum_dy_x_hat), detail::stream_of(x),
                                                relu);
        }
    }
    BatchNormGradients grads;
    if (needs[0]) {
        grads.input = Tensor::empty(x.shape(), x.dtype(), x.device(), x.memory_format());
        const double* s_dy = sum_dy.defined() ? double_data(sum_dy) : nullptr;
        const double* s_dy_x_hat = sum_dy_x_hat.defined() ? double_data(sum_dy_x_hat) : nullptr;
        if (x.device().is_host()) {
            host_batch_norm().backward_input(g, x.dtype(), dy.raw_physical_data(), x.raw_physical_data(),
                                             double_data(saved.mean), double_data(saved.var), data_or_null(weight),
                                             s_dy, s_dy_x_hat, saved.eps, saved.batch_statistics,
                                             grads.input.raw_physical_data());
        } else {
            kernels::batch_norm_backward_input(g, x.dtype(), dy.raw_physical_data(), x.raw_physical_data(),
                                               double_data(saved.mean), double_data(saved.var), data_or_null(weight),
                                               s_dy, s_dy_x_hat, saved.eps, saved.batch_statistics,
                                               grads.input.raw_physical_data(), detail::stream_of(x), relu);
        }
    }
    // dweight = sum(dy * x_hat), dbias = sum(dy), per channel.
    if (needs[1]) grads.weight = sum_dy_x_hat.to(x.dtype());
    if (needs[2]) grads.bias = sum_dy.to(x.dtype());
    return grads;
}

// bfloat16/float16: the float32 op on float32 copies, so the batch statistics and the running
// averages' update are float32's; the updated running statistics are rounded once back into the
// 16-bit buffers (they keep the module's dtype, as Module::to makes them).
Tensor batch_norm_in_float32(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                             Tensor& running_var, bool training, double momentum, double eps) {
    Tensor mean32 = detail::widened_to_float32(running_mean);
    Tensor var32 = detail::widened_to_float32(running_var);
    Tensor y = detail::computed_in_float32(
        x.dtype(),
        [&](const Tensor& x32, const Tensor& w32, const Tensor& b32) {
            return batch_norm(x32, w32, b32, mean32, var32, training, momentum, eps);
        },
        x, weight, bias);
    if (training && running_mean.defined()) {
        NoGradGuard no_grad;
        running_mean.copy_(mean32.to(running_mean.dtype()));
        running_var.copy_(var32.to(running_var.dtype()));
    }
    return y;
}

// batch_norm, and with `relu` (CUDA tensors only) batch_norm_relu's fused ReLU.
Tensor batch_norm_maybe_relu(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, Tensor& running_mean,
                             Tensor& running_var, bool training, double momentum, double eps, bool relu) {
    // The CUDA kernels read every float dtype in either memory format; the host loops read
    // float32/float64 contiguous tensors, so there 16-bit inputs compute in float32 copies and a
    // channels-last input runs on a contiguous copy, its result given back channels-last (both
    // conversions counted), as the op keeps its input's format everywhere.
    const bool on_host = !x_in.defined() || x_in.device().is_host();
    if (on_host && x_in.defined() && x_in.memory_format() == MemoryFormat::ChannelsLast) {
        const Tensor y = batch_norm(detail::contiguous_operand(x_in), weight_in, bias_in, running_mean, running_var,
                                    training, momentum, eps);
        return detail::operand_in_format(y, MemoryFormat::ChannelsLast);
    }
    const Tensor& x = x_in;
    const Tensor weight = detail::contiguous_operand(weight_in);
    const Tensor bias = detail::contiguous_operand(bias_in);
    const std::string op = batch_norm_op_name(x);
    const BatchNormGeometry g = check_batch_norm(op, x, weight, bias, running_mean, running_var, momentum, eps);
    if (on_host && detail::is_reduced_precision_tensor(x)) {
        return batch_norm_in_float32(x, weight, bias, running_mean, running_var, training, momentum, eps);
    }
    // Without running statistics there is nothing else to normalize with, in evaluation too.
    const bool use_batch_statistics = training || !running_mean.defined();
    Tensor mean;
    Tensor var;
    if (use_batch_statistics) {
        CONVKIT_REQUIRE(g.per_channel() > 1, op, "Expected more than 1 value per channel when training, got input ",
                        "shape ", x.shape().to_string());
        std::tie(mean, var) =
            batch_statistics(g, x, running_mean, running_var, training && running_mean.defined(), momentum);
    } else {
        mean = double_copy(running_mean);
        var = double_copy(running_var);
    }
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device(), x.memory_format());
    if (x.device().is_host()) {
        host_batch_norm().forward(g, x.dtype(), x.raw_physical_data(), double_data(mean), double_data(var),
                                  data_or_null(weight), data_or_null(bias), eps, y.raw_physical_data());
    } else {
        kernels::batch_norm_forward(g, x.dtype(), x.raw_physical_data(), double_data(mean), double_data(var),
                                    data_or_null(weight), data_or_null(bias), eps, y.raw_physical_data(),
                                    detail::stream_of(x), relu);
    }
    if (autograd::should_record({x, weight, bias})) {
        BatchNormSaved saved{g,
                             autograd::SavedTensor(x),
                             autograd::SavedTensor(weight),
                             relu ? autograd::SavedTensor(bias) : autograd::SavedTensor(),
                             mean,
                             var,
                             eps,
                             use_batch_statistics,
                             relu};
        autograd::record(relu ? op + "_relu" : op, y, {x, weight, bias},
                         [saved = std::move(saved)](const Tensor& dy, const autograd::NeedsGrad& needs) {
                             BatchNormGradients grads = batch_norm_backward(saved, dy, needs);
                             return std::vector<Tensor>{grads.input, grads.weight, grads.bias};
                         });
    }
    return y;
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean, Tensor& running_var,
                  bool training, double momentum, double eps) {
    return batch_norm_maybe_relu(x, weight, bias, running_mean, running_var, training, momentum, eps, false);
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                       Tensor& running_var, bool training, double momentum, double eps) {
    // The host loops have no fused form: there it is the composition, which is also the
    // definition the fused CUDA kernels are tested against.
    if (!x.defined() || x.device().is_host()) {
        return relu(batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps));
    }
    return batch_norm_maybe_relu(x, weight, bias, running_mean, running_var, training, momentum, eps, true);
}

}  // namespace convkit
