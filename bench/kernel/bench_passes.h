#pragma once
// What one timed pass of a configuration takes (InputSet), and the layer rows' passes, which run
// on tensors of any device: on the GPU in the bench, and on the host as the reference their
// results are checked against (the layer rows have no cuDNN side) and in tests/test_bench.cpp.
#include <vector>

#include "bench_config.h"
#include "convkit/tensor.h"

namespace convkit::bench {

// The inputs of one timed pass; several sets are rotated so the L2 cache holds none of them.
struct InputSet {
    Tensor x;                          // the op's input
    Tensor w;                          // its weight (convolutions; batch norm's [C])
    Tensor dy;                         // the gradient of its output
    Tensor bias;                       // an epilogue's (BenchEpilogue), batch norm's [C], else undefined
    Tensor residual;                   // an epilogue's; add's second addend (BenchConfig::addend_shape)
    Tensor running_mean, running_var;  // batch norm's, updated in place by every training forward
    // A layer row's backward (with_recorded_forward): its forward recorded once and kept, run
    // again by every pass, and the leaves whose gradients each pass clears first; the pass's
    // result is leaves[result_leaf]'s gradient (the input's, or a broadcast addend's).
    Tensor recorded;
    std::vector<Tensor> leaves;
    std::size_t result_leaf = 0;
};

// `s`'s tensors (not a recorded forward) each passed through `activation` (x, dy, residual: the
// activations and the output's gradient) or `parameter` (w, bias, the running statistics);
// undefined ones stay undefined.
template <typename Activation, typename Parameter>
InputSet converted(const InputSet& s, Activation&& activation, Parameter&& parameter) {
    const auto each = [](const Tensor& t, auto& f) { return t.defined() ? f(t) : t; };
    InputSet c;
    c.x = each(s.x, activation);
    c.dy = each(s.dy, activation);
    c.residual = each(s.residual, activation);
    c.w = each(s.w, parameter);
    c.bias = each(s.bias, parameter);
    c.running_mean = each(s.running_mean, parameter);
    c.running_var = each(s.running_var, parameter);
    return c;
}

// A layer row's forward on `s`'s tensors (their device decides where it runs): batch norm in
// training, with its running averages; ReLU; x + residual.
Tensor layer_forward(const BenchConfig& config, const InputSet& s);

// `s` with its layer forward recorded for layer_backward: the input, batch norm's weight and bias,
// and add's second addend as leaves that require grad.
InputSet with_recorded_forward(const BenchConfig& config, const InputSet& s);

// The backward of a set's recorded forward with its dy: the input's gradient (add: its second
// addend's, the sum of dy over the dims it broadcasts along), written (the leaves' gradients of
// the previous pass are cleared first, so no pass adds to another's).
Tensor layer_backward(const InputSet& recorded);

// The layer row's pass on the host in float64 from `s`'s values, wherever they are: the
// reference for convkit's result.
Tensor host_layer_reference(const BenchConfig& config, Direction direction, const InputSet& s);

}  // namespace convkit::bench
